"""`recovery=plain`: the masked fine-tune minimises the task's own loss (the default)."""

from __future__ import annotations

from swp.recovery.base import Recovery


class PlainRecovery(Recovery):
    """Fine-tuning on the task's loss alone, exactly the run without a recovery option."""
