"""``render._io.WriteBehind``: a bulk renderer's writes, in a thread of their own."""

from __future__ import annotations

import io
import threading

import pytest

from tidehunt.render._io import WriteBehind


def test_writes_land_in_order_and_mutable_buffers_are_copied():
    sink = io.BytesIO()
    buf = bytearray(b"abc")
    with WriteBehind(sink) as out:
        for i in range(500):
            out.write(f"{i}\n".encode())
        out.write(memoryview(b"ro-view\n"))  # read-only: queued as it is
        assert out.write(buf) == 3
        buf[:] = b"XYZ"  # the caller reuses its buffer once write returns
    assert sink.getvalue() == b"".join(f"{i}\n".encode() for i in range(500)) \
        + b"ro-view\nabc"


class _Full(io.RawIOBase):
    """A file that takes two writes, then fails as a full disk does."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        if len(self.got) == 2:
            raise OSError(28, "No space left on device")
        self.got.append(bytes(b))
        return len(b)


def test_a_failed_write_is_raised_and_nothing_after_it_is_written():
    fh = _Full()
    out = WriteBehind(fh)

    def write_all() -> None:
        for i in range(100):  # a later write, or close, raises the writer's error
            out.write(b"%d" % i)
        out.close()

    with pytest.raises(OSError, match="No space"):
        write_all()
    with pytest.raises(OSError, match="No space"):
        out.close()
    assert fh.got == [b"0", b"1"]


def test_a_failing_renderer_leaves_no_thread_and_its_error_stands():
    fh = _Full()
    out = WriteBehind(fh)

    def render() -> None:
        with out:
            out.write(b"a")
            raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer"):
        render()
    assert not out._thread.is_alive()


class _Gated(io.RawIOBase):
    def __init__(self) -> None:
        self.go = threading.Event()
        self.got: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.go.wait()
        self.got.append(bytes(b))
        return len(b)


def test_one_write_in_flight_at_most():
    """The next ``write`` waits while the last one is still being written: one slice's
    text beside the one being built, never a queue of them."""
    fh = _Gated()
    out = WriteBehind(fh)
    out.write(b"first")  # handed to the writer, which blocks in the file
    second = threading.Thread(target=out.write, args=(b"second",))
    second.start()
    second.join(timeout=0.3)
    assert second.is_alive()  # still waiting for the first write to end
    fh.go.set()
    second.join(timeout=10)
    assert not second.is_alive()
    out.close()
    assert fh.got == [b"first", b"second"]
