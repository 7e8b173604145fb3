"""Rich progress bars on stderr, fed by RunContext.on_progress."""

from __future__ import annotations

from typing import Any

LABELS = {"ingest": "Ingesting evidence", "rules": "Compiling rules",
          "match": "Matching events"}
UNITS = {"ingest": "bytes", "rules": "files", "match": "events"}


class Progress:
    """A context manager whose ``update`` is a RunContext.on_progress callback."""

    def __init__(self, enabled: bool, console: Any) -> None:
        self.enabled = enabled
        self.console = console
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=self.console, transient=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def update(self, stage: str, done: int, total: int | None) -> None:
        """Advance the bar of ``stage``."""
        if self._bar is None:
            return
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = self._bar.add_task(
                f"{LABELS.get(stage, stage)} ({UNITS.get(stage, 'items')})", total=total)
        self._bar.update(task, completed=done, total=total)
