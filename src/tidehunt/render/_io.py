"""Writing a renderer's file behind the renderer: its next slice is built while the last
one is copied into the file."""

from __future__ import annotations

import queue
import threading
from types import TracebackType
from typing import IO, Any

#: Writes in flight at most, queued or being written (a bulk renderer's slices: JSONL's
#: are ~10 MiB at 100x). One: the slice being written, beside the one being built.
DEPTH = 1


class WriteBehind:
    """A binary file-like object whose ``write`` hands the bytes to a thread that writes
    them to ``fh``, in order, and returns at once (it waits only while ``depth`` writes
    are still in flight).

    A bulk renderer (JSONL, the CSV timeline) builds a slice of text, then writes it. On
    this machine class the write of a fresh file is mostly the kernel's first touch of new
    page-cache pages (0.4-0.6 s of system time for the 266 MB of the 100x benchmark's
    JSONL): in a thread of its own it goes on while the next slice is built (the write
    releases the GIL, and Polars builds without it). A write that fails (disk full) is
    raised by the next ``write`` or by ``close``; nothing after it is written.

    Bytes and read-only memoryviews (an Arrow buffer's) are queued as they are; anything
    else is copied first, since the caller may reuse it once ``write`` returns.
    """

    def __init__(self, fh: IO[bytes], depth: int = DEPTH) -> None:
        self.fh = fh
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue()
        self._slots = threading.Semaphore(depth)  # taken by write, given back once written
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="render-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._error is None:  # after an error, drained unwritten
                try:
                    self.fh.write(data)
                except BaseException as exc:  # noqa: BLE001 - raised in the writer's thread
                    self._error = exc
            del data  # the bytes go before the next write is let in
            self._slots.release()

    def write(self, data: Any) -> int:
        """Queue ``data`` to be written; its length."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("write to a closed WriteBehind")
        if not isinstance(data, bytes) and not (isinstance(data, memoryview) and data.readonly):
            data = bytes(data)
        n = len(data)
        self._slots.acquire()
        self._queue.put(data)
        return n

    def close(self) -> None:
        """Wait until everything queued is written; raise the first write error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop without raising (the renderer failed): what is queued is dropped."""
        if not self._closed:
            self._closed = True
            if self._error is None:
                self._error = _Abandoned()
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()


class _Abandoned(Exception):
    """The writes after a renderer's failure (never raised to a caller)."""
