"""scaling: scaling-law experiments on GPT language models.

The analysis API never imports torch, so published data can be fitted on a laptop::

    from scaling import load_runs, fit, allocate, predict
    table = load_runs("runs.csv")
    result = fit(table, law="chinchilla", bootstrap=0, seed=0)

Units everywhere: N in (non-embedding) parameters, D in tokens, C in FLOPs (6 N D unless stated),
loss in nats per token on held-out data.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Lazy exports keep `import scaling` cheap and free of optional dependencies. No submodule shares a name
# with an export, so importing a submodule never shadows one.
_EXPORTS = {
    "load_runs": "scaling.runs.table",
    "fit": "scaling.fitting.procedure",
    "allocate": "scaling.study.allocation",
    "predict": "scaling.study.prediction",
    "FitResult": "scaling.fitting.result",
    "UsageError": "scaling.errors",
    "plan": "scaling.study.planning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scaling' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
