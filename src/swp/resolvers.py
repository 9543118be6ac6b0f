"""Integer arithmetic the config files may use (OmegaConf resolvers), registered on import.

The bake-off derives every recipe's phase lengths from one budget (conf/train.yaml ``budget``,
conf/schedule/bakeoff.yaml), so a budget sweep (``budget.scale=0.25,1,4``) is one override:

    ${swp.mul:a,b,...}   round(a * b * ...) to the nearest integer (halves up)
    ${swp.sub:a,b}       a - b
    ${swp.div:a,b}       max(1, a // b): a step interval, never 0

`swp.cli` and `swp.config` import this module, so `python train.py`, its sweep workers, tests
and notebooks resolve the same values.
"""

from __future__ import annotations

import math

from omegaconf import OmegaConf


def mul(*factors: float) -> int:
    """The product of the factors, rounded to the nearest integer (halves up, not to even)."""
    return int(math.floor(math.prod(float(f) for f in factors) + 0.5))


def sub(a: int, b: int) -> int:
    return int(a) - int(b)


def div(a: int, b: int) -> int:
    """At least 1: an interval of steps (tracking, mask updates) that is never 0."""
    return max(1, int(a) // int(b))


RESOLVERS = {"swp.mul": mul, "swp.sub": sub, "swp.div": div}


def register() -> None:
    """Registers the resolvers once per process (idempotent)."""
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
