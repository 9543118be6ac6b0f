"""Price regression from an image and a text, scored by mean absolute error in dollars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from torch.nn import functional as F

from swp.config_types import Count, Range, check_arguments
from swp.data.price_examples import PriceExamples
from swp.data.words import WordVocab
from swp.errors import ConfigError


@dataclass
class PriceBatch:
    """One batch; each model reads what it needs (a small CNN the token ids, a pretrained
    vision-language model the raw texts and images)."""

    images: torch.Tensor  # uint8 (B, 3, H, W)
    tokens: torch.Tensor  # int64 (B, max_tokens), 0 = padding
    texts: list[str]
    target: torch.Tensor  # float32 (B,): standardised log price


class PriceTask:
    """Predict a product's price from its image and text.

    The model regresses the standardised log price (prices span two orders of magnitude, and
    a log target weighs a $50 error on a $400 stone like a $500 error on a $4,000 one); the
    reported MAE is in dollars, on the price recovered from the prediction. The validation rows
    are fixed by the data set's seeded split, so every run of a sweep is scored on the same rows.

    Args:
        examples: images, texts, prices and split (from `swp.data.diamonds` or `swp.data.burberry`).
        batch_size: examples per training step.
        vocab_size: at most this many word ids (built from the training texts).
        max_tokens: texts are cut or padded to this many words.
        eval_examples: score on the first this many validation rows (None: all of them).
        eval_batch_size: examples per forward pass when evaluating.
    """

    metrics = ("mae", "loss")  # the first is the headline metric
    lower_is_better = True
    next_token_logits = False  # one number per example: nothing for logit distillation to match

    def __init__(
        self,
        examples: PriceExamples,
        batch_size: Count = 64,
        vocab_size: Annotated[int, Range(2)] = 2000,
        max_tokens: Count = 32,
        eval_examples: Count | None = None,
        eval_batch_size: Count = 512,
    ):
        check_arguments(PriceTask, locals(), at="dataset")
        train, val = examples.split["train"], examples.split["val"]
        if len(train) == 0 or len(val) == 0:
            raise ConfigError("the price data set needs at least one training and one validation row")
        prices = np.asarray(examples.prices, dtype=np.float64)
        if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
            raise ConfigError("every price must be a finite number > 0")
        self.examples, self.batch_size, self.eval_batch_size = examples, batch_size, eval_batch_size
        self.tokens_per_batch = batch_size  # throughput is reported in examples per second
        self.vocab = WordVocab([examples.texts[i] for i in train], vocab_size)
        self.tokens = torch.from_numpy(self.vocab.encode(examples.texts, max_tokens))
        log_price = np.log(prices)
        self.log_mean, self.log_std = float(log_price[train].mean()), float(log_price[train].std() or 1.0)
        self.target = torch.from_numpy((log_price - self.log_mean) / self.log_std).float()
        self.prices = torch.from_numpy(prices)
        self.train_rows = torch.from_numpy(train)
        self.val_rows = torch.from_numpy(val[:eval_examples] if eval_examples else val)
        # The reference every model must beat: predict the mean training price for every row.
        train_mean = prices[train].mean()
        self.baseline_val_mae = float(np.abs(prices[self.val_rows.numpy()] - train_mean).mean())

    @property
    def batches_per_split(self) -> int:
        """Distinct batches the training split holds (calibration may not ask for more)."""
        return max(1, len(self.train_rows) // self.batch_size)

    def model_kwargs(self) -> dict:
        """What a model must be built with to fit this data."""
        return {"vocab_size": len(self.vocab), "image_size": self.examples.image_size}

    def extra_results(self) -> dict:
        """Figures results.json carries besides the pipeline's: the mean-price baseline."""
        return {
            "baseline_val_mae": self.baseline_val_mae,
            "data_source": self.examples.source,
            "train_rows": len(self.train_rows),
            "val_rows": len(self.val_rows),
        }

    def _batch(self, rows: torch.Tensor, device) -> PriceBatch:
        idx = rows.numpy()
        images = torch.from_numpy(self.examples.images[idx]).permute(0, 3, 1, 2).contiguous()
        return PriceBatch(
            images=images.to(device, non_blocking=True),
            tokens=self.tokens[rows].to(device, non_blocking=True),
            texts=[self.examples.texts[i] for i in idx],
            target=self.target[rows].to(device, non_blocking=True),
        )

    def train_batch(self, generator: torch.Generator, device) -> PriceBatch:
        pick = torch.randint(len(self.train_rows), (self.batch_size,), generator=generator)
        return self._batch(self.train_rows[pick], device)

    def loss(self, model, batch: PriceBatch) -> torch.Tensor:
        """Mean squared error on the standardised log price."""
        pred = model(images=batch.images, tokens=batch.tokens, texts=batch.texts)
        return F.mse_loss(pred.float(), batch.target)

    def to_dollars(self, pred: torch.Tensor) -> torch.Tensor:
        """Model outputs (standardised log price) as prices in dollars."""
        return torch.exp(pred.double() * self.log_std + self.log_mean)

    @torch.no_grad()
    def evaluate(self, model, device, autocast) -> dict[str, float]:
        """MAE in dollars and the training loss, over the fixed validation rows."""
        was_training = model.training
        model.eval()
        abs_err, sq_err = 0.0, 0.0
        for rows in self.val_rows.split(self.eval_batch_size):
            batch = self._batch(rows, device)
            with autocast():
                pred = model(images=batch.images, tokens=batch.tokens, texts=batch.texts)
            pred = pred.float().cpu()
            abs_err += float((self.to_dollars(pred) - self.prices[rows]).abs().sum())
            sq_err += float(((pred - batch.target.cpu()) ** 2).sum())
        model.train(was_training)
        n = len(self.val_rows)
        return {"mae": abs_err / n, "loss": sq_err / n}
