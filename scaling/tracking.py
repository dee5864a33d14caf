"""The trackers, and what `scaling-train` writes to them and `scaling runs` reads back: one home for both.

Free of pandas and of any tracker package, so the trainer imports it at no cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRACKERS = ("mlflow", "tensorboard", "wandb")  # what `scaling runs` reads and `train.loggers` logs to
INSTALL_HINT = "install it with: pip install 'scaling[trackers]'"
# the final status scaling-train gives each tracker run (scaling.training.loggers)
STATUS_KEY = "scaling.status"


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{'model': {'n_layer': 2}} -> {'model.n_layer': 2}; lists and other objects are left out."""
    out: dict = {}
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif obj is None or isinstance(obj, str | int | float | bool):
        out[prefix[:-1]] = obj
    return out
