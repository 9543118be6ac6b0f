"""Data sources: each returns plain text or examples; tasks turn them into batches."""
