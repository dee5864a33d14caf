"""Reading and printing quantities with SI-style suffixes: 175B parameters, 300B tokens, 3.8e24 FLOPs."""

from __future__ import annotations

import math
import re

from scaling.errors import UsageError

_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
_QUANTITY = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMBGTP]?)\s*$")


def parse_quantity(text: str | float | int, what: str = "value") -> float:
    """Parse '175e9', '175B', '1.4T', '300k' or a number into a positive finite float.

    Raises UsageError naming `what` when the text is not such a quantity.
    """
    shown = text if isinstance(text, int | float) or len(str(text)) <= 40 else str(text)[:40] + "..."
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _QUANTITY.match(str(text))
        if not match:
            raise UsageError(
                f"{what} {shown!r} is not a number; use e.g. 175e9, 175B, 1.4T (k, M, B, T suffixes)"
            )
        value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} must be a positive finite number, got {shown!r}")
    return value


def count(n: int, noun: str) -> str:
    """3, 'run' -> '3 runs'; 1, 'run' -> '1 run' (nouns with a plain plural s)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def format_quantity(value: float, digits: int = 3) -> str:
    """175e9 -> '175B', 1.4e12 -> '1.4T', 3.2e5 -> '320k'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


def sci(value: float, digits: int = 3) -> str:
    """3.15e+23 -> '3.15e23': FLOPs and other large counts in titles, legends and the report."""
    return f"{value:.{digits}g}".replace("e+", "e")
