"""The Hugging Face parts on their own: model builder, weight selection, perplexity protocol,
and the Hub defaults of experiment=llm_wikitext (composed, never downloaded)."""

from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from swp.data.hf_corpus import load_split_text
from swp.errors import ConfigError
from swp.models.hf_causal_lm import hf_causal_lm
from swp.pruners.select import input_feature_axis, prunable_parameters
from swp.pruners.swp import SWPPruner
from swp.tasks.token_lm import TokenLMTask
from swp.testing.hf_tiny import GPT2, LLAMA, build_tokenizer, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_parts")
    files = write_corpus(root / "text", train_chars=12_000, test_chars=4_000)
    build_tokenizer(root / "tok", files["train"])
    return {"files": files, "tokenizer": str(root / "tok")}


def _tiny(fields: dict, **kwargs):
    return hf_causal_lm(config=fields, vocab_size=kwargs.pop("vocab_size", 64), device="cpu", **kwargs)


# --- which weights -------------------------------------------------------------------------

def test_llama_selection_is_every_decoder_linear_with_gqa_shapes_and_not_the_head():
    model = _tiny(LLAMA)
    params = prunable_parameters(model)
    assert sorted({n.split(".", 3)[3] for n in params}) == sorted(
        f"{m}.weight" for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))
    assert len(params) == 14
    assert params["model.layers.0.self_attn.k_proj.weight"].shape == (16, 32)  # 2 kv heads of 8
    assert all(input_feature_axis(model, n) == 1 for n in params)


def test_gpt2_conv1d_weights_are_selected_with_their_input_axis_and_the_tied_head_is_not():
    model = _tiny(GPT2)
    assert model.get_output_embeddings().weight is model.transformer.wte.weight
    params = prunable_parameters(model)
    assert set(params) == {f"transformer.h.{i}.{m}.weight" for i in range(2)
                           for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    # Conv1D stores (in, out): c_fc maps 32 inputs to 128 features.
    assert params["transformer.h.0.mlp.c_fc.weight"].shape == (32, 128)
    assert input_feature_axis(model, "transformer.h.0.mlp.c_fc.weight") == 0
    assert set(prunable_parameters(model, include=[r"\.mlp\."], exclude=[r"h\.1\."])) == {
        "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight"}


# --- the model builder -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of"),
    ({"name_or_path": "x", "config": {"model_type": "gpt2"}}, "exactly one of"),
    ({"config": {"n_embd": 8}}, "model_type"),
    ({"config": {"model_type": "no-such-family"}}, "invalid model.config"),
    ({"config": dict(GPT2, vocab_size=50), "vocab_size": 64}, "tokenizer has 64 ids"),
    ({"config": GPT2, "vocab_size": 64, "seq_len": 65}, "64 positions"),
    ({"config": GPT2, "dtype": "fp8"}, "model.dtype"),
    ({"name_or_path": "/no/such/folder"}, "folder /no/such/folder does not exist"),
    ({"name_or_path": "meta-llama/Llama-2-7b-hf"}, "cannot load model"),  # offline: fails at once
])
def test_builder_rejects_bad_input_with_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        hf_causal_lm(device="cpu", **kwargs)


def test_builder_dtype_and_gradient_checkpointing():
    assert next(_tiny(LLAMA).parameters()).dtype == torch.float32  # the default: float32
    model = _tiny(LLAMA, dtype="bfloat16", gradient_checkpointing=True)
    assert next(model.parameters()).dtype == torch.bfloat16 and model.is_activation_checkpointing
    x = torch.randint(64, (2, 8))
    model(input_ids=x, labels=x, use_cache=False).loss.backward()  # checkpointed backward runs
    assert model.model.layers[0].mlp.up_proj.weight.grad is not None


def test_swp_state_is_float32_for_bf16_weights_and_moves_to_cpu_as_asked():
    model = _tiny(LLAMA, dtype="bfloat16")
    with pytest.warns(UserWarning, match="model.dtype=float32"):
        beside = SWPPruner(model)
    with pytest.warns(UserWarning):
        fp32 = SWPPruner(model, state_dtype="float32", state_device="cpu")
    for pruner in (beside, fp32):
        pruner.observe()
        pruner.observe()
    n = sum(p.numel() for p in beside.params.values())
    assert beside.state_bytes() == 4 * n == fp32.state_bytes()
    assert {c.dtype for c in beside.clones.values()} == {torch.float32}
    assert {c.device.type for c in fp32.clones.values()} == {"cpu"}
    name = "model.layers.0.mlp.up_proj.weight"
    # Weights unchanged between the points: the weighted average is |w| itself.
    torch.testing.assert_close(fp32.importance()[name], model.get_parameter(name).detach().abs().float(),
                               rtol=1e-6, atol=0)


