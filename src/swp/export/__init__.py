"""Exports of a pruned model that are actually smaller: compressed safetensors, HF save_pretrained."""
