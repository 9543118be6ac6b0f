"""Next-character prediction on a text, split once into train and validation."""

from __future__ import annotations

import numpy as np
import torch

from swp.config_types import Count, OpenFraction, Seed, check_arguments
from swp.errors import ConfigError
from swp.infra.runtime import check_fits_memory


class CharLMTask:
    """Character-level language modelling, nanoGPT style: random windows for training and a
    fixed set of validation windows, so every evaluation of a run sees the same text.

    Args:
        text: the corpus (from one of the `swp.data.text` sources).
        block_size: context length; must fit in both splits.
        batch_size: windows per training step.
        val_fraction: the last part of the text held out for validation.
        eval_batches: validation batches per evaluation (fixed windows, seeded by eval_seed).
        eval_seed: seeds the choice of validation windows (not the training seed, so all runs
            of a sweep are scored on identical text).
    """

    metrics = ("loss",)  # the first is the task's headline metric
    lower_is_better = True
    next_token_logits = True  # `loss_and_logits` (distillation)

    def __init__(
        self,
        text: str,
        block_size: Count,
        batch_size: Count = 32,
        val_fraction: OpenFraction = 0.1,
        eval_batches: Count = 20,
        eval_seed: Seed = 1234,
    ):
        check_arguments(CharLMTask, locals(), at="dataset")
        if not text or not text.strip():
            raise ConfigError("the dataset's text is empty")
        self.chars = sorted(set(text))
        # Encode through code points: sorted chars <-> sorted code points, so searchsorted gives
        # each character's id (10x faster than a Python dict loop on the 5 MB corpus).
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(np.array([ord(c) for c in self.chars], dtype=np.uint32), points)
        data = torch.from_numpy(ids.astype(np.int32))
        n_val = int(len(data) * val_fraction)
        self.train_data, self.val_data = data[: len(data) - n_val], data[len(data) - n_val :]
        for split, d in (("train", self.train_data), ("validation", self.val_data)):
            if len(d) <= block_size + 1:
                raise ConfigError(
                    f"block_size {block_size} is longer than the {split} text ({len(d)} characters)"
                )
        self.block_size, self.batch_size = block_size, batch_size
        self.tokens_per_batch = batch_size * block_size
        check_fits_memory(8 * eval_batches * batch_size, "dataset.eval_batches x dataset.batch_size",
                          f"{eval_batches * batch_size:,} validation windows")
        g = torch.Generator().manual_seed(eval_seed)
        self._val_starts = torch.randint(
            len(self.val_data) - block_size - 1, (eval_batches, batch_size), generator=g
        )

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def batches_per_split(self) -> int:
        """Distinct batches the training split holds (calibration may not ask for more)."""
        return max(1, len(self.train_data) // self.tokens_per_batch)

    def model_kwargs(self) -> dict:
        """What the model must be built with to fit this data."""
        return {"vocab_size": self.vocab_size}

    def extra_results(self) -> dict:
        """The split that every figure of the run was measured on."""
        return {"train_chars": len(self.train_data), "val_chars": len(self.val_data)}

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def _windows(self, data: torch.Tensor, starts: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.arange(self.block_size + 1)
        w = data[starts.unsqueeze(1) + offsets].long()
        return w[:, :-1].to(device, non_blocking=True), w[:, 1:].to(device, non_blocking=True)

    def train_batch(self, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.train_data) - self.block_size - 1, (self.batch_size,), generator=generator)
        return self._windows(self.train_data, starts, device)

    def loss(self, model, batch) -> torch.Tensor:
        return model(*batch)[1]

    def loss_and_logits(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the logits it came from, (batch, block_size, vocab), in one forward."""
        logits, loss = model(*batch)
        return loss, logits

    @torch.no_grad()
    def evaluate(self, model, device, autocast) -> dict[str, float]:
        """Mean validation cross-entropy (nats per character) over the fixed windows."""
        was_training = model.training
        model.eval()
        total = 0.0
        for starts in self._val_starts:
            with autocast():
                total += float(model(*self._windows(self.val_data, starts, device))[1])
        model.train(was_training)
        return {"loss": total / len(self._val_starts)}
