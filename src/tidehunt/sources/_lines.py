"""Line-oriented text logs: gzip-aware, streamed in blocks of lines as Polars series.

Text sources parse a block with vectorised regex (Polars ``str.extract_groups``) and never
loop over lines in Python. Every physical line is accounted for in ``LineStats``: it is a
record, a directive/comment, blank, or bad (and then a warning), so a test can check that
``records + directives + blank + bad == lines``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from tidehunt.context import RunContext
from tidehunt.sources.base import Artefact

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 8 << 20
#: A line longer than this is cut (and counted in a warning); logs do not have such lines.
MAX_LINE = 1 << 20


def text_head(head: bytes, limit: int = 65536) -> str:
    """The first bytes of a file as text, decompressing a gzip head. Never raises."""
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, limit)
        except zlib.error:
            return ""
    return head[:limit].decode("utf-8", "replace")


def head_lines(head: bytes, n: int = 20) -> list[str]:
    """Up to ``n`` complete non-blank lines of the head (the last partial line dropped)."""
    text = text_head(head)
    lines = text.split("\n")
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]
    return [ln.rstrip("\r") for ln in lines if ln.strip()][:n]


@dataclass
class LineStats:
    """Where every line of a text artefact went."""

    lines: int = 0
    records: int = 0
    directives: int = 0
    blank: int = 0
    bad: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the manifest."""
        return asdict(self)


@dataclass
class LineBlock:
    """A run of lines: text (no line ends) and 1-based line numbers."""

    lines: pl.Series
    lineno: pl.Series


def iter_line_blocks(artefact: Artefact, ctx: RunContext, source: str, stats: LineStats,
                     block_bytes: int = BLOCK_BYTES) -> Iterator[LineBlock]:
    """Blocks of lines of a (possibly gzipped) text file.

    Bytes that are not UTF-8 are replaced (U+FFFD) and reported with their line numbers;
    a truncated or corrupt gzip stream ends the file with a warning after the lines it
    gave. Blank lines are counted in ``stats`` and not yielded.
    """
    lineno = 0
    buf: list[bytes] = []
    size = 0
    for chunk in _chunks(artefact, ctx, source):
        buf.append(chunk)
        size += len(chunk)
        if size < block_bytes:
            continue
        data = b"".join(buf)
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) <= MAX_LINE:
                buf, size = [data], len(data)
                continue
            ctx.warn(artefact.id, source, "line longer than 1 MiB split there",
                     [f"line {lineno + 1}"], path=artefact.display)
            cut = len(data)
        body, rest = data[:cut], data[cut + 1:]
        buf, size = [rest], len(rest)
        block = _block(body, lineno, artefact, ctx, source, stats)
        lineno += body.count(b"\n") + 1
        if block is not None:
            yield block
    data = b"".join(buf)
    if data:
        if data.endswith(b"\n"):
            data = data[:-1]
        block = _block(data, lineno, artefact, ctx, source, stats)
        if block is not None:
            yield block


def _chunks(artefact: Artefact, ctx: RunContext, source: str) -> Iterator[bytes]:
    """Decompressed pieces of at most 4 MiB (gzip streamed with zlib, so a truncated or
    corrupt stream still gives every byte before the damage, then one warning)."""
    with artefact.open() as fh:
        raw = fh.read(1 << 20)
        if not raw.startswith(GZIP_MAGIC):
            while raw:
                yield raw
                raw = fh.read(1 << 20)
            return
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        done = 0
        open_member = False  # bytes fed to a gzip member that has not ended yet
        try:
            while raw:
                data = raw
                while data:
                    open_member = True
                    out = d.decompress(data, 4 << 20)
                    done += len(out)
                    if out:
                        yield out
                    if d.eof:  # a next gzip member may follow (concatenated .gz)
                        data = d.unused_data
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        open_member = False
                    else:
                        data = d.unconsumed_tail
                raw = fh.read(1 << 20)
            tail = d.flush()
            if tail:
                yield tail
            complete = d.eof or not open_member
        except zlib.error as exc:
            ctx.warn(artefact.id, source, f"compressed stream is corrupt ({exc}); the rest "
                     "of the file is lost", [f"decompressed byte {done}"],
                     path=artefact.display)
            return
        if not complete:
            ctx.warn(artefact.id, source, "compressed stream is truncated; the last line "
                     "may be cut", [f"decompressed byte {done}"], path=artefact.display)


def _block(body: bytes, first: int, artefact: Artefact, ctx: RunContext, source: str,
           stats: LineStats) -> LineBlock | None:
    try:
        text = body.decode("utf-8")
        bad_utf8 = False
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
        bad_utf8 = True
    lines = pl.Series("line", text.split("\n"), dtype=pl.String)
    stats.lines += len(lines)
    lines = lines.str.strip_chars_end("\r")
    lineno = pl.int_range(first + 1, first + 1 + len(lines), eager=True, dtype=pl.Int64)
    if bad_utf8:
        hit = lines.str.contains("\ufffd", literal=True)
        where = lineno.filter(hit)
        ctx.warn(artefact.id, source, "bytes that are not UTF-8 replaced with U+FFFD",
                 [f"line {x}" for x in where.head(20).to_list()], count=len(where),
                 path=artefact.display)
    keep = lines.str.strip_chars().str.len_bytes() > 0
    stats.blank += int((~keep).sum())
    if not keep.any():
        return None
    return LineBlock(lines.filter(keep), lineno.filter(keep))


def warn_bad(ctx: RunContext, artefact: Artefact, source: str, message: str,
             lineno: pl.Series, stats: LineStats) -> None:
    """Count and report lines that no layout of the source could read."""
    if len(lineno) == 0:
        return
    stats.bad += len(lineno)
    ctx.warn(artefact.id, source, message, [f"line {x}" for x in lineno.head(20).to_list()],
             count=len(lineno), path=artefact.display)
