"""Where the files shipped with `scaling` are: the Hydra configs (`sweeps/`) and the published data (`data/`).

In a clone they are the top-level folders `sweeps/` and `data/`, which users read and edit there. A wheel
carries copies of both inside the package, under `scaling/_shipped/` (setup.py puts them there), so that
`pip install scaling` without a clone has the same configs and data. The functions below answer for both.
"""

from __future__ import annotations

from pathlib import Path

from scaling.errors import UsageError

PACKAGE = Path(__file__).resolve().parent
SHIPPED = "_shipped"  # the folder of the package that holds the copies in a wheel


def _folder(name: str) -> Path:
    installed = PACKAGE / SHIPPED / name
    return installed if installed.is_dir() else PACKAGE.parent / name


def config_dir() -> Path:
    """The folder of the Hydra configs: `config.yaml` and the groups `model/`, `data/`, `sweep/`, `hydra/`."""
    return _folder("sweeps")


def data_dir() -> Path:
    """The folder of the published data sets (CSV files; their provenance in its README.md)."""
    return _folder("data")


def data_file(name: str) -> Path:
    """A published data set that ships with scaling, e.g. `data_file("chinchilla_epoch_fig4.csv")`."""
    folder = data_dir()
    path = (folder / name).resolve()
    if not (path.is_relative_to(folder.resolve()) and path.is_file()):
        shipped = ", ".join(sorted(str(p.relative_to(folder)) for p in folder.rglob("*.csv"))) or "none"
        raise UsageError(f"no data file {name!r} ships with scaling; shipped: {shipped}")
    return path
