"""Builders and checks shared by the robustness cases.

Every text log type tidehunt reads, generated line by line (deterministic, ASCII, one
record per line after the header), deterministic damage (truncation, bit flips) and a
reader that returns the rows with the run's warnings.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from tidehunt.context import RunContext
from tidehunt.sources.base import Artefact, Source
from tidehunt.sources.sniff import sniff


def _apache(i: int) -> str:
    return (f'10.0.{i // 250 % 250}.{i % 250} - user{i % 7} [11/Jul/2018:05:{i // 60 % 60:02d}:'
            f'{i % 60:02d} +0300] "GET /tok{i}/p?q={i} HTTP/1.1" 200 {i} "-" "UA {i}"')


_IIS_HEAD = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
             "#Date: 2024-01-01 00:00:00",
             "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username "
             "c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken"]


def _iis(i: int) -> str:
    return (f"2024-01-01 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} 10.0.0.1 GET "
            f"/tok{i}/p q={i} 443 - 10.1.{i // 250 % 250}.{i % 250} Mozilla/5.0+({i}) 200 0 0 {i}")


_ZEEK_HEAD = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
              "#unset_field\t-", "#path\tconn", "#open\t2024-01-01-00-00-00",
              "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice"
              "\tduration\torig_bytes\tresp_bytes\tconn_state",
              "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount"
              "\tcount\tstring"]


def _zeek_tsv(i: int) -> str:
    return (f"{1704067200 + i}.{i % 1000:06d}\tC{i:08d}\t10.2.{i // 250 % 250}.{i % 250}\t"
            f"{40000 + i % 20000}\t203.0.113.{i % 200}\t443\ttcp\ttok{i}\t{i % 100}.5\t{i}\t"
            f"{2 * i}\tSF")


def _zeek_json(i: int) -> str:
    return json.dumps({"ts": 1704067200 + i + 0.25, "uid": f"C{i:08d}",
                       "id.orig_h": f"10.2.{i // 250 % 250}.{i % 250}", "id.orig_p": 40000 + i,
                       "id.resp_h": "203.0.113.7", "id.resp_p": 53, "proto": "udp",
                       "query": f"tok{i}.example.com", "qtype_name": "A", "_path": "dns"})


def _squid(i: int) -> str:
    return (f"{1704067200 + i}.{i % 1000:03d}    {i % 900} 10.3.{i // 250 % 250}.{i % 250} "
            f"TCP_MISS/200 {100 + i} GET http://site{i % 50}.example/tok{i} - "
            f"HIER_DIRECT/203.0.113.{i % 200} text/html")


_FIREWALL_HEAD = ["timestamp,src_ip,dst_ip,dst_port,action,bytes_out,app"]


def _firewall(i: int) -> str:
    return (f"2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,"
            f"10.4.{i // 250 % 250}.{i % 250},203.0.113.{i % 200},{443 + i % 3},allow,{i},"
            f"tok{i}")


_AUTH_HEAD = ["timestamp,username,src_ip,result,mfa,app"]


def _auth(i: int) -> str:
    return (f"2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,user{i % 9},"
            f"198.51.100.{i % 250},{'success' if i % 3 else 'failure'},push,tok{i}")


def _windows_json(i: int) -> str:
    return json.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
        "EventRecordID": i, "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "ws1.corp.example",
        "TimeCreated": {"#attributes": {"SystemTime":
                                        f"2026-10-06T01:{i // 60 % 60:02d}:{i % 60:02d}Z"}}},
        "EventData": {"Image": f"C:\\Windows\\System32\\tool{i}.exe",
                      "CommandLine": f"tok{i}.exe /run {i}"}}})


#: name -> (source NAME, header lines, record line builder); record i is on line
#: len(header) + i (1-based i).
LOGS: dict[str, tuple[str, list[str], Callable[[int], str]]] = {
    "access_log": ("access_log", [], _apache),
    "iis_w3c": ("iis_w3c", _IIS_HEAD, _iis),
    "zeek_tsv": ("zeek", _ZEEK_HEAD, _zeek_tsv),
    "zeek_json": ("zeek", [], _zeek_json),
    "squid": ("squid", [], _squid),
    "net_export": ("net_export", _FIREWALL_HEAD, _firewall),
    "auth_csv": ("auth_csv", _AUTH_HEAD, _auth),
    "windows_json": ("windows_json", [], _windows_json),
}
#: The column each log type's ``tok<i>`` free-text token lands in.
TOKEN_COLUMN = {"access_log": "uri_stem", "iis_w3c": "uri_stem", "zeek_tsv": "service",
                "zeek_json": "query", "squid": "url", "net_export": "service",
                "auth_csv": "app", "windows_json": "CommandLine"}
#: the line-block readers (the ones that cut a long line; the others skip it or refuse it)
LINE_READERS = ("access_log", "iis_w3c", "zeek_tsv", "zeek_json", "squid", "net_export")


def log_lines(kind: str, n: int, first: int = 1) -> list[str]:
    """Header and records ``first`` .. ``first + n - 1`` of a generated log."""
    _, head, line = LOGS[kind]
    return [*head, *(line(i) for i in range(first, first + n))]


def log_bytes(kind: str, n: int, encoding: str = "utf-8", token: str = "tok") -> bytes:
    """A generated log of ``n`` records, LF line ends; ``token`` replaces the ``tok`` of
    each record's free-text field (``"t\u00f6k"`` to put a non-ASCII letter there)."""
    text = "\n".join(log_lines(kind, n)) + "\n"
    return text.replace("tok", token).encode(encoding)


