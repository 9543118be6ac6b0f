"""Runs under torchrun: process groups, DDP / FSDP2 strategies, sharding-aware helpers.

`strategy` holds the `distributed` config group's classes; `sharding` the DTensor helpers the
pruning math calls (no-ops on plain tensors); `env` the process group; `state` gathered
checkpoints; `launch` local multi-process starts for tests and benchmarks.
"""
