"""Truncated and bit-flipped copies of good logs: generated logs of every text type, the
corpus's web, Zeek and EVTX files. Each copy must read to the end, keep every record
before the damage exactly as the intact file gives it, and (where the format can tell)
give a warning that names the file.

Seeds are fixed, so every copy is the same on every run.
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from pathlib import Path

import pytest

from tests.conftest import corpus_path
from tests.robustness.helpers import (
    LOGS,
    flip_bits,
    flip_high_bits,
    line_of,
    log_bytes,
    read,
    rows_by_locator,
)
from tidehunt.sources.evtx import EvtxSource

N = 400  # records per generated log
KINDS = sorted(LOGS)


def _kept(intact: dict, damaged: dict, lines: set[int] | range) -> None:
    """Every intact row on ``lines`` is in the damaged read, unchanged."""
    want = {loc: rs[0] for loc, rs in intact.items() if int(loc.rsplit(" ", 1)[-1]) in lines}
    assert want, "the damage left no line before it to compare"
    missing = [loc for loc in want if loc not in damaged]
    assert not missing, f"records before the damage lost: {missing[:5]}"
    changed = [loc for loc, r in want.items() if r not in damaged[loc]]
    assert not changed, f"records before the damage changed: {changed[:5]}"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _intact(tmp_path: Path, kind: str) -> tuple[bytes, dict]:
    data = log_bytes(kind, N)
    table, ctx, cls = read(_write(tmp_path, f"{kind}.log", data), display="evidence")
    assert LOGS[kind][0] == cls.NAME and table.num_rows == N and ctx.warnings == []
    return data, rows_by_locator(table)


# ---- generated text logs ------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_truncated_inside_a_record(tmp_path, kind):
    data, intact = _intact(tmp_path, kind)
    starts = [i + 1 for i in range(len(data) - 1) if data[i] == 0x0A]
    cut = starts[len(starts) * 2 // 3] + 9  # nine bytes into a record: the rest is gone
    damaged = _write(tmp_path, "cut.log", data[:cut])
    table, ctx, _ = read(damaged, display="cut.log")
    cut_line = line_of(data, cut)
    _kept(intact, rows_by_locator(table), range(1, cut_line))
    assert table.num_rows == cut_line - 1 - len(LOGS[kind][1])  # the cut record is not one
    assert any(w.path == "cut.log" and f"line {cut_line}" in w.locators for w in ctx.warnings), \
        ctx.warnings


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_truncated_anywhere(tmp_path, kind, seed):
    data, intact = _intact(tmp_path, kind)
    cut = random.Random(seed).randrange(len(data) // 3, len(data) - 1)
    table, _, _ = read(_write(tmp_path, "cut.log", data[:cut]), display="cut.log")
    _kept(intact, rows_by_locator(table), range(1, line_of(data, cut)))


@pytest.mark.parametrize("kind", KINDS)
def test_bit_flips_in_text_are_warned_and_the_rest_kept(tmp_path, kind):
    data, intact = _intact(tmp_path, kind)
    start = data.index(b"\n", len(data) // 4) + 1
    bad, where = flip_high_bits(data, 5, seed=len(kind), start=start)
    table, ctx, _ = read(_write(tmp_path, "flipped.log", bad), display="flipped.log")
    hit = {line_of(data, i) for i in where}
    _kept(intact, rows_by_locator(table), set(range(1, data.count(b"\n") + 1)) - hit)
    named = [w for w in ctx.warnings if w.path == "flipped.log"]
    assert any("UTF-8" in w.message for w in named), ctx.warnings
    # every damaged line is named (replaced bytes, or a line that no longer parses)
    assert {f"line {n}" for n in hit} <= {x for w in named for x in w.locators}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [7, 8])
def test_random_bit_flips_in_text_keep_the_rest(tmp_path, kind, seed):
    """A flip inside ASCII can be invisible (a digit for a digit): no warning is owed,
    but every line without a flip is read as before."""
    data, intact = _intact(tmp_path, kind)
    start = data.index(b"\n", len(data) // 4) + 1
    bad, where = flip_bits(data, 6, seed=seed, start=start)
    table, _, _ = read(_write(tmp_path, "flipped.log", bad), display="flipped.log")
    hit = {line_of(data, i) for i in where} | {line_of(data, i) + 1 for i in where}
    _kept(intact, rows_by_locator(table), range(1, min(hit)))


def _good_prefix(intact: bytes, damaged_gz: bytes) -> int:
    """How many leading bytes of ``intact`` the damaged gzip stream still gives."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(damaged_gz)
    except zlib.error:
        out = b""
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        for i in range(0, len(damaged_gz), 512):  # what came out before the error
            try:
                out += d.decompress(damaged_gz[i:i + 512])
            except zlib.error:
                break
    n = 0
    while n < min(len(out), len(intact)) and out[n] == intact[n]:
        n += 1
    return n


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "auth_csv"])  # gzip: line readers
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_gzip_is_warned_and_the_rest_kept(tmp_path, kind, damage):
    data, intact = _intact(tmp_path, kind)
    gz = gzip.compress(data, mtime=0)
    if damage == "truncated":
        bad = gz[: len(gz) * 3 // 5]
    else:
        bad, _ = flip_bits(gz, 3, seed=11, start=len(gz) // 2, end=len(gz) - 8)
    table, ctx, _ = read(_write(tmp_path, f"{kind}.gz", bad), display="evidence.gz")
    good = _good_prefix(data, bad)
    _kept(intact, rows_by_locator(table), range(1, line_of(data, good)))
    assert any(w.path == "evidence.gz" and ("compressed" in w.message or "gzip" in w.message)
               for w in ctx.warnings), ctx.warnings


# ---- corpus logs ----------------------------------------------------------------------
CORPUS_TEXT = [
    "weblogs/attack/tomcat_manager_bruteforce_war_webshell_access_log.txt",
    "weblogs/benign/iis10_edge_cases.log",
    "zeek/otrf-lsass-campaign-01-tsv/conn.log",
    "zeek/otrf-apt29-day1-json/NASHUA_conn.log",
]


@pytest.mark.parametrize("rel", CORPUS_TEXT, ids=lambda r: r.rsplit("/", 1)[-1])
def test_corpus_text_truncated_and_flipped(tmp_path, rel):
    src = corpus_path(rel)
    data = src.read_bytes()
    table, _, cls = read(src, display="evidence")
    intact = rows_by_locator(table)
    assert intact
    cut = random.Random(5).randrange(len(data) // 2, len(data) - 1)
    cut_t, _, _ = read(_write(tmp_path, "cut", data[:cut]), display="cut", source=cls)
    _kept(intact, rows_by_locator(cut_t), range(1, line_of(data, cut)))
    bad, where = flip_high_bits(data, 4, seed=6, start=data.index(b"\n", len(data) // 3) + 1)
    flip_t, ctx, _ = read(_write(tmp_path, "flipped", bad), display="flipped", source=cls)
    hit = {line_of(data, i) for i in where}
    _kept(intact, rows_by_locator(flip_t), set(range(1, data.count(b"\n") + 2)) - hit)
    assert any(w.path == "flipped" and "UTF-8" in w.message for w in ctx.warnings)


def test_corpus_gzip_zeek_truncated(tmp_path):
    src = corpus_path("zeek/wrccdc-2018-tsv/dns.log.gz")
    gz = src.read_bytes()
    data = gzip.decompress(gz)
    table, _, cls = read(src, display="evidence")
    intact = rows_by_locator(table)
    bad = gz[: len(gz) // 3]
    t, ctx, _ = read(_write(tmp_path, "dns.log.gz", bad), display="dns.log.gz", source=cls)
    _kept(intact, rows_by_locator(t), range(1, line_of(data, _good_prefix(data, bad))))
    assert any(w.path == "dns.log.gz" and "truncated" in w.message for w in ctx.warnings)


# ---- EVTX -----------------------------------------------------------------------------
HEADER, CHUNK = 4096, 65536


def _chunks(data: bytes) -> list[tuple[int, int, int, int]]:
    """(offset, first record id, last record id, end of record data) per chunk."""
    out = []
    for off in range(HEADER, len(data) - CHUNK + 1, CHUNK):
        if data[off:off + 8] == b"ElfChnk\x00":
            first, last = struct.unpack_from("<QQ", data, off + 24)
            (free,) = struct.unpack_from("<I", data, off + 48)
            out.append((off, first, last, free))
    return out


def _evtx_rows(path: Path, display: str):
    table, ctx, _ = read(path, display=display, source=EvtxSource)
    return rows_by_locator(table), ctx


@pytest.fixture(scope="module")
def security_evtx():
    src = corpus_path("evtx-benign/security.evtx")
    data = src.read_bytes()
    rows, _ = _evtx_rows(src, "evidence.evtx")
    return data, rows, _chunks(data)


def _records(chunks, keep) -> set[int]:
    return {r for i, (_, a, b, _) in enumerate(chunks) if keep(i) for r in range(a, b + 1)}


def test_evtx_truncated_mid_chunk(tmp_path, security_evtx):
    data, intact, chunks = security_evtx
    k = len(chunks) // 2
    cut = chunks[k][0] + 30_000
    rows, ctx = _evtx_rows(_write(tmp_path, "cut.evtx", data[:cut]), "cut.evtx")
    _kept(intact, rows, _records(chunks, lambda i: i < k))
    trunc = [w for w in ctx.warnings if "truncated" in w.message]
    assert trunc and trunc[0].path == "cut.evtx" and trunc[0].locators == (f"offset {cut}",)


@pytest.mark.parametrize("seed", [21, 22])
def test_evtx_bit_flips_in_one_chunk(tmp_path, security_evtx, seed):
    data, intact, chunks = security_evtx
    k = len(chunks) // 3 + seed % 3
    off, _, _, free = chunks[k]
    bad, _ = flip_bits(data, 8, seed=seed, start=off + 512, end=off + free)
    rows, ctx = _evtx_rows(_write(tmp_path, "flipped.evtx", bad), "flipped.evtx")
    _kept(intact, rows, _records(chunks, lambda i: i != k))  # other chunks: untouched
    crc = [w for w in ctx.warnings if "checksum mismatch" in w.message]
    assert crc and crc[0].path == "flipped.evtx"
    assert f"chunk {k} @ offset {off}" in crc[0].locators


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_evtx_random_bit_flips_anywhere(tmp_path, security_evtx, seed):
    data, intact, chunks = security_evtx
    start = chunks[len(chunks) // 3][0]  # the first third stays whole, to compare
    bad, where = flip_bits(data, 40, seed=seed, start=start, end=len(data))
    rows, _ = _evtx_rows(_write(tmp_path, "flipped.evtx", bad), "flipped.evtx")
    first = (where[0] - HEADER) // CHUNK
    _kept(intact, rows, _records(chunks, lambda i: i < first))
