"""Helpers shared by the tests, benchmarks and scripts (tiny configs, tiny HF assets)."""
