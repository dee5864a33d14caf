"""CSV files of runs read with one clear error: our run tables and the W&B UI's exports alike.

Spreadsheet programs (Excel's "CSV UTF-8") start a CSV with a byte-order mark; pandas reads past it, so
the first column keeps its name (whoever reads a header by hand must skip it too: `utf-8-sig`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.errors import UsageError


def read_csv(path: Path, what: str = "a CSV run table") -> pd.DataFrame:
    """The CSV file at `path`; UsageError naming the file when it is empty, not UTF-8 or not a CSV (a row
    with more fields than the header, say). `what` is what the file should hold, for the messages."""
    try:
        return pd.read_csv(path, encoding="utf-8", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: empty file (expected {what} with a header and one row per run)") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text (expected {what})") from None
    except pd.errors.ParserError as exc:
        raise UsageError(f"{path}: not a readable CSV ({str(exc).strip()})") from None
