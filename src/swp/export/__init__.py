"""Exports of a pruned model: compressed safetensors (smaller on disk) and Hugging Face folders."""
