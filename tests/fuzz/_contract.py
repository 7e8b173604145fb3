"""The contract every Source keeps on hostile input, as one checker the fuzz tests share.

``sniff`` and ``claims`` return a bool and never raise; ``read`` yields ``TableBatch``es of
the tables the Source declares, or raises a ``SourceError`` (the artefact is unreadable),
and nothing else; nothing hangs. Sources that keep ``LineStats`` account for every line:
``records + directives + blank + bad == lines``, ``lines`` is the file's physical line
count (plain text), and the rows yielded are the records.
"""

from __future__ import annotations

import contextlib
import gzip
import signal
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from tidehunt import registry
from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.model.tables import TABLES
from tidehunt.sources.base import Artefact, Source
from tidehunt.sources.sniff import HEAD
from tidehunt.sources.sniff import sniff as sniff_all

#: Seconds one input may take (sniff + read) before it counts as a hang.
HANG_SECONDS = 60


class Hang(AssertionError):
    """An input that did not finish in HANG_SECONDS."""


def examples(factor: float) -> int:
    """The active profile's example count scaled for a test that is cheaper or dearer."""
    return max(1, int(settings().max_examples * factor))


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail with :class:`Hang` when the block runs longer than ``seconds`` (main thread)."""
    def alarm(_sig: int, _frame: Any) -> None:
        raise Hang(f"input not done after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    """What one source made of one input."""

    source: Source
    sniffed: bool
    batches: list[TableBatch] = field(default_factory=list)
    error: SourceError | None = None
    ctx: RunContext = field(default_factory=RunContext)

    @property
    def rows(self) -> int:
        return sum(b.data.num_rows for b in self.batches)

    def warned(self, *fragments: str) -> int:
        """Sum of the counts of warnings whose message contains one of ``fragments``."""
        return sum(w.count for w in self.ctx.warnings
                   if not fragments or any(f in w.message for f in fragments))


def physical_lines(data: bytes) -> int:
    """Lines as the line reader counts them (a final newline ends the last line)."""
    if not data:
        return 0
    body = data[:-1] if data.endswith(b"\n") else data
    return body.count(b"\n") + 1


def run_source(name: str, data: bytes, *, filename: str = "evidence.log",
               options: Mapping[str, Any] | None = None, whole_sniff: bool = False,
               prepare: Any = None) -> Outcome:
    """Sniff and read ``data`` with the registered source ``name``, checking the contract."""
    cls: type[Source] = registry.load("sources", name)
    head = data[:HEAD]
    with tempfile.TemporaryDirectory(prefix="tidehunt-fuzz-") as tmp:
        path = Path(tmp) / filename
        path.write_bytes(data)
        art = Artefact("fuzz-1", path, filename)
        with no_hang():
            sniffed = cls.sniff(art, head)
            assert type(sniffed) is bool, f"{name}.sniff returned {sniffed!r}"
            claimed = cls.claims(art, head, options or {})
            assert type(claimed) is bool, f"{name}.claims returned {claimed!r}"
            if whole_sniff:
                try:
                    found = sniff_all(art, head, options)
                except SourceError:
                    found = None  # two readers claim it: an error naming them, by design
                assert found is None or issubclass(found, Source)
            src = cls()
            src.options = dict(options or {})
            if prepare is not None:
                prepare(src)
            out = Outcome(src, sniffed)
            try:
                for b in src.read(art, out.ctx):
                    out.batches.append(b)
            except SourceError as exc:
                out.error = exc
    for b in out.batches:
        assert isinstance(b, TableBatch), type(b)
        assert b.table in cls.WRITES, (name, b.table)
        want = TABLES[b.table].arrow()
        got = b.data.schema
        assert got.names[:len(want.names)] == want.names, (name, b.table)
        for f in want:
            assert got.field(f.name).type == f.type, (name, b.table, f.name)
    stats = getattr(out.source, "stats", None)
    if stats is not None and out.error is None:
        accounted = stats.records + stats.directives + stats.blank + stats.bad
        assert accounted == stats.lines, (name, stats)
        if not data.startswith(b"\x1f\x8b"):
            assert stats.lines == physical_lines(data), (name, stats, physical_lines(data))
        assert out.rows == stats.records, (name, out.rows, stats)
        if stats.bad:
            assert out.ctx.warnings, (name, "bad lines without a warning")
    return out


# ---- strategies shared by the families ----------------------------------------------

#: Text that hostile logs are made of: separators, quotes, controls, non-ASCII, RTL marks.
HOSTILE_CHARS = st.sampled_from(list(' \t"\'\\,;|#[]{}()<>=:/-_.%+*?\r\x00\x1b\u202e\ufeffé☃'
                                     '0123456789aZ'))
hostile_text = st.text(alphabet=st.one_of(HOSTILE_CHARS, st.characters()), max_size=40)


@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_ops: int = 6) -> bytes:
    """``data`` with a few random edits: bytes inserted, deleted, flipped, lines duplicated,
    cut short, invalid UTF-8, blank lines, NULs, CRs."""
    b = bytearray(data)
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(("ins", "del", "flip", "dup", "cut", "junk", "nl")))
        pos = draw(st.integers(0, len(b)))
        if op == "ins":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "del" and b:
            n = draw(st.integers(1, 16))
            del b[pos:pos + n]
        elif op == "flip" and pos < len(b):
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "dup":
            start = b.rfind(b"\n", 0, pos) + 1
            end = b.find(b"\n", pos)
            end = len(b) if end < 0 else end + 1
            b[end:end] = b[start:end]
        elif op == "cut":
            del b[pos:]
        elif op == "junk":
            b[pos:pos] = draw(st.sampled_from((b"\xff\xfe", b"\xc3", b"\x00", b"\r", b"\t",
                                               b'"', b"\\", b"\xed\xa0\x80", b"#")))
        elif op == "nl":
            b[pos:pos] = draw(st.sampled_from((b"\n", b"\r\n", b"\n\n", b" \n")))
    return bytes(b)


@st.composite
def maybe_gzip(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` as is, or gzip-compressed (sometimes cut short or with a byte flipped)."""
    how = draw(st.sampled_from(("plain", "plain", "plain", "gzip", "gzip-cut", "gzip-flip")))
    if how == "plain":
        return data
    gz = gzip.compress(data, mtime=0)
    if how == "gzip-cut":
        return gz[:draw(st.integers(2, max(2, len(gz) - 1)))]
    if how == "gzip-flip" and len(gz) > 12:
        pos = draw(st.integers(10, len(gz) - 1))
        return gz[:pos] + bytes([gz[pos] ^ 0x55]) + gz[pos + 1:]
    return gz


def lines_of(items: list[str], end: str = "\n") -> bytes:
    """Lines joined and encoded as UTF-8 (surrogates replaced)."""
    return (end.join(items) + (end if items else "")).encode("utf-8", "replace")


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False), hostile_text)
json_values = st.recursive(json_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(hostile_text, kids, max_size=4)),
    max_leaves=12)


SRC = Path(__file__).resolve().parents[2] / "src" / "tidehunt"


def raised_in_tidehunt(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc`` is tidehunt's own code (a bug: our code
    must handle what a parser library gives it), False when a library raised (hostile
    input the caller turns into a note)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and Path(last).resolve().is_relative_to(SRC)


def own_code_never_raises(fn: Any, *args: Any) -> None:
    """Call ``fn``; re-raise only exceptions raised by tidehunt code itself."""
    with no_hang():
        try:
            fn(*args)
        except Exception as exc:
            if raised_in_tidehunt(exc):
                raise