# --- data and the perplexity protocol ----------------------------------------------------

class _TokenCostModel(nn.Module):
    """A stand-in LM whose NLL for predicting token id v is v / 100: mean over the batch's
    predicted tokens, as a HF model's loss with labels is."""

    def forward(self, input_ids, labels, use_cache):
        return SimpleNamespace(loss=labels[:, 1:].float().mean() / 100)


def test_perplexity_windows_are_consecutive_non_overlapping_and_weighted_per_token(corpus):
    files = corpus["files"]
    common = dict(tokenizer=corpus["tokenizer"], path="text", name=None, data_files=files, block_size=16)
    one = TokenLMTask(**common, eval_seq_len=24, eval_batch_size=1, max_eval_windows=7)
    three = TokenLMTask(**common, eval_seq_len=24, eval_batch_size=3, max_eval_windows=7)  # batches 3, 3, 1
    stream = one.tokenizer("\n\n".join(l for l in open(files["test"]).read().split("\n")))["input_ids"]
    assert one.eval_windows.flatten().tolist() == stream[: 7 * 24]
    expected = sum(sum(w[1:]) for w in one.eval_windows.tolist()) / (7 * 23) / 100
    for task in (one, three):
        metrics = task.evaluate(_TokenCostModel(), torch.device("cpu"), contextlib.nullcontext)
        assert metrics["loss"] == pytest.approx(expected, rel=1e-6)
        assert metrics["ppl"] == pytest.approx(math.exp(expected), rel=1e-6)
    info = one.extra_results()
    seen = (info["eval_seq_len"], info["eval_windows"], info["eval_tokens"], info["eval_split"])
    assert seen == (24, 7, 7 * 23, "test")
    assert one.model_kwargs() == {"vocab_size": 320, "seq_len": 24}
    assert one.train_blocks.shape[1] == 16 and one.tokens_per_batch == 8 * 16


def test_training_blocks_are_drawn_from_the_packed_train_split_by_the_seed(corpus):
    task = TokenLMTask(
        tokenizer=corpus["tokenizer"], path="text", name=None, data_files=corpus["files"], block_size=16, batch_size=4
    )
    a = task.train_batch(torch.Generator().manual_seed(0), "cpu")
    b = task.train_batch(torch.Generator().manual_seed(0), "cpu")
    assert a.shape == (4, 16) and a.dtype == torch.long and torch.equal(a, b)
    rows = {tuple(r) for r in task.train_blocks.tolist()}
    assert all(tuple(r) in rows for r in a.tolist())


def test_data_errors_are_config_errors(corpus):
    with pytest.raises(ConfigError, match="cannot load dataset 'Salesforce/wikitext'"):
        load_split_text("Salesforce/wikitext", "wikitext-2-raw-v1", "test")  # offline: no download
    with pytest.raises(ConfigError, match="no column 'body'"):
        load_split_text("text", None, "test", data_files=corpus["files"], column="body")
    with pytest.raises(ConfigError, match="longer than the 'test' split"):
        TokenLMTask(
            tokenizer=corpus["tokenizer"],
            path="text",
            name=None,
            data_files=corpus["files"],
            block_size=16,
            eval_seq_len=10**6,
        )


# --- the Hub defaults, composed but never downloaded ------------------------------------


def test_one_loader_serves_the_token_and_the_character_corpora(tmp_path):
    """`hf_text` (character LMs) and `load_split_text` (token LMs) read through one `open_split`:
    the perplexity protocol keeps empty rows, the character corpus drops them."""
    from swp.data.hf_corpus import open_split
    from swp.data.text import hf_text

    f = tmp_path / "t.txt"
    f.write_text("a b\n\nc d\n\n\ne\n")
    files = {"train": str(f)}
    assert load_split_text("text", None, "train", data_files=files) == "a b\n\n\n\nc d\n\n\n\n\n\ne"
    assert hf_text("text", split="train", data_files=files) == "a b\nc d\ne"
    assert hf_text("text", split="train", data_files=files, max_chars=4) == "a b\n"
    with pytest.raises(ConfigError, match=r"cannot load dataset 'no-such/x' \(None, split 'train'\)"):
        open_split("no-such/x", None, "train")
    with pytest.raises(ConfigError, match="cannot load dataset 'no-such/x'"):
        hf_text("no-such/x")
