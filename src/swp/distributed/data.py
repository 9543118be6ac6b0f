"""Each rank's share of the global batch, without touching the task classes."""

from __future__ import annotations

import torch

from swp.errors import ConfigError


class RankSlicedTask:
    """A task whose training batches are this rank's slice of the global batch.

    Every rank draws the task's whole batch (`batch_size` windows) from the same generator and
    keeps rows [rank * b, (rank + 1) * b) with b = batch_size / world. The generator therefore
    advances exactly as in one process: the ranks together see exactly one process's data,
    and a checkpoint's generator state means the same at any world size. Drawing the global
    batch costs an index draw and a gather of token ids per step, not a forward pass.

    Evaluation is unchanged: every rank evaluates the same fixed windows (under FSDP2 every rank
    must run the forward pass anyway), so the metrics agree on every rank.

    The training forward (model in train mode) goes through `route(model)` (the strategy's
    `training_module`): under DDP that is the DDP wrapper of the bare model, so the run's loop,
    which holds the bare model (for checkpoints, pruning and evaluation), still gets DDP's
    gradient all-reduce.

    Args:
        task: the wrapped task (anything with `train_batch(generator, device)` returning a
            tensor, or a tuple/list/dict of tensors, with the batch on dim 0).
        rank, world: this rank and the world size.
        route: maps the model the loop passes to `loss` to the module to run (default: itself).
    """

    def __init__(self, task, rank: int, world: int, route=None):
        batch = getattr(task, "batch_size", None)
        if batch is None:
            raise ConfigError(f"{type(task).__name__} has no batch_size: it cannot be split over {world} ranks")
        if batch % world:
            raise ConfigError(
                f"the global batch ({batch}, dataset.batch_size) must be a multiple of the world size ({world})"
            )
        self.task, self.rank, self.world, self.route = task, rank, world, route
        self.per_rank = batch // world
        # The job's tokens per step (all ranks), so the loop's tokens/s is the job's throughput.
        self.tokens_per_batch = task.tokens_per_batch

    def __getattr__(self, name):  # everything else (loss, evaluate, metrics, vocab_size...) is the task's
        return getattr(self.task, name)

    def loss(self, model, batch):
        # Only a training forward needs DDP's wrapper; calibration's forwards (eval mode) run the
        # bare model, so they may end early (a hook stops them) without a collective in flight.
        return self.task.loss(self._routed(model), batch)

    def loss_and_logits(self, model, batch):
        return self.task.loss_and_logits(self._routed(model), batch)  # a teacher (eval mode) runs bare

    def _routed(self, model):
        return self.route(model) if self.route is not None and model.training else model

    def train_batch(self, generator: torch.Generator, device):
        return _rows(self.task.train_batch(generator, device), self.rank * self.per_rank, self.per_rank)


def _rows(batch, start: int, n: int):
    if torch.is_tensor(batch):
        return batch[start:start + n]
    if isinstance(batch, dict):
        return {k: _rows(v, start, n) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_rows(v, start, n) for v in batch)
    return batch  # a scalar or None travels as is
