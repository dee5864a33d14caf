"""Fixtures shared by the test files (shared functions and constants are in helpers.py)."""

import os
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, STATE, CliResult


# ---- pytest-xdist: `make test` runs the suite on 2 workers (-n 2 --dist loadfile --no-loadscope-reorder)
def work_unit(nodeid: str) -> str:
    """What one worker runs whole: a test module, so that its module-scoped fixtures (a trained reference
    run, an mlflow server) are built once; the SLURM modules (test_slurm*.py) together, as they share the
    one cluster of tests/slurm.sh."""
    module = nodeid.split("::", 1)[0]
    return "slurm" if Path(module).name.startswith("test_slurm") else module


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which a plain run need not have
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByWorkUnit(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config, items):
    """On an xdist worker, the SLURM modules and the modules with slow tests come first, so that no long
    module starts last while the other worker idles (the order the workers' scheduler hands them out)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return  # a plain run keeps the collection order
    slow = {work_unit(item.nodeid) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (work_unit(item.nodeid) != "slurm", work_unit(item.nodeid) not in slow))


@pytest.fixture
def cli(capsys):
    """`cli(*argv)` runs `scaling ARGV...` in this process (a subprocess costs seconds of imports each) and
    returns its CliResult; argparse's own errors (which exit) give their status too."""
    from scaling.cli import main  # here, not at the top: a test session need not import every command

    def run(*argv) -> CliResult:
        capsys.readouterr()  # what the test printed before is not the command's
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:
            status = exc.code
        out, err = capsys.readouterr()
        return CliResult(status, out, err)

    return run


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
