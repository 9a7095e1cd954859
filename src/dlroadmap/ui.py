"""Console and progress display shared by the CLI, the tour and the Trainer.

Only one live display can run at a time in a terminal, so nested work (the tour running a node,
the node running the Trainer) adds tasks to the progress bar that is already open.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)
_active: Progress | None = None


def progress_enabled() -> bool:
    """Live bars only on an interactive terminal; DLR_PROGRESS=0/1 forces it off/on."""
    if os.environ.get("RANK", "0") != "0":
        return False  # in data-parallel training only rank 0 shows progress
    env = os.environ.get("DLR_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no")
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress() -> Iterator[Progress | None]:
    """The open progress display, or a new one; None when progress is disabled."""
    global _active
    if not progress_enabled():
        yield None
        return
    if _active is not None:
        yield _active
        return
    _active = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        refresh_per_second=8,
    )
    try:
        with _active:
            yield _active
    finally:
        _active = None
