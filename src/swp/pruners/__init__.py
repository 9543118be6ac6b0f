"""Pruners differ only in their scores; masking, enforcement and reporting are shared."""
