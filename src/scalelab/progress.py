"""Rich progress bars, one look for all long work. Output goes to stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


class _Progress(Progress):
    """Leaves its last frame on screen after success; after an error it clears itself, so the
    error stays the one line a user reads."""

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.live.transient = True
        super().__exit__(exc_type, exc, tb)


def progress(*extra: TextColumn, disable: bool = False) -> Progress:
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra,
        console=console,
        transient=False,
        disable=disable,
    )
