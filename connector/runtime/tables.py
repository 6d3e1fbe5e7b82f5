"""Plain-text tables for terminal output, shared by every command that prints rows to a person."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["render_table"]


def render_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()
) -> list[str]:
    """Plain-text columns, two spaces apart; columns in `right` are right-aligned."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right_aligned = set(right)
    lines = []
    for row in table:
        cells = [
            cell.rjust(width) if i in right_aligned else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
