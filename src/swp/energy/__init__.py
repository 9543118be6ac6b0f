"""Energy and carbon per phase of a run (codecarbon, offline), behind a no-op default."""
