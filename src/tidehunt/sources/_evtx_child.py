"""Parse one EVTX file in a child process and stream its records to the parent.

``python -m tidehunt.sources._evtx_child FD THREADS``: FD is a read-only file descriptor
the parent passed (the evidence is not opened again by path), THREADS the parser's
``number_of_threads``. The Rust parser can loop forever on some damaged chunks while
holding the GIL; in a child, the parent can notice that no record has come for a while
and kill it (see ``EvtxSource.read_rows``).

Frames on stdout: one type byte, a little-endian u32 payload length, the payload.

- ``R``: a record; payload = u64 event record ID (all ones: none), then the record's
  JSON text (UTF-8).
- ``X``: the parser raised an error; the iterator is resumed. Payload: the message.
- ``E``: the parser ended. No payload.
"""

from __future__ import annotations

import os
import struct
import sys
import time

NO_ID = 0xFFFF_FFFF_FFFF_FFFF
HEAD = struct.Struct("<cI")
RID = struct.Struct("<Q")
#: Buffered frames are written at least this often.
FLUSH_SECONDS = 0.1


def main(argv: list[str]) -> int:
    """Parse the file behind ``argv[0]`` (an fd) and write frames to stdout."""
    import evtx

    fd, threads = int(argv[0]), int(argv[1])
    out = sys.stdout.buffer
    pack, rid_pack = HEAD.pack, RID.pack
    with os.fdopen(fd, "rb") as fh:
        try:
            parser = evtx.PyEvtxParser(fh, number_of_threads=threads)
        except (RuntimeError, OSError, ValueError) as exc:
            msg = f"cannot open EVTX: {exc}".encode("utf-8", "replace")
            out.write(pack(b"O", len(msg)) + msg)
            out.flush()
            return 0
        it = iter(parser.records_json())
        buf: list[bytes] = []
        size = 0
        clock = time.monotonic
        last = clock()
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except (RuntimeError, OSError, ValueError) as exc:
                msg = str(exc).encode("utf-8", "replace")
                buf.append(pack(b"X", len(msg)) + msg)
                size += len(msg)
            else:
                if rec is None:
                    break
                rid = rec.get("event_record_id")
                data = rec["data"].encode("utf-8", "surrogatepass")
                buf.append(pack(b"R", len(data) + 8)
                           + rid_pack(NO_ID if rid is None else rid) + data)
                size += len(data)
            # whole frames, flushed often: what was parsed before a hang reaches the parent
            if size >= 1 << 18 or clock() - last >= FLUSH_SECONDS:
                out.write(b"".join(buf))
                out.flush()
                buf, size, last = [], 0, clock()
        buf.append(pack(b"E", 0))
        out.write(b"".join(buf))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
