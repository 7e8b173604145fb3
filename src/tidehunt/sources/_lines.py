"""Line-oriented text logs: gzip-aware, streamed in blocks of lines as Polars series.

Text sources parse a block with vectorised regex (Polars ``str.extract_groups``) and never
loop over lines in Python. Every physical line is accounted for in ``LineStats``: it is a
record, a directive/comment, blank, or bad (and then a warning), so a test can check that
``records + directives + blank + bad == lines``.

Text arrives as UTF-8: a UTF-8 byte-order mark is dropped, and a file that starts with a
UTF-16 byte-order mark (what PowerShell's ``Out-File`` writes) is transcoded as it streams.
A line longer than ``MAX_LINE`` is cut there and the rest of it skipped without being held
in memory, so a multi-gigabyte line costs a warning, not the machine, and the line numbers
after it stay true.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tidehunt.context import RunContext
from tidehunt.sources.base import Artefact

if TYPE_CHECKING:  # imported where lines are read: ingest workers reading EVTX never need it
    import polars as pl

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
#: Byte-order marks of UTF-16 text, and the codec that reads what follows them.
UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
BLOCK_BYTES = 8 << 20
#: The block size of this ingest task (BLOCK_BYTES unless ``--max-memory`` leaves less).
_BLOCK = contextvars.ContextVar("tidehunt_block_bytes", default=0)
#: A line longer than this is cut there, the rest of it skipped (one warning per file).
MAX_LINE = 1 << 20
LONG_LINE = "line longer than 1 MiB: cut there, the rest of the line skipped"


def text_head(head: bytes, limit: int = 65536) -> str:
    """The first bytes of a file as text, decompressing a gzip head. Never raises.

    A UTF-8 byte-order mark is dropped; UTF-16 with a byte-order mark is decoded.
    """
    if head.startswith(GZIP_MAGIC):
        head = gunzip_head(head, limit)
    enc = utf16_of(head)
    if enc is not None:
        body = head[2:limit]
        return body[: len(body) // 2 * 2].decode(enc, "replace")
    return head[:limit].decode("utf-8", "replace").removeprefix("\ufeff")


def gunzip_head(head: bytes, limit: int = 65536) -> bytes:
    """The first ``limit`` bytes a gzip head decompresses to (as far as a damaged stream
    goes). Never raises."""
    out = b""
    for piece in gunzip([head], lambda _m, _l: None, limit):
        out += piece
        if len(out) >= limit:
            break
    return out[:limit]


def utf16_of(head: bytes) -> str | None:
    """The UTF-16 codec of text that starts with a UTF-16 byte-order mark and looks like
    UTF-16 (most of its first characters are ASCII, as a log's are), else None: a binary
    file that happens to start with ``FF FE`` is not taken for text."""
    enc = UTF16_BOMS.get(head[:2])
    if enc is None:
        return None
    body = head[2:514]
    high = body[1::2] if enc == "utf-16-le" else body[0::2]
    return enc if high and high.count(0) * 2 >= len(high) else None


def decode_text(data: bytes) -> tuple[str, str, int]:
    """A whole text file as ``str``: UTF-8, or UTF-16 by its byte-order mark (a UTF-8
    mark dropped). Returns the text, "UTF-8" or "UTF-16", and how many characters could
    not be decoded (now U+FFFD)."""
    enc = utf16_of(data)
    if enc is None:
        enc, data = "utf-8", data.removeprefix(UTF8_BOM)
    else:
        data = data[2:]
    name = enc[:6].upper()
    try:
        return data.decode(enc), name, 0
    except UnicodeDecodeError:
        text = data.decode(enc, "replace")
        return text, name, text.count("\ufffd") - data.decode(enc, "ignore").count("\ufffd")


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


@contextlib.contextmanager
def block_size(block_bytes: int) -> Iterator[None]:
    """Line blocks read inside this context hold about ``block_bytes`` of text."""
    token = _BLOCK.set(block_bytes)
    try:
        yield
    finally:
        _BLOCK.reset(token)


def iter_line_blocks(artefact: Artefact, ctx: RunContext, source: str, stats: LineStats,
                     block_bytes: int | None = None) -> Iterator[LineBlock]:
    """Blocks of lines of a (possibly gzipped) text file (``block_bytes`` each, by default
    BLOCK_BYTES or what ``block_size`` set).

    Bytes that are not UTF-8 are replaced (U+FFFD) and reported with their line numbers;
    a truncated or corrupt gzip stream ends the file with a warning after the lines it
    gave. Blank lines are counted in ``stats`` and not yielded. UTF-16 (with a byte-order
    mark) is transcoded; a line longer than ``MAX_LINE`` is cut there (see ``_cut_long``).
    """
    block_bytes = block_bytes or _BLOCK.get() or BLOCK_BYTES
    lineno = 0
    buf: list[bytes] = []
    size = 0
    for chunk in _cut_long(_utf8(_chunks(artefact, ctx, source), artefact, ctx, source),
                           artefact, ctx, source):
        buf.append(chunk)
        size += len(chunk)
        if size < block_bytes:
            continue
        data = b"".join(buf)
        cut = data.rfind(b"\n")
        if cut < 0:  # one unfinished line, at most MAX_LINE long (_cut_long): read on
            buf, size = [data], len(data)
            continue
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


def _utf8(pieces: Iterator[bytes], artefact: Artefact, ctx: RunContext,
          source: str) -> Iterator[bytes]:
    """The stream without a UTF-8 byte-order mark, or UTF-16 (by its mark) as UTF-8."""
    first = b""
    for piece in pieces:
        first += piece
        if len(first) >= 514:
            break
    if first.startswith(UTF8_BOM) and len(first) > 3:  # (a file of just the mark: kept)
        first = first[3:]
    enc = utf16_of(first)
    if enc is None:
        if first:
            yield first
        yield from pieces
        return
    yield from from_utf16(itertools.chain([first[2:]], pieces), enc,
                          lambda msg, where, n: ctx.warn(artefact.id, source, msg, [where],
                                                         count=n, path=artefact.display))


def from_utf16(pieces: Iterable[bytes], enc: str,
               warn: Callable[[str, str, int], None]) -> Iterator[bytes]:
    """UTF-16 pieces (after the byte-order mark) as UTF-8; what does not decode becomes
    U+FFFD and one ``warn(message, locator, count)`` call at the end."""
    carry = b""
    done = bad = 0
    first_bad = -1
    big = enc.endswith("be")
    for piece in pieces:
        data = carry + piece
        n = len(data) // 2 * 2
        if n >= 2:  # a high surrogate waits for its pair in the next piece
            unit = int.from_bytes(data[n - 2:n], "big" if big else "little")
            if 0xD800 <= unit <= 0xDBFF:
                n -= 2
        body, carry = data[:n], data[n:]
        try:
            text = body.decode(enc)
        except UnicodeDecodeError as exc:
            text = body.decode(enc, "replace")
            bad += text.count("\ufffd") - body.decode(enc, "ignore").count("\ufffd")
            if first_bad < 0:
                first_bad = done + exc.start
        done += n
        if text:
            yield text.encode("utf-8")
    if carry:  # an odd last byte or an unpaired high surrogate
        bad += 1
        if first_bad < 0:
            first_bad = done
        yield "\ufffd".encode()
    if bad:
        warn("bytes that are not UTF-16 replaced with U+FFFD", f"UTF-16 byte {first_bad}",
             bad)


def _cut_long(pieces: Iterable[bytes], artefact: Artefact, ctx: RunContext,
              source: str) -> Iterator[bytes]:
    """The stream with every line cut to ``MAX_LINE`` bytes (at a character boundary) and
    the rest of such a line dropped as it streams by; line ends are kept, so line numbers
    after a long line stay true. One warning names the lines that were cut."""
    limit = MAX_LINE
    cur = 0  # bytes of the unfinished current line passed on so far
    skipping = False  # inside the dropped rest of a long line
    lineno = 1
    cut: list[int] = []
    n_cut = 0
    for chunk in pieces:
        for start in range(0, len(chunk), limit):
            piece = chunk[start:start + limit]  # at most one line end-to-end per piece
            nl = piece.find(b"\n")
            if nl < 0:
                if skipping:
                    continue
                if cur + len(piece) <= limit:
                    cur += len(piece)
                    yield piece
                    continue
                yield piece[:_char_cut(piece, limit - cur)]
                skipping, cur = True, limit
                n_cut += 1
                if len(cut) < 20:
                    cut.append(lineno)
                continue
            head: bytes | None = None  # None: the current line's end passes unchanged
            if skipping:
                head = b""
            elif cur + nl > limit:
                head = piece[:_char_cut(piece, limit - cur)]
                n_cut += 1
                if len(cut) < 20:
                    cut.append(lineno)
            lineno += piece.count(b"\n")
            cur = len(piece) - piece.rfind(b"\n") - 1
            skipping = False
            yield piece if head is None else head + piece[nl:]
    if n_cut:
        ctx.warn(artefact.id, source, LONG_LINE, [f"line {x}" for x in cut], count=n_cut,
                 path=artefact.display)


def _char_cut(data: bytes, n: int) -> int:
    """``n``, moved back (at most 3 bytes) so that ``data[:n]`` does not end inside a
    UTF-8 character."""
    k = n
    while 0 < k < len(data) and n - k < 3 and data[k] & 0xC0 == 0x80:
        k -= 1
    return k


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

        def warn(message: str, locator: str) -> None:
            ctx.warn(artefact.id, source, message, [locator], path=artefact.display)

        yield from gunzip(itertools.chain([raw], iter(lambda: fh.read(1 << 20), b"")), warn)


def gunzip(raw: Iterable[bytes], warn: Callable[[str, str], None],
           piece: int = 4 << 20) -> Iterator[bytes]:
    """A gzip stream (one member or several) decompressed, in pieces of at most ``piece``
    bytes. A corrupt or truncated stream gives every byte before the damage (the failing
    input is fed again in small steps from a copy of the decompressor, so what it held
    is not lost with the error), then one ``warn(message, locator)``."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    done = 0
    open_member = False  # bytes fed to a gzip member that has not ended yet
    for block in raw:
        data = block
        while data:
            open_member = True
            snap = d.copy()
            try:
                out = d.decompress(data, piece)
            except zlib.error as exc:
                for out in _salvage(snap, data):
                    done += len(out)
                    yield out
                warn(f"compressed stream is corrupt ({exc}); the rest of the file is lost",
                     f"decompressed byte {done}")
                return
            done += len(out)
            if out:
                yield out
            if d.eof:  # a next gzip member may follow (concatenated .gz)
                data = d.unused_data
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                open_member = False
            else:
                data = d.unconsumed_tail
    try:
        tail = d.flush()
    except zlib.error:
        tail = b""
    if tail:
        yield tail
    if open_member and not d.eof:
        warn("compressed stream is truncated; the last line may be cut",
             f"decompressed byte {done + len(tail)}")


def _salvage(d: Any, data: bytes) -> Iterator[bytes]:
    """What ``d`` still gives from ``data`` before the error: 4 KiB steps, then the
    failing step byte by byte (each step from a copy, so an error loses nothing)."""
    for i in range(0, len(data), 4096):
        snap = d.copy()
        try:
            out = d.decompress(data[i:i + 4096])
        except zlib.error:
            for b in range(i, min(i + 4096, len(data))):
                try:
                    out = snap.decompress(data[b:b + 1])
                except zlib.error:
                    return
                if out:
                    yield out
            return
        if out:
            yield out
        if d.eof:
            return


def _block(body: bytes, first: int, artefact: Artefact, ctx: RunContext, source: str,
           stats: LineStats) -> LineBlock | None:
    try:
        text = body.decode("utf-8")
        bad_utf8 = False
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")
        bad_utf8 = True
    import polars as pl

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
