"""The `recovery` config group: how the pruned model recovers while it is fine-tuned with masks
(plain task loss, distillation from the dense teacher, LoRA adapters merged under the masks)."""
