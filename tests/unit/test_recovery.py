"""The recovery options' parts: the distillation terms against hand-computed values, the frozen
teacher, the block-output hooks, LoRA's merge under the masks, and the one-line refusals."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from swp.errors import ConfigError
from swp.recovery.distill import LogitDistillation, SquareHeadDistillation
from swp.recovery.lora import LoRARecovery
from swp.recovery.losses import kd_hidden, kd_logits
from swp.recovery.teacher import BlockOutputs, Teacher

# ---------------------------------------------------------------- the distillation terms


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5], ids=lambda t: f"T={t}")
def test_kd_logits_is_t_squared_kl_teacher_to_student_averaged_over_positions(temperature):
    # Position 0: the teacher prefers token 1 (logits 0, ln 2, 0), the student is uniform.
    # Position 1: both agree exactly, so it adds 0 (and halves the mean).
    teacher = torch.tensor([[[0.0, math.log(2.0), 0.0], [1.0, -1.0, 0.5]]])
    student = torch.tensor([[[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]]])
    weights = [math.exp(v / temperature) for v in (0.0, math.log(2.0), 0.0)]
    p = [w / sum(weights) for w in weights]
    kl_first = sum(pi * math.log(pi / (1 / 3)) for pi in p)  # KL(p_t || uniform)
    expected = temperature**2 * (kl_first + 0.0) / 2
    assert kd_logits(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-5)  # float32


def test_kd_logits_is_zero_for_equal_logits_and_grows_with_disagreement():
    z = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    assert kd_logits(z, z, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    assert kd_logits(z + torch.randn(z.shape), z, 2.0).item() > 0


def test_kd_logits_reaches_the_student_only():
    student = torch.randn(1, 2, 4, requires_grad=True)
    teacher = torch.randn(1, 2, 4)
    kd_logits(student, teacher, 2.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_kd_hidden_is_the_normalised_mse_averaged_over_blocks():
    # Block 1: MSE((1, 2), (1, 0)) = 2, MSE(teacher, 0) = 0.5 -> 4.
    # Block 2: MSE((0, 0), (2, 2)) = 4, MSE(teacher, 0) = 4 -> 1.     Mean: 2.5.
    student = [torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])]
    teacher = [torch.tensor([1.0, 0.0]), torch.tensor([2.0, 2.0])]
    assert kd_hidden(student, teacher).item() == pytest.approx(2.5)


def test_kd_hidden_normalises_by_the_whole_batch_over_ranks():
    """Under DDP each rank holds half the batch: `reduce` sums the teacher's power over the ranks.
    Here the other rank's block-1 teacher is (3, 3): power (1 + 0 + 9 + 9) / 4 = 4.75."""
    student, teacher = [torch.tensor([1.0, 2.0])], [torch.tensor([1.0, 0.0])]

    def other_rank_added(t):
        t += torch.tensor([18.0, 2.0])  # its sum of squares, its element count
        return t

    assert kd_hidden(student, teacher, other_rank_added).item() == pytest.approx(2 / 4.75)


@pytest.mark.parametrize("student, teacher", [([], []), ([torch.ones(2)], [])], ids=["none", "mismatched"])
def test_kd_hidden_needs_one_output_per_block(student, teacher):
    with pytest.raises(ValueError, match="one student and one teacher output per block"):
        kd_hidden(student, teacher)


# ---------------------------------------------------------------- the teacher and its hooks


