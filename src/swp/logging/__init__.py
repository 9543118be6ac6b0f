"""Loggers: one small interface; the loop never asks which one is on."""
