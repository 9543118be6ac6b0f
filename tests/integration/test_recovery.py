"""The `recovery` options through the real run(cfg) on tiny models (character GPT, tiny Llama):
what each logs and records, a teacher that never changes, exact resume with a teacher or
adapters in flight, the dense cache, refusals before anything is trained, and DDP."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from swp.cli import run
from swp.errors import ConfigError
from swp.infra.checkpoint import read_checkpoint
from swp.recovery.distill import DistillObjective, LogitDistillation
from swp.tasks.char_lm import CharLMTask
from swp.testing.outcome import assert_same_outcome, run_outcome
from swp.testing.tiny import CONF as CONF_DIR

CK = ("checkpoint.every=7", "checkpoint.keep_after_success=true", "energy=none")
TERMS = {"plain": set(), "distill_logits": {"task_loss", "kd_logits"},
         "distill_squarehead": {"task_loss", "kd_logits", "kd_hidden"}, "lora": set()}


def _lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _terms(folder, phase: str) -> set[str]:
    keys = {k for line in _lines(folder) for k in line if k.startswith(f"{phase}/")}
    return {k.split("/", 1)[1] for k in keys} - {"loss", "val_loss"}


@pytest.mark.parametrize("option", list(TERMS))
def test_each_option_logs_its_terms_records_its_costs_and_keeps_the_masks(tiny_cfg, tmp_path, option):
    results = run(tiny_cfg(f"recovery={option}", "energy=none"))
    out = tmp_path / "run"
    assert results["recovery"] == option
    assert _terms(out, "finetune") == TERMS[option]
    assert _terms(out, "train") == set()  # SWP prunes at the prune stage: the dense phase is plain
    weights, masks = load_file(out / "model.safetensors"), load_file(out / "masks.safetensors")
    assert all(torch.all(weights[n][~k] == 0) for n, k in masks.items())
    assert results["sparsity"] == results["mask_sparsity"] > 0
    if option.startswith("distill"):
        assert results["recovery_teacher_bytes"] == results["model_bytes"]  # one frozen copy of the model
        assert results["recovery_temperature"] == 2.0 and results["recovery_weight"] == 0.5
    if option == "lora":  # the export is the merged sparse model: plain names, no adapters
        assert not any("lora_" in n or "base_layer" in n for n in weights)
        assert results["lora_sparsity_before_merge"] == results["lora_sparsity_after_merge"] == results["sparsity"]
        assert results["lora_adapter_params"] > 0 and results["recovery_rank"] == 8


PRUNERS = sorted(f.stem for f in (CONF_DIR / "pruner").glob("*.yaml"))


@pytest.mark.parametrize("pruner", PRUNERS)
def test_every_pruner_keeps_its_masks_exactly_through_the_lora_merge(tiny_cfg, tmp_path, pruner):
    results = run(tiny_cfg(f"pruner={pruner}", "recovery=lora", "target_sparsity=0.5", "schedule.train_steps=20",
                           "schedule.finetune_steps=3", "energy=none", "trajectories.per_tensor=0"))
    weights = load_file(tmp_path / "run" / "model.safetensors")
    if pruner != "none":
        masks = load_file(tmp_path / "run" / "masks.safetensors")
        assert all(torch.all(weights[n][~k] == 0) for n, k in masks.items())
    assert results["lora_sparsity_after_merge"] == results["lora_sparsity_before_merge"] == results["sparsity"]


def test_the_teacher_is_the_dense_model_before_pruning_and_never_changes(tiny_cfg, tmp_path, monkeypatch):
    seen = []
    original = DistillObjective.__call__

    def watched(self, model, batch):
        teacher = self.recovery.teacher.module
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        seen.append({k: v.clone() for k, v in teacher.state_dict().items()})
        return original(self, model, batch)

    monkeypatch.setattr(DistillObjective, "__call__", watched)
    run(tiny_cfg("recovery=distill_logits", "checkpoint.keep=10", *CK))
    assert len(seen) == 20  # every fine-tuning step
    assert all(all(torch.equal(s[k], seen[0][k]) for k in s) for s in seen[1:])
    dense = read_checkpoint(next((tmp_path / "run" / "checkpoints").glob("*-dense")))
    assert all(torch.equal(seen[0][k], v) for k, v in load_file(dense.path / "model.safetensors").items())
    final = load_file(tmp_path / "run" / "model.safetensors")
    assert not torch.equal(final["blocks.0.fc.weight"], seen[0]["blocks.0.fc.weight"])  # the student moved


def _crash_at(monkeypatch, n: int):
    original, calls = CharLMTask.train_batch, [0]

    def crashing(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise RuntimeError("simulated power cut")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CharLMTask, "train_batch", crashing)


RESUMES = {  # option, overrides, the train_batch call that crashes, the checkpoint it resumes from
    "squarehead-in-finetune": (["recovery=distill_squarehead"], 60 + 17, "000000074-3-finetune"),
    "lora-in-finetune": (["recovery=lora"], 60 + 17, "000000074-3-finetune"),
    "gmp-distill-in-dense": (["recovery=distill_logits", "pruner=gmp", "target_sparsity=0.5", "pruner.start_step=20",
                              "pruner.update_every=10", "schedule.finetune_steps=8"], 40, "000000035-0-train"),
}


@pytest.mark.parametrize("case", list(RESUMES))
def test_a_resumed_run_equals_an_uninterrupted_one(tiny_cfg, tmp_path, monkeypatch, case):
    """checkpoint.keep=1: only the newest checkpoint survives, and it carries what the run needs
    (the teacher, or the adapters in the weights)."""
    overrides, crash, resumed_from = RESUMES[case]
    reference = run(tiny_cfg(*overrides, *CK, out="reference"))
    _crash_at(monkeypatch, crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run(tiny_cfg(*overrides, *CK, "checkpoint.keep=1"))
    assert len(list((tmp_path / "run" / "checkpoints").iterdir())) == 1
    monkeypatch.undo()
    results = run(tiny_cfg(*overrides, *CK, "checkpoint.keep=1"))
    assert results["resumed_from"] == resumed_from
    a, b = run_outcome(tmp_path / "run"), run_outcome(tmp_path / "reference")
    a[0].pop("resumed_from", None)
    assert_same_outcome(a, b)
    assert {k: v for k, v in results.items() if k.startswith(("recovery", "lora"))} == \
           {k: v for k, v in reference.items() if k.startswith(("recovery", "lora"))}


def test_gmp_distils_from_its_first_mask_update_with_the_weights_right_before_it(tiny_cfg, tmp_path, monkeypatch):
    taken = []
    original = LogitDistillation.take_teacher

    def spy(self, model):
        if self.teacher is None:
            taken.append(({k: v.clone() for k, v in model.state_dict().items()}, model.blocks[0].fc.weight.eq(0).any()))
        return original(self, model)

    monkeypatch.setattr(LogitDistillation, "take_teacher", spy)
    run(tiny_cfg("recovery=distill_logits", "pruner=gmp", "target_sparsity=0.5", "pruner.start_step=20",
                 "pruner.update_every=10", "schedule.log_every=5"))
    assert len(taken) == 1 and not bool(taken[0][1])  # taken once, before any weight was pruned
    train = [line for line in _lines(tmp_path / "run") if "train/loss" in line]
    assert all(("train/kd_logits" in line) == (line["step"] >= 20) for line in train)  # from step 20 (0-based)


def test_the_dense_cache_is_shared_across_recoveries_except_where_the_dense_phase_distils(tiny_cfg, tmp_path):
    cache = f"dense_cache.dir={tmp_path / 'cache'}"
    short = ["dense_cache.enabled=true", cache, "schedule.finetune_steps=4", "energy=none"]
    assert run(tiny_cfg(*short, out="plain"))["dense_cache"] == "miss"
    assert run(tiny_cfg(*short, "recovery=distill_squarehead", out="kd"))["dense_cache"] == "hit"
    gmp = ["pruner=gmp", "target_sparsity=0.5", "pruner.start_step=20"]
    assert run(tiny_cfg(*short, *gmp, out="gmp"))["dense_cache"] == "miss"
    assert run(tiny_cfg(*short, *gmp, "recovery=distill_logits", out="gmp_kd"))["dense_cache"] == "miss"
    again = run(tiny_cfg(*short, *gmp, "recovery=distill_logits", out="gmp_kd_again"))
    assert again["dense_cache"] == "hit" and again["val_loss"] == json.loads(
        (tmp_path / "gmp_kd" / "results.json").read_text())["val_loss"]  # the cached teacher came with it


@pytest.mark.parametrize("overrides, message", [
    (["schedule.finetune_steps=0", "recovery=distill_squarehead"], "has nothing to recover"),
    (["schedule.finetune_steps=0", "recovery=lora"], "leaves nothing to train"),
    (["recovery=lora", "recovery.target_modules=[nope]"], "matches no module of GPT"),
    (["recovery=distill_logits", "recovery.temperature=0"], r"recovery.temperature must be a finite number in \(0"),
], ids=["squarehead-one-shot", "lora-one-shot", "lora-targets", "temperature"])
def test_refused_in_one_line_before_anything_is_trained(tiny_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        run(tiny_cfg(*overrides))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not (tmp_path / "run" / "metrics.jsonl").read_text()


def test_the_price_task_has_no_logits_to_distil(tmp_path):
    from swp.testing.tiny import compose_cfg

    with pytest.raises(ConfigError, match="needs a task with next-token logits; PriceTask has none") as info:
        run(compose_cfg(["experiment=price", "recovery=distill_logits", "threads=1", "progress=false"],
                        tmp_path / "run"))
    assert "\n" not in str(info.value) and not (tmp_path / "run" / "results.json").exists()


# ---------------------------------------------------------------- a Hugging Face causal LM


@pytest.mark.parametrize("option", ["distill_squarehead", "lora"])
def test_tiny_llama_recovers_with_its_own_blocks_and_keeps_its_masks(tmp_path, assets, option):
    from swp.testing.hf_tiny import HF_TINY, data_files_override
    from swp.testing.tiny import compose_cfg

    overrides = [*HF_TINY, data_files_override(assets), f"model.name_or_path={assets['llama']}", "energy=none",
                 "schedule.finetune_steps=4", f"recovery={option}", "schedule.log_every=2"]
    results = run(compose_cfg(overrides, tmp_path / "run"))
    out = tmp_path / "run"
    weights, masks = load_file(out / "model.safetensors"), load_file(out / "masks.safetensors")
    assert all(torch.all(weights[n][~k] == 0) for n, k in masks.items())
    assert results["sparsity"] == results["mask_sparsity"] == pytest.approx(0.5, abs=1e-3)
    if option == "lora":
        assert results["lora_layers"] == 14  # 7 Linear layers in each of the 2 decoder layers
        assert results["lora_sparsity_before_merge"] == results["lora_sparsity_after_merge"] == results["sparsity"]
    else:
        assert _terms(out, "finetune") == {"task_loss", "kd_logits", "kd_hidden"}
        # The parameters and the buffers (Llama's rotary frequencies) of one copy of the model.
        assert results["model_bytes"] <= results["recovery_teacher_bytes"] <= results["model_bytes"] * 1.01
        assert math.isfinite(results["val_ppl"])


# ---------------------------------------------------------------- DDP under torchrun


@pytest.mark.slow
@pytest.mark.parametrize("option", ["distill_squarehead", "lora"])
def test_torchrun_ddp_recovery_equals_one_process(tmp_path, option):
    from swp.config import compose_run_config
    from tests.integration.test_distributed import RUN, _results, _torchrun

    short = ["schedule.train_steps=20", "schedule.finetune_steps=6", f"recovery={option}"]
    one = run(compose_run_config([*RUN, *short], tmp_path / "one"))
    p = _torchrun("distributed=ddp", *short, out=tmp_path / "ddp")
    assert p.returncode == 0, p.stderr[-3000:]
    ddp = _results(tmp_path / "ddp")
    print(f"torchrun ddp recovery={option}: val_loss {ddp['val_loss']:.7f} vs one process {one['val_loss']:.7f}")
    assert ddp["world_size"] == 2 and ddp["recovery"] == option
    assert math.isclose(ddp["val_loss"], one["val_loss"], abs_tol=1e-5), (ddp["val_loss"], one["val_loss"])
    assert ddp["sparsity"] == one["sparsity"] == ddp["mask_sparsity"]