def _gpt(seed: int = 0):
    from swp.models.gpt import GPT

    torch.manual_seed(seed)
    return GPT(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def test_the_teacher_is_a_frozen_copy_that_survives_its_state_dict():
    model = _gpt()
    model.train()
    teacher = Teacher(model)
    assert not teacher.module.training and not any(p.requires_grad for p in teacher.module.parameters())
    assert all(p.requires_grad for p in model.parameters())  # the student is untouched
    with torch.no_grad():
        model.blocks[0].fc.weight.add_(1.0)  # the student moves; the teacher does not
    assert not torch.equal(teacher.module.blocks[0].fc.weight, model.blocks[0].fc.weight)
    copy = Teacher(_gpt(seed=1), teacher.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(copy.module.state_dict().values(),
                                                  teacher.module.state_dict().values()))
    # Tied head and embedding counted once: the teacher costs exactly the model's bytes.
    assert teacher.bytes() == sum(t.numel() * t.element_size() for t in
                                  {id(t): t for t in [*model.parameters(), *model.buffers()]}.values())


def test_block_outputs_are_recorded_in_block_order_and_tuples_give_their_first_element():
    class TupleBlock(nn.Module):
        def forward(self, x):
            return x * 2, "extra"

    blocks = nn.ModuleList([nn.Identity(), TupleBlock()])
    outputs = BlockOutputs(list(blocks))
    x = torch.ones(2)
    blocks[0](x)
    blocks[1](x)
    blocks[1](x + 1)  # re-run (gradient checkpointing): the entry is overwritten, not appended
    got = outputs.take()
    assert [g.tolist() for g in got] == [[1.0, 1.0], [4.0, 4.0]]
    with pytest.raises(RuntimeError, match="0 of 2 blocks ran"):
        outputs.take()
    outputs.close()
    blocks[0](x)
    assert outputs.outputs == {}


# ---------------------------------------------------------------- LoRA under the masks


def _hf(kind: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    from swp.testing.hf_tiny import GPT2, LLAMA

    fields = dict(LLAMA if kind == "llama" else GPT2)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(fields.pop("model_type"), vocab_size=50, **fields))


MODELS = {"gpt": lambda: _gpt(), "llama": lambda: _hf("llama"), "gpt2": lambda: _hf("gpt2")}


def _pruned_model(kind: str):
    """A model with half of every prunable weight masked to zero (random masks)."""
    from swp.pruners.select import prunable_parameters
    from swp.pruning.masks import MaskSet

    model = MODELS[kind]()
    params = prunable_parameters(model, None, None)
    g = torch.Generator().manual_seed(1)
    masks = MaskSet(params, {n: torch.rand(p.shape, generator=g) > 0.5 for n, p in params.items()})
    masks.apply()
    return model, params, masks


def _train_adapters(model) -> None:
    """Stands in for the fine-tune: every adapter moves away from its init (B starts at 0)."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _logits(model, x):
    model.eval()
    out = model(x)
    return out[0] if isinstance(out, tuple) else out.logits


@pytest.mark.parametrize("kind", list(MODELS))
def test_lora_merge_keeps_every_pruned_weight_exactly_zero_and_the_trained_function(kind):
    from peft.tuners.lora import LoraLayer

    model, params, masks = _pruned_model(kind)
    lora = LoRARecovery(rank=4, alpha=8)
    lora.attach(model, masks, params)
    assert lora.facts["lora_layers"] == len(params)  # default targets: exactly the pruned layers
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)  # base frozen
    _train_adapters(model)
    x = torch.randint(0, 11, (2, 8))
    before = _logits(model, x)
    # The naive merge (W + B A s) would fill the pruned positions: this test fails on it.
    layer = next(m for m in model.modules() if isinstance(m, LoraLayer))
    assert (layer.get_delta_weight("default") * ~layer.lora_variant["default"].keep.bool() != 0).any()
    lora.finish(model, masks)
    assert not any(isinstance(m, LoraLayer) for m in model.modules())  # plain layers again
    assert all(p.requires_grad for p in model.parameters())  # as trainable as before the adapters
    for name, keep in masks.keep.items():
        assert torch.all(params[name][~keep] == 0), name
    assert lora.facts["lora_sparsity_after_merge"] == lora.facts["lora_sparsity_before_merge"] == masks.sparsity()
    # masked_delta: the merged model is the model that was trained.
    torch.testing.assert_close(_logits(model, x), before, rtol=1e-5, atol=1e-5)


def test_lora_without_masked_delta_is_still_exactly_sparse_but_loses_what_fell_on_pruned_weights():
    model, params, masks = _pruned_model("gpt")
    lora = LoRARecovery(rank=4, alpha=8, masked_delta=False)
    lora.attach(model, masks, params)
    _train_adapters(model)
    x = torch.randint(0, 11, (2, 8))
    before = _logits(model, x)
    lora.finish(model, masks)
    assert all(torch.all(params[n][~k] == 0) for n, k in masks.keep.items())
    assert not torch.allclose(_logits(model, x), before, atol=1e-4)


def test_lora_targets_named_modules_only_and_a_missing_name_is_refused():
    model, params, masks = _pruned_model("gpt")
    lora = LoRARecovery(rank=2, target_modules=["fc"])
    lora.check(task=None, model=model, pruned=params, finetune_steps=1, prunes_in_dense=False,
               shards_parameters=False)
    lora.attach(model, masks, params)
    assert sorted(lora.layers) == ["blocks.0.fc", "blocks.1.fc"]
    with pytest.raises(ConfigError, match=r"recovery.target_modules=\['nope'\] matches no module of GPT"):
        LoRARecovery(target_modules=["nope"]).check(task=None, model=_gpt(), pruned=params, finetune_steps=1,
                                                     prunes_in_dense=False, shards_parameters=False)


# ---------------------------------------------------------------- refusals, one line each


class _Task:
    def __init__(self, logits: bool):
        self.next_token_logits = logits


REFUSALS = {
    "distill-no-logits": (LogitDistillation(), dict(task=_Task(False)), "needs a task with next-token logits"),
    "distill-fsdp": (LogitDistillation(), dict(shards_parameters=True), "not supported under distributed=fsdp"),
    "distill-nothing-to-recover": (LogitDistillation(), dict(finetune_steps=0), "has nothing to recover"),
    "squarehead-no-blocks": (SquareHeadDistillation(), dict(model=nn.Sequential(nn.Linear(2, 2))),
                             "declares no structure"),
    "lora-no-finetune": (LoRARecovery(), dict(finetune_steps=0), "schedule.finetune_steps=0 leaves nothing"),
    "lora-fsdp": (LoRARecovery(), dict(shards_parameters=True), "not supported under distributed=fsdp"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_one_line(case):
    recovery, changes, message = REFUSALS[case]
    model = _gpt()
    kw = dict(task=_Task(True), model=model, pruned={}, finetune_steps=5, prunes_in_dense=False,
              shards_parameters=False) | changes
    with pytest.raises(ConfigError, match=message) as info:
        recovery.check(**kw)
    assert "\n" not in str(info.value)


def test_a_dense_phase_that_prunes_is_something_to_recover_without_a_fine_tune():
    LogitDistillation().check(task=_Task(True), model=_gpt(), pruned={}, finetune_steps=0, prunes_in_dense=True,
                              shards_parameters=False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), r"recovery.temperature must be a finite number in \(0, 10000\]"),
    (dict(weight=1.5), r"recovery.weight must be a finite number in \[0, 1\]"),
], ids=["temperature", "weight"])
def test_library_users_get_the_constructor_checks(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LogitDistillation(**kwargs)


def test_the_control_of_a_sweep_keeps_the_recovery():
    from hydra_plugins.swp_sweeper.control_sweeper import control_of

    job = ["pruner=wanda", "target_sparsity=0.5", "recovery=distill_squarehead", "recovery.weight=0.7", "seed=1"]
    assert sorted(control_of(job)) == ["pruner=none", "recovery.weight=0.7", "recovery=distill_squarehead", "seed=1"]


@pytest.mark.parametrize("experiment", ["recovery_sweep", "smollm2_recovery"])
def test_the_recovery_experiments_compose_validate_and_sweep_every_option(tmp_path, experiment):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from swp.testing.tiny import CONF, compose_cfg
    from swp.validation import validate_config

    validate_config(compose_cfg([f"experiment={experiment}"], tmp_path))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params.recovery == "plain,distill_logits,distill_squarehead,lora"
