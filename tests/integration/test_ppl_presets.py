"""dataset=wikitext2 and dataset=c4 are the Wanda / SparseGPT perplexity protocols: the same
windows and the same perplexity as the papers' code (locuslab/wanda lib/data.py, lib/eval.py,
re-implemented below), checked on local stand-ins for the Hub files; offline, the real Hub data
stop the run in one line before training; experiment=dense_ppl runs end to end."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from swp.cli import run
from swp.errors import ConfigError
from swp.testing.tiny import compose_cfg

SEQLEN = 16


def _wanda_windows(tokenizer, eval_text: str, max_windows: int | None) -> torch.Tensor:
    """The papers' test encoding: one tokenizer call, cut to max_windows * seqlen (C4), then
    nsamples = numel // seqlen windows of seqlen."""
    ids = tokenizer(eval_text, return_tensors="pt").input_ids
    if max_windows is not None:
        ids = ids[:, : max_windows * SEQLEN]
    n = ids.numel() // SEQLEN
    return ids[0, : n * SEQLEN].view(n, SEQLEN)


def _wanda_ppl(model, windows: torch.Tensor) -> float:
    """eval_ppl_wikitext: per window, the shifted cross entropy times seqlen; exp of the sum over
    nsamples * seqlen."""
    nlls = []
    with torch.no_grad():
        for w in windows:
            logits = model(w[None]).logits
            loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), w[1:])
            nlls.append(loss * SEQLEN)
    return float(torch.exp(torch.stack(nlls).sum() / (len(windows) * SEQLEN)))


def _docs(assets) -> list[str]:
    lines = open(assets["files"]["train"], encoding="utf-8").read().split("\n")
    return [" ".join(lines[i: i + 3]) for i in range(0, 3 * 1200, 3)]  # 1,200 documents, some empty


@pytest.fixture(scope="module")
def jsonl(assets, tmp_path_factory):
    """Stand-ins for the Hub files, in the same json layout (a ``text`` column)."""
    folder = tmp_path_factory.mktemp("hub_standins")
    docs = _docs(assets)
    paths = {}
    for split, rows in (("train", docs), ("test", docs[:600]), ("validation", docs)):
        paths[split] = folder / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}


def _preset(preset: str, assets, jsonl, tmp_path, *extra):
    eval_file = jsonl["test"] if preset == "wikitext2" else jsonl["validation"]
    eval_split = "test" if preset == "wikitext2" else "validation"
    files = f"dataset.data_files={{train: '{jsonl['train']}', {eval_split}: '{eval_file}'}}"
    return ["model=hf_causal_lm", f"model.name_or_path={assets['llama']}", f"dataset={preset}", "dataset.path=json",
            files, f"dataset.eval_seq_len={SEQLEN}", "dataset.block_size=16", *extra]


@pytest.mark.parametrize("preset, join, rows, max_windows", [("wikitext2", "\n\n", 600, None),
                                                              ("c4", " ", 1100, 256)])
def test_preset_windows_and_perplexity_are_the_papers(tmp_path, assets, jsonl, preset, join, rows, max_windows):
    from hydra.utils import instantiate

    cfg = compose_cfg(_preset(preset, assets, jsonl, tmp_path), tmp_path)
    task = instantiate(cfg.dataset)
    tokenizer = AutoTokenizer.from_pretrained(assets["llama"])
    reference = _wanda_windows(tokenizer, join.join(_docs(assets)[:rows]), max_windows)
    assert torch.equal(task.eval_windows.long(), reference)
    if max_windows is not None:  # the stand-in is long enough for the cut to matter
        assert len(reference) == max_windows
    model = AutoModelForCausalLM.from_pretrained(assets["llama"]).eval()
    ours = task.evaluate(model, torch.device("cpu"), contextlib.nullcontext)
    assert ours["ppl"] == pytest.approx(_wanda_ppl(model, reference), rel=1e-5)
    assert math.isfinite(ours["ppl"])


@pytest.mark.parametrize("preset, dataset", [("wikitext2", "Salesforce/wikitext"), ("c4", "allenai/c4")])
def test_hub_presets_offline_stop_in_one_line_before_training(tmp_path, assets, preset, dataset):
    cfg = compose_cfg(["model=hf_causal_lm", f"model.name_or_path={assets['llama']}", f"dataset={preset}"],
                      tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        run(cfg)
    assert str(info.value).startswith(f"cannot load dataset '{dataset}'") and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_dense_ppl_experiment_trains_nothing_and_reports_the_dense_perplexity(tmp_path, assets, jsonl):
    overrides = ["experiment=dense_ppl", *_preset("wikitext2", assets, jsonl, tmp_path)[1:], "model.dtype=float32",
                 "threads=1", "progress=false", "energy=none"]
    results = run(compose_cfg(overrides, tmp_path / "run"))
    assert results["sparsity"] == 0.0 and results["train_tokens_per_s"] == 0.0
    assert results["dense_val_ppl"] == results["pruned_val_ppl"] == results["val_ppl"]
    assert "initial_val_ppl" not in results and not (tmp_path / "run" / "checkpoints").exists()
