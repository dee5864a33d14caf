"""scaling.io: atomic writes keep the usual file mode; the JSON-lines reader skips only a torn last line."""

import os
import stat

import pytest

from scaling.io import append_jsonl, atomic_write_json, read_jsonl


def test_atomic_write_gives_the_umask_mode_not_owner_only(tmp_path):
    atomic_write_json(tmp_path / "fit.json", {"E": 1.8})
    umask = os.umask(0)
    os.umask(umask)
    # as open() would create it: a report or a fit others may read, not mkstemp's owner-only 0600
    assert stat.S_IMODE(os.stat(tmp_path / "fit.json").st_mode) == 0o666 & ~umask


def test_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2})
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "val_lo')  # a writer killed mid-line
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    path.write_bytes(b'{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        list(read_jsonl(path))