def read(path: Path, display: str | None = None,
         source: type[Source] | None = None) -> tuple[pa.Table, RunContext, type[Source]]:
    """Every row a file gives (one table) with the context holding its warnings."""
    art = Artefact("a1", path, display or str(path))
    cls = source or sniff(art)
    assert cls is not None, f"no reader recognises {path}"
    ctx = RunContext()
    batches = [pa.Table.from_batches([b.data]) for b in cls().read(art, ctx)]
    table = (pa.concat_tables(batches, promote_options="permissive") if batches
             else pa.table({"_locator": pa.array([], pa.string())}))
    return table, ctx, cls


def rows_by_locator(table: pa.Table, drop: tuple[str, ...] = ("source_file",)
                    ) -> dict[str, list[dict[str, object]]]:
    """Rows by ``_locator`` (damage can give two rows one locator), each without the
    columns in ``drop`` and without nulls (tables of other columns compare equal)."""
    keep = [c for c in table.column_names if c not in drop]
    out: dict[str, list[dict[str, object]]] = {}
    for r in table.select(keep).to_pylist():
        out.setdefault(str(r["_locator"]), []).append(
            {k: v for k, v in r.items() if v is not None})
    return out


def line_of(data: bytes, offset: int) -> int:
    """1-based line number of the byte at ``offset``."""
    return data.count(b"\n", 0, offset) + 1


def flip_high_bits(data: bytes, n: int, seed: int, start: int) -> tuple[bytes, list[int]]:
    """Set the top bit of ``n`` bytes (seeded positions at or after ``start``, never a
    line end): each such ASCII byte becomes invalid UTF-8, a defect a reader can see."""
    rng = random.Random(seed)
    out = bytearray(data)
    where: list[int] = []
    while len(where) < n:
        i = rng.randrange(start, len(data))
        if out[i] in b"\r\n" or out[i] & 0x80 or i in where:
            continue
        out[i] |= 0x80
        where.append(i)
    return bytes(out), sorted(where)


def flip_bits(data: bytes, n: int, seed: int, start: int, end: int | None = None
              ) -> tuple[bytes, list[int]]:
    """Flip ``n`` random bits (seeded) in ``data[start:end]``."""
    rng = random.Random(seed)
    out = bytearray(data)
    where = sorted(rng.sample(range(start, end if end is not None else len(data)), n))
    for i in where:
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out), where


def warned(ctx: RunContext, needle: str, display: str) -> list[object]:
    """Warnings whose message holds ``needle`` and that name the file ``display``."""
    return [w for w in ctx.warnings if needle in w.message and w.path == display]
