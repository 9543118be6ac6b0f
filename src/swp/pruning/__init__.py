"""Pure pruning math (no models, no loops) plus parameter selection and mask enforcement."""
