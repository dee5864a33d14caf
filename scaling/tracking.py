"""The trackers, and what `scaling-train` writes to them and `scaling runs` reads back: one home for both.

Free of pandas and of any tracker package, so the trainer imports it at no cost. The MLflow client's
settings both sides use live here too: one short health check of a tracking server before any use, and
bounded HTTP retries for every call after it.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

TRACKERS = ("mlflow", "tensorboard", "wandb")  # what `scaling runs` reads and `train.loggers` logs to
INSTALL_HINT = "install it with: pip install 'scaling[trackers]'"
# the final status scaling-train gives each tracker run (scaling.training.loggers)
STATUS_KEY = "scaling.status"

# A server that refuses the connection fails at once; a host that never answers costs this long, once.
HEALTH_TIMEOUT_S = 5.0
# mlflow retries a failed request 7 times with exponential backoff, about 4 minutes (meant to ride out a
# rate limit). A training run must not stall that long on a tracker, nor a reader hang on a dead server:
# 2 retries, after 0 s and 2-3 s (at most 3 s in all when the server is gone), and 10 s for a reply (33 s
# at most for a server that accepts but never answers). Settings in the environment win.
MLFLOW_HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# mlflow 3 refuses its file store (`mlruns` folders) unless this is set; reading one needs it
MLFLOW_FILE_STORE = {"MLFLOW_ALLOW_FILE_STORE": "true"}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{'model': {'n_layer': 2}} -> {'model.n_layer': 2}; lists and other objects are left out."""
    out: dict = {}
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif obj is None or isinstance(obj, str | int | float | bool):
        out[prefix[:-1]] = obj
    return out


def mlflow_unreachable(uri: str) -> str | None:
    """Why the MLflow tracking server at an http(s) `uri` cannot be reached (one request to its /health
    endpoint, at most HEALTH_TIMEOUT_S seconds), or None when it answers or `uri` is not a server. Any
    HTTP answer counts: a proxy that wants credentials answers 401, and the client sends them."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


@contextmanager
def mlflow_settings(file_store: bool = False) -> Iterator[None]:
    """For the mlflow calls inside: MLFLOW_HTTP_LIMITS (and, with `file_store`, MLFLOW_FILE_STORE) where
    the environment does not set them, and urllib3's retry messages silenced (the caller reports a
    failure once). Everything is as it was afterwards."""
    settings = {**MLFLOW_HTTP_LIMITS, **(MLFLOW_FILE_STORE if file_store else {})}
    added = [name for name in settings if name not in os.environ]
    retries = logging.getLogger("urllib3.connectionpool")
    level = retries.level
    os.environ.update({name: settings[name] for name in added})
    retries.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        retries.setLevel(level)
