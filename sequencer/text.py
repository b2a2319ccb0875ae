"""Text for people: Markdown tables and one-line summaries of errors."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] = ()) -> str:
    """A Markdown table; the columns flagged in `numeric` are right-aligned."""
    align = ["---:" if numeric and numeric[i] else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def first_line(error: object) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
