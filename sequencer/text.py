"""Text for people: Markdown tables, one-line summaries of errors, and progress lines."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from typing import TextIO

log = logging.getLogger("sequencer.progress")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] = ()) -> str:
    """A Markdown table; the columns flagged in `numeric` are right-aligned."""
    align = ["---:" if numeric and numeric[i] else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def first_line(error: object) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class Progress:
    """How much of a stage is done and how fast: `N pairs, R pairs/s, M MB/s`.

    `live` redraws the line in place on `stream` at most four times a second (on a terminal);
    `done_line` logs one line when the stage ends, for output that is not a terminal. Used as a
    context manager, the stage ends with the block.
    """

    def __init__(
        self,
        stage: str = "",
        unit: str = "pairs",
        live: bool | None = None,
        done_line: bool = True,
        stream: TextIO | None = None,
    ):
        self.stage, self.unit, self.done_line = stage, unit, done_line
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() and log.isEnabledFor(logging.INFO) if live is None else live
        self.started = self.shown = time.monotonic()
        self.done = 0
        self.bytes = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        elif self.live:  # interrupted: the line ends where it was
            self.stream.write("\n")

    def advance(self, count: int) -> None:
        self.update(self.done + count)

    def update(self, done: int, bytes_read: int | None = None) -> None:
        """`done` of the stage's units so far, and `bytes_read` of its input if it reads a file."""
        self.done = done
        if bytes_read is not None:
            self.bytes = bytes_read
        now = time.monotonic()
        if self.live and now - self.shown >= 0.25:
            self.shown = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def close(self) -> None:
        now = time.monotonic()
        if self.live:
            self.stream.write("\r" + self.line(now) + "\n")
            self.stream.flush()
        elif self.done_line and self.stage:
            log.info("%s", self.line(now, summary=True))

    def line(self, now: float, summary: bool = False) -> str:
        """`N pairs, R pairs/s, M MB/s`, or for the summary of a finished stage, `N pairs in S s (R pairs/s, ...)`."""
        seconds = max(now - self.started, 1e-9)
        rates = [f"{self.done / seconds:,.0f} {self.unit}/s"] + (
            [f"{self.bytes / seconds / 1e6:,.1f} MB/s"] if self.bytes else []
        )
        if summary:
            text = f"{self.done:,} {self.unit} in {seconds:.1f} s ({', '.join(rates)})"
        else:
            text = ", ".join([f"{self.done:,} {self.unit}", *rates])
        return f"{self.stage}: {text}" if self.stage else text
