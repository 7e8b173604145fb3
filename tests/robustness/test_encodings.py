"""Text logs of every type in the encodings evidence arrives in: UTF-8 with a byte-order
mark, UTF-16 with a byte-order mark (what PowerShell's ``Out-File`` writes) in both byte
orders, Latin-1 / Windows-1252 text, invalid bytes, and files that mix them.

UTF-8 and UTF-16 read to the same rows as plain UTF-8; bytes that are not text are
replaced with U+FFFD, the row kept, and a warning names the file and the lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.robustness.helpers import LOGS, TOKEN_COLUMN, log_bytes, log_lines, read, rows_by_locator

KINDS = sorted(LOGS)
N = 60
WORD = "t\u00f6k"  # the free-text token of every record, with a non-ASCII letter


def _read(tmp_path: Path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return read(p, display=name)


def _utf8(tmp_path: Path, kind: str):
    table, ctx, cls = _read(tmp_path, "utf8.log", log_bytes(kind, N, token=WORD))
    assert LOGS[kind][0] == cls.NAME and table.num_rows == N and ctx.warnings == []
    return rows_by_locator(table), cls


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", ["utf-8-bom", "utf-16-le-bom", "utf-16-be-bom"])
def test_unicode_with_a_byte_order_mark_reads_like_utf8(tmp_path, kind, form):
    want, cls = _utf8(tmp_path, kind)
    text = log_bytes(kind, N, token=WORD).decode()
    data = {"utf-8-bom": b"\xef\xbb\xbf" + text.encode(),
            "utf-16-le-bom": b"\xff\xfe" + text.encode("utf-16-le"),
            "utf-16-be-bom": b"\xfe\xff" + text.encode("utf-16-be")}[form]
    table, ctx, got_cls = _read(tmp_path, f"{form}.log", data)
    assert got_cls is cls  # recognised by content, as the UTF-8 file is
    assert ctx.warnings == []
    assert rows_by_locator(table) == want
    first = table.sort_by("_locator").to_pylist()
    assert not any(str(v).startswith("\ufeff") for r in first for v in r.values())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("codec", ["latin-1", "cp1252"])
def test_single_byte_text_is_replaced_and_warned_rows_kept(tmp_path, kind, codec):
    data = log_bytes(kind, N, encoding=codec, token=WORD)
    table, ctx, cls = _read(tmp_path, f"{codec}.log", data)
    assert LOGS[kind][0] == cls.NAME and table.num_rows == N  # nothing lost
    values = table.column(TOKEN_COLUMN[kind]).to_pylist()
    assert all("t\ufffdk" in v for v in values), values[:3]  # the letter, marked as lost
    header = len(LOGS[kind][1])
    lines = {f"line {header + i}" for i in range(1, N + 1)}
    named = [w for w in ctx.warnings if w.path == f"{codec}.log" and "UTF-8" in w.message]
    assert len(named) == 1 and named[0].count >= min(N, 20)
    assert set(named[0].locators) <= lines and len(named[0].locators) == 20


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_encodings_in_one_file(tmp_path, kind):
    """UTF-8 lines, one Latin-1 line, one line of bytes that are no text at all, a NUL."""
    lines = log_lines(kind, 6)
    header = len(LOGS[kind][1])
    body = [ln.replace("tok", WORD).encode() for ln in lines]
    body[header + 1] = lines[header + 1].replace("tok", WORD).encode("latin-1")
    body.insert(header + 3, b"\xff\xfe\x80\x81 \xc3\x28 garbage\x00")
    data = b"\n".join(body) + b"\n"
    table, ctx, _ = _read(tmp_path, "mixed.log", data)
    assert table.num_rows == 6  # the six records; the garbage line is not one
    latin, garbage = f"line {header + 2}", f"line {header + 4}"
    named = [w for w in ctx.warnings if w.path == "mixed.log"]
    assert latin in {x for w in named if "UTF-8" in w.message for x in w.locators}, named
    assert garbage in {x for w in named for x in w.locators}, named
    kept = {r["_locator"]: r for r in table.to_pylist()}
    assert "t\ufffdk" in str(kept[latin][TOKEN_COLUMN[kind]])  # kept, its letter marked


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_utf16_keeps_what_decodes(tmp_path, kind):
    """A lone surrogate mid-file and an odd last byte: U+FFFD there, one warning, every
    other line read as the intact UTF-16 file reads."""
    text = log_bytes(kind, N).decode()
    raw = text.encode("utf-16-le")
    mid = raw.index("\n".encode("utf-16-le"), len(raw) // 2) + 2  # start of a line
    data = b"\xff\xfe" + raw[:mid] + b"\x00\xd8" + raw[mid:] + b"\x00"
    table, ctx, cls = _read(tmp_path, "u16.log", data)
    assert LOGS[kind][0] == cls.NAME
    intact, _, _ = _read(tmp_path, "u16-intact.log", b"\xff\xfe" + raw)
    want, got = rows_by_locator(intact), rows_by_locator(table)
    hurt = {text[: mid // 2].count("\n") + 1, text.count("\n")}  # the two damaged lines
    for loc, rows in want.items():
        if int(loc.split()[-1]) not in hurt:
            assert got.get(loc) == rows, loc
    bad = [w for w in ctx.warnings if w.path == "u16.log" and "UTF-16" in w.message]
    assert len(bad) == 1 and bad[0].count == 2, ctx.warnings


def test_binary_starting_with_ff_fe_is_not_taken_for_utf16(tmp_path):
    """A byte-order mark alone does not make a file UTF-16: the rest must look like it."""
    from tidehunt.sources._lines import text_head, utf16_of

    binary = b"\xff\xfe" + bytes(range(256)) * 4
    assert utf16_of(binary) is None
    assert text_head(binary).startswith("\ufffd\ufffd")
    assert utf16_of(b"\xff\xfe" + "#Fields: date".encode("utf-16-le")) == "utf-16-le"
