"""The scheduler: find add-ons whose rotation is due and rotate each exactly once."""

from securekey.scheduler.runner import Scheduler, TickResult

__all__ = ["Scheduler", "TickResult"]
