"""Fixtures shared by the test files (shared functions and constants are in helpers.py)."""

import os
import subprocess

import pytest
from helpers import REPO, STATE


@pytest.fixture(scope="module")
def scaling_cache(tmp_path_factory):
    """Prepared corpora go to this session's temporary folder, not the user's ~/.cache/scaling."""
    folder = tmp_path_factory.getbasetemp() / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCALING_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def slurm_env():
    """The environment of a SLURM client of the test cluster; starts the cluster if it is not up."""
    start = subprocess.run(
        ["bash", str(REPO / "tests/slurm.sh"), "start"], capture_output=True, text=True, timeout=900
    )
    assert start.returncode == 0, start.stdout + start.stderr
    yield dict(os.environ, SLURM_CONF=str(STATE / "etc/slurm.conf"))
    if "already running" not in start.stdout:  # leave the cluster as this module found it
        subprocess.run(["bash", str(REPO / "tests/slurm.sh"), "stop"], capture_output=True, timeout=120)
