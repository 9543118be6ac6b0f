"""Writes offline stand-ins for the Hugging Face path: Shakespeare text files, a BPE tokenizer
trained on them, and tiny random Llama and GPT-2 folders (save_pretrained), then prints the
command that prunes one with the real entrypoint on a CPU.

    python scripts/make_tiny_hf_assets.py outputs/tiny_hf
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from swp.testing.hf_tiny import GPT2, LLAMA, build_model_folder, build_tokenizer, write_corpus


def main(out: Path) -> None:
    files = write_corpus(out / "text")
    tok = build_tokenizer(out / "tokenizer", files["train"])
    for name, fields in (("llama", LLAMA), ("gpt2", GPT2)):
        folder = build_model_folder(out / name, fields, tok)
        print(
            f"python train.py experiment=llm_wikitext model.name_or_path={folder} precision=fp32 threads=1 "
            f"dataset.path=text dataset.name=null "
            f"'+dataset.data_files={{train: {files['train']}, test: {files['test']}}}' "
            "dataset.block_size=64 dataset.batch_size=8 schedule.train_steps=200 schedule.finetune_steps=50 "
            "schedule.lr=3e-3 schedule.finetune_lr=1e-3"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/tiny_hf"))
