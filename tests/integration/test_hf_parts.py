"""The Hugging Face parts on their own: model builder, weight selection, perplexity protocol,
and the Hub defaults of experiment=llm_wikitext (composed, never downloaded)."""

from __future__ import annotations

from swp.testing.tiny import compose_cfg

# --- which weights -------------------------------------------------------------------------


# --- the model builder -----------------------------------------------------------------------


# --- data and the perplexity protocol ----------------------------------------------------


# --- the Hub defaults, composed but never downloaded ------------------------------------


def test_llm_wikitext_composes_the_hub_defaults(tmp_path):
    cfg = compose_cfg(
        [
            "experiment=llm_wikitext",
            "model.name_or_path=meta-llama/Llama-2-7b-hf",
            "dataset.eval_seq_len=4096",
            "dataset.block_size=2048",
        ],
        tmp_path,
    )
    assert cfg.model._target_ == "swp.models.hf_causal_lm.hf_causal_lm"
    assert cfg.dataset.tokenizer == "meta-llama/Llama-2-7b-hf"  # the model's own tokenizer
    assert (cfg.dataset.path, cfg.dataset.name, cfg.dataset.eval_split) == (
        "Salesforce/wikitext",
        "wikitext-2-raw-v1",
        "test",
    )
    assert cfg.target_sparsity == 0.5 and cfg.precision == "bf16" and cfg.model.dtype == "float32"
    assert cfg.schedule.train_steps // cfg.schedule.track_every == 40
    assert cfg.export._target_.endswith("export_hf_pretrained") and not cfg.model.trust_remote_code
    other = compose_cfg(
        [
            "experiment=llm_wikitext",
            "dataset.name=wikitext-103-raw-v1",
            "dataset.eval_split=validation",
            "pruner=magnitude",
        ],
        tmp_path,
    )
    assert other.model.name_or_path == "gpt2" == other.dataset.tokenizer
    assert (other.dataset.name, other.dataset.eval_split) == ("wikitext-103-raw-v1", "validation")


