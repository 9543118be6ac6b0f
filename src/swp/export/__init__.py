"""Writing the pruned model in formats other tools load (the run folder always has safetensors)."""
