"""Leaderboards and bench tables as text: aligned for a terminal, markdown for a README, or CSV."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from aesweep import record
from aesweep.errors import ConfigError


def _warn_stderr(message: str) -> None:
    import sys

    print(f"aesweep: warning: {message}", file=sys.stderr)


def format_table(table: pd.DataFrame, fmt: str, notes: Sequence[str] = (), note: Callable[[str], None] = _warn_stderr) -> str:
    """Render as ``table`` (aligned text), ``md`` (markdown, notes as an italic paragraph) or ``csv``."""
    if fmt == "csv":
        for line in notes:
            note(line)
        return table.to_csv(index=False)
    cells = pd.DataFrame({column: [_cell(column, value) for value in table[column]] for column in table.columns})
    if fmt == "md":
        lines = ["| " + " | ".join(_md_escape(c) for c in cells.columns) + " |",
                 "|" + "|".join("---:" if is_numeric_column(table[c]) else "---" for c in cells.columns) + "|"]
        lines += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in cells.itertuples(index=False)]
        text = "\n".join(lines) + "\n"
        return text + ("\n" + " ".join(f"_{n}._" for n in notes) + "\n" if notes else "")
    if fmt == "table":
        text = cells.to_string(index=False) + "\n"
        return text + "".join(f"# {n}\n" for n in notes)
    raise ConfigError("--format", fmt, "table, md or csv")


def _cell(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column == "gain pts":
        return f"{value:+.2f}"
    if column == "gain ratio":
        return f"{value:.3f}"
    if isinstance(value, (float, np.floating)) and column.startswith(("mean ", "std ", "best ", "confirmed ") + tuple(
            f"{split}." for split in record.SPLITS)):
        return f"{value:.4f}"
    return compact(value)


def compact(value: object) -> str:
    """16.0 -> '16', 0.001 -> '0.001', True -> 'True'."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def is_numeric_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")
