"""Fixtures shared by the test files."""

import pytest


@pytest.fixture(scope="module")
def scaling_cache(tmp_path_factory):
    """Prepared corpora go to this session's temporary folder, not the user's ~/.cache/scaling."""
    folder = tmp_path_factory.getbasetemp() / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCALING_CACHE", str(folder))
        yield folder
