"""swp: training-aware pruning by Systematic Weight Evaluation (arXiv 2502.17071)."""
