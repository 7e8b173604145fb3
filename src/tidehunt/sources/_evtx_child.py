"""Parse one EVTX file in a child process and stream its records to the parent.

``python -m tidehunt.sources._evtx_child FD THREADS [FIRST_CHUNK]``: FD is a read-only file
descriptor the parent passed (the evidence is not opened again by path), THREADS the
parser's ``number_of_threads``, FIRST_CHUNK the chunk to start at (``ChunkView``). The
Rust parser can loop forever on some damaged chunks while holding the GIL; in a child, the
parent can notice that no record has come for a while and kill it, then start another
child at the chunk after the one it stopped in (see ``EvtxSource.read_rows``).

Frames on stdout: one type byte, a little-endian u32 payload length, the payload.

- ``R``: a record; payload = u64 event record ID (all ones: none), then the record's
  JSON text (UTF-8).
- ``X``: the parser raised an error; the iterator is resumed. Payload: the message.
- ``E``: the parser ended. No payload.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib

NO_ID = 0xFFFF_FFFF_FFFF_FFFF
HEADER_BLOCK = 4096
CHUNK_SIZE = 65536
HEAD = struct.Struct("<cI")
RID = struct.Struct("<Q")


class ChunkView(io.RawIOBase):
    """An EVTX file read as if its chunks before ``first`` were not there: its own file
    header (the chunk count lowered to the chunks left, the checksum made again), then
    the file from chunk ``first`` on. Read with ``pread``: the descriptor's offset is
    not moved, and nothing is copied."""

    def __init__(self, fd: int, first: int) -> None:
        super().__init__()
        self.fd = fd
        size = os.fstat(fd).st_size
        head = bytearray(os.pread(fd, HEADER_BLOCK, 0))
        if len(head) >= 128:
            (listed,) = struct.unpack_from("<H", head, 42)
            left = max(listed, (size - HEADER_BLOCK) // CHUNK_SIZE) - first
            struct.pack_into("<H", head, 42, max(0, min(left, 0xFFFF)))
            struct.pack_into("<I", head, 124, zlib.crc32(bytes(head[:120])))
        self.head = bytes(head)
        self.base = HEADER_BLOCK + first * CHUNK_SIZE  # the view's first chunk, in the file
        self.size = len(self.head) + max(0, size - self.base)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = len(b)
        out = self.head[self.pos:self.pos + n] if self.pos < len(self.head) else b""
        at = self.pos + len(out)
        if len(out) < n and at >= len(self.head):
            out += os.pread(self.fd, n - len(out), self.base + at - len(self.head))
        b[:len(out)] = out
        self.pos += len(out)
        return len(out)


def main(argv: list[str]) -> int:
    """Parse the file behind ``argv[0]`` (an fd) and write frames to stdout."""
    import evtx

    fd, threads = int(argv[0]), int(argv[1])
    first = int(argv[2]) if len(argv) > 2 else 0
    out = sys.stdout.buffer
    pack, rid_pack = HEAD.pack, RID.pack
    src = io.BufferedReader(ChunkView(fd, first), 1 << 16) if first else os.fdopen(fd, "rb")
    with src as fh:
        try:
            parser = evtx.PyEvtxParser(fh, number_of_threads=threads)
        except (RuntimeError, OSError, ValueError) as exc:
            msg = f"cannot open EVTX: {exc}".encode("utf-8", "replace")
            out.write(pack(b"O", len(msg)) + msg)
            out.flush()
            return 0
        it = iter(parser.records_json())
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except (RuntimeError, OSError, ValueError) as exc:
                msg = str(exc).encode("utf-8", "replace")
                frame = pack(b"X", len(msg)) + msg
            else:
                if rec is None:
                    break
                rid = rec.get("event_record_id")
                data = rec["data"].encode("utf-8", "surrogatepass")
                frame = pack(b"R", len(data) + 8) + rid_pack(NO_ID if rid is None else rid) \
                    + data
            # each frame goes out before the parser is asked for the next record: a
            # parser that then loops holds the GIL, and what was buffered would be lost
            # (a damaged file parses in milliseconds: a timed flush kept none of it)
            out.write(frame)
            out.flush()
        out.write(pack(b"E", 0))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
