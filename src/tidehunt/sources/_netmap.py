"""Column mappings of proxy, firewall and flow exports, the built-in presets, and the
builder that turns their string columns into ``proxy`` and ``net_conn`` batches.

A mapping (``--net-mapping FILE``, YAML) names the table a layout fills, how it is written
and which of its fields is which of our columns::

    table: proxy                       # or net_conn
    format: jsonl                      # csv, tsv, jsonl, elff, or squid (extra fields)
    delimiter: ";"                     # csv only (tsv is a tab)
    columns:                           # our column: their field (a list: first present wins)
      ts: event.time
      src_ip: client.ip
      url: [request.url, url]
    time_format: "%d/%m/%Y %H:%M:%S"   # or epoch, epoch_ms, iso, auto (the default); a list
    timezone: Australia/Perth          # for times written without a zone (default UTC)
    duration_unit: ms                  # s (default) or ms
    match: ["client.ip", "request.url"]   # text the header must hold to pick this mapping
    preset: nfdump                     # start from a built-in layout; columns then override

A file holds one mapping or ``mappings: [...]``. Field names of csv, tsv and elff headers
are compared without case and punctuation (``Source address`` = ``source_address``); jsonl
fields are JSON keys, exact, dotted for nested objects (``client.ip``).

The builder is vectorised (Polars expressions over the block): times in one or more
layouts, addresses checked for shape, URL host and port taken apart, ports and byte
counts cast. A row without a readable time or (client, source, destination) address is a
bad line, reported with its line number; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from tidehunt.context import RunContext
from tidehunt.errors import ConfigError
from tidehunt.model.batch import TableBatch
from tidehunt.sources._lines import LineStats, head_lines, text_head, warn_bad
from tidehunt.sources.base import Artefact
from tidehunt.yamlconf import load_yaml

#: Our columns a mapping may fill, per table (the provenance columns are ours to set).
OUR_COLUMNS: dict[str, tuple[str, ...]] = {
    "proxy": ("ts", "host", "src_ip", "user", "method", "url", "url_host", "dst_ip",
              "dst_port", "status_code", "bytes_out", "bytes_in", "user_agent", "action",
              "category", "content_type", "duration"),
    "net_conn": ("ts", "host", "uid", "src_ip", "src_port", "dst_ip", "dst_port", "proto",
                 "service", "duration", "bytes_out", "bytes_in", "conn_state", "local_orig",
                 "local_resp", "orig_pkts", "resp_pkts", "history", "action", "device"),
}
#: Parts that make up a column: date + time -> ts; scheme, host, port, path, query -> url.
PSEUDO: dict[str, tuple[str, ...]] = {
    "proxy": ("date", "time", "url_scheme", "url_path", "url_query"),
    "net_conn": ("date", "time"),
}
#: Addresses a row cannot do without (besides its time).
REQUIRED: dict[str, tuple[str, ...]] = {"proxy": ("src_ip",), "net_conn": ("src_ip", "dst_ip")}
FORMATS = ("csv", "tsv", "jsonl", "elff", "squid")
TIME_KEYWORDS = ("auto", "epoch", "epoch_ms", "iso")
KEYS = {"name", "table", "format", "delimiter", "columns", "time_format", "timezone",
        "duration_unit", "match", "preset", "extra_fields"}
INTS = {"src_port", "dst_port", "status_code", "bytes_out", "bytes_in", "orig_pkts",
        "resp_pkts"}
BOOLS = {"local_orig", "local_resp"}
DEFAULT_PORT = {"http": "80", "https": "443", "ftp": "21", "ws": "80", "wss": "443",
                "ssl": "443"}
PROTO_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmp", "47": "gre", "50": "esp",
                 "132": "sctp"}
#: Latest epoch second we read as a time (2100-01-01): larger numbers are not times.
MAX_EPOCH = 4_102_444_800

_IPV4 = r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"
_IPV6 = (r"^(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|(?:\d{1,3}\.){3}\d{1,3})"
         r"(?:%[0-9A-Za-z_.-]+)?$")
_URL = (r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?(?:[^@/?#\s]*@)?"
        r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:?#\s\[\]@]+)(?::(?P<port>\d{1,5}))?(?:[/?#]|$)")


def header_key(name: str) -> str:
    """A header name without case and punctuation: ``Source address`` -> ``source_address``."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


@dataclass(frozen=True, slots=True)
class NetMapping:
    """How one export layout maps onto ``proxy`` or ``net_conn`` (a preset or the user's)."""

    name: str
    table: str
    format: str
    #: Our column -> their field names, the first one present wins.
    columns: Mapping[str, tuple[str, ...]]
    delimiter: str = ","
    #: Layouts tried in order per value: epoch, epoch_ms, iso, auto, or strftime.
    time_format: tuple[str, ...] = ("auto",)
    timezone: str = "UTC"
    #: The user named the timezone (else a naive time's warning says how to set it).
    timezone_set: bool = False
    #: The format defines its times as UTC (W3C ELFF): no warning for naive times.
    utc_by_format: bool = False
    duration_unit: str = "s"
    #: Header text (case-insensitive) that must all appear for the mapping to apply.
    match: tuple[str, ...] = ()
    #: Presets: groups of header fields; one of each group must be present.
    signature: tuple[tuple[str, ...], ...] = ()
    #: squid: our columns of the fields after the native ten (a custom logformat).
    extra_fields: tuple[str, ...] = ()
    #: A line that ends the records (nfdump's ``Summary`` trailer).
    stop_at: str | None = None
    #: Fields holding bytes of both directions together (not stored, but said so).
    undirected: tuple[str, ...] = ()
    builtin: bool = False

    # ---- picking a mapping for a file -----------------------------------------------
    def resolve(self, header: Sequence[str]) -> dict[str, int]:
        """Our column -> index of its field in ``header`` (csv, tsv, elff)."""
        keys: dict[str, int] = {}
        for i, h in enumerate(header):
            keys.setdefault(header_key(h), i)
        out: dict[str, int] = {}
        for ours, cands in self.columns.items():
            for c in cands:
                hit = keys.get(header_key(c))
                if hit is not None:
                    out[ours] = hit
                    break
        return out

    def has_required(self, have: Iterable[str]) -> bool:
        """The columns found give a time and every address a row needs."""
        s = set(have)
        timed = "ts" in s or {"date", "time"} <= s
        return timed and set(REQUIRED[self.table]) <= s

    def fits(self, head: bytes) -> bool:
        """True if this mapping reads a file starting with ``head``. Never raises."""
        try:
            return self._fits(head)
        except (ValueError, csv.Error, orjson.JSONDecodeError, RecursionError):
            return False

    def _fits(self, head: bytes) -> bool:
        if self.format == "squid":
            return False
        if self.format == "jsonl":
            lines = head_lines(head, 1)
            if not lines or not lines[0].lstrip().startswith("{"):
                return False
            if self.match:
                return _all_in(self.match, lines[0])
            first = orjson.loads(lines[0])
            if not isinstance(first, dict):
                return False
            return self.has_required(k for k, v in self.columns.items()
                                     if any(json_get(first, c) is not None for c in v))
        text, fields = header_of(head, self)
        if fields is None:
            return False
        if self.match:
            return _all_in(self.match, text)
        if self.signature:
            keys = {header_key(f) for f in fields}
            if not all(any(header_key(k) in keys for k in g) for g in self.signature):
                return False
        return self.has_required(self.resolve(fields))

    def naive_note(self) -> str | None:
        """The warning for times read without a zone (None: the format says UTC)."""
        if self.utc_by_format:
            return None
        msg = f"times without a zone read as {self.timezone}"
        if self.timezone_set:
            return msg + f" (timezone of mapping {self.name})"
        return msg + "; give timezone in --net-mapping if the export wrote local time"

    # ---- reading a user's mapping ---------------------------------------------------
    @classmethod
    def from_dict(cls, doc: Any, where: str) -> NetMapping:
        """Check one mapping document; every problem is a ConfigError saying where."""
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}: a mapping must be a YAML mapping with table, "
                              "format and columns")
        unknown = set(doc) - KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))} "
                              f"(known: {', '.join(sorted(KEYS))})")
        base: NetMapping | None = None
        if doc.get("preset") is not None:
            base = PRESETS_BY_NAME.get(str(doc["preset"]))
            if base is None:
                raise ConfigError(f"{where}: unknown preset {doc['preset']!r} (known: "
                                  f"{', '.join(PRESETS_BY_NAME)})")
        name = str(doc.get("name") or (base.name if base else where))
        table = doc.get("table", base.table if base else None)
        if table not in OUR_COLUMNS:
            raise ConfigError(f"{where}: table must be proxy or net_conn, not {table!r}")
        fmt = doc.get("format", base.format if base else None)
        if fmt not in FORMATS:
            raise ConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, "
                              f"not {fmt!r}")
        if base is not None and (table, fmt) != (base.table, base.format):
            raise ConfigError(f"{where}: preset {base.name} is {base.format} into "
                              f"{base.table}; table and format cannot change")
        if fmt == "squid" and table != "proxy":
            raise ConfigError(f"{where}: format squid fills the proxy table")
        delimiter = doc.get("delimiter", "\t" if fmt == "tsv" else
                            base.delimiter if base else ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
            raise ConfigError(f"{where}: delimiter must be one character (not a quote or "
                              f"a line end), not {delimiter!r}")
        if delimiter != ",":
            if fmt not in ("csv", "tsv"):
                raise ConfigError(f"{where}: delimiter applies to csv and tsv only")
            if fmt == "tsv" and delimiter != "\t":
                raise ConfigError(f"{where}: tsv is tab-separated; use format csv with "
                                  "delimiter for other separators")
        columns = _columns(doc.get("columns"), table, fmt, where, base)
        extra = _extra_fields(doc.get("extra_fields"), table, fmt, where)
        times = _time_formats(doc.get("time_format"), where, base)
        tz = doc.get("timezone")
        if tz is not None:
            if not isinstance(tz, str):
                raise ConfigError(f"{where}: timezone must be an IANA name such as "
                                  "Australia/Sydney")
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ConfigError(f"{where}: unknown timezone {tz!r} (an IANA name such "
                                  "as Australia/Sydney or UTC)") from exc
        unit = doc.get("duration_unit", base.duration_unit if base else "s")
        if unit not in ("s", "ms"):
            raise ConfigError(f"{where}: duration_unit must be s or ms, not {unit!r}")
        match = doc.get("match")
        if match is not None:
            if isinstance(match, str):
                match = [match]
            if not isinstance(match, list) or not match or not all(
                    isinstance(m, str) and m for m in match):
                raise ConfigError(f"{where}: match must be a list of header texts")
        out = cls(
            name=name, table=table, format=fmt, columns=columns, delimiter=delimiter,
            time_format=times, timezone=tz or (base.timezone if base else "UTC"),
            timezone_set=tz is not None, utc_by_format=bool(base and base.utc_by_format
                                                            and tz is None),
            duration_unit=unit, match=tuple(match or ()),
            signature=base.signature if base and not match else (), extra_fields=extra,
            stop_at=base.stop_at if base else None,
            undirected=base.undirected if base else ())
        if fmt != "squid" and not out.has_required(columns):
            need = ", ".join(REQUIRED[table])
            raise ConfigError(f"{where}: columns must name a time (ts, or date and time) "
                              f"and {need} for the {table} table")
        return out


PRESETS: tuple[NetMapping, ...] = (
    NetMapping(
        name="elff_proxysg", table="proxy", format="elff", builtin=True,
        columns={"ts": ("x-timestamp-unix",), "date": ("date",), "time": ("time",),
                 "duration": ("time-taken",), "src_ip": ("c-ip",),
                 "user": ("cs-username", "cs-userdn"), "method": ("cs-method",),
                 "url": ("cs-uri",), "url_scheme": ("cs-uri-scheme",),
                 "url_host": ("cs-host", "cs-uri-host"), "dst_port": ("cs-uri-port",),
                 "url_path": ("cs-uri-path", "cs-uri-stem"), "url_query": ("cs-uri-query",),
                 "dst_ip": ("r-ip", "s-supplier-ip", "cs-uri-address"),
                 "status_code": ("sc-status",), "bytes_out": ("cs-bytes",),
                 "bytes_in": ("sc-bytes",), "user_agent": ("cs(User-Agent)",),
                 "action": ("s-action", "sc-filter-result"),
                 "category": ("cs-categories", "sc-filter-category"),
                 "content_type": ("rs(Content-Type)",),
                 "host": ("s-computername", "s-ip")},
        time_format=("iso", "epoch"), utc_by_format=True, duration_unit="ms",
        signature=(("c-ip",), ("s-action", "sc-filter-result", "x-exception-id",
                               "cs-categories", "s-supplier-ip", "s-supplier-name"))),
    NetMapping(
        name="nfdump", table="net_conn", format="csv", builtin=True,
        columns={"ts": ("ts",), "src_ip": ("sa",), "dst_ip": ("da",), "src_port": ("sp",),
                 "dst_port": ("dp",), "proto": ("pr",), "duration": ("td",),
                 "bytes_out": ("ibyt",), "bytes_in": ("obyt",), "orig_pkts": ("ipkt",),
                 "resp_pkts": ("opkt",), "device": ("ra",)},
        time_format=("iso",), stop_at="Summary",
        signature=(("ts",), ("te",), ("td",), ("sa",), ("da",), ("sp",), ("dp",), ("pr",),
                   ("ibyt",))),
    NetMapping(
        name="paloalto_traffic", table="net_conn", format="csv", builtin=True,
        columns={"ts": ("Start Time", "Generate Time", "Receive Time"),
                 "src_ip": ("Source address",), "dst_ip": ("Destination address",),
                 "src_port": ("Source Port",), "dst_port": ("Destination Port",),
                 "proto": ("IP Protocol",), "service": ("Application",),
                 "duration": ("Elapsed Time (sec)",), "bytes_out": ("Bytes Sent",),
                 "bytes_in": ("Bytes Received",), "orig_pkts": ("Packets Sent",),
                 "resp_pkts": ("Packets Received",), "action": ("Action",),
                 "device": ("Device Name", "Serial #")},
        time_format=("%Y/%m/%d %H:%M:%S", "iso"),
        signature=(("Receive Time",), ("Source address",), ("Destination address",),
                   ("Destination Port",), ("Bytes Sent",), ("Bytes Received",),
                   ("Action",))),
    NetMapping(
        name="zscaler_nss", table="proxy", format="csv", builtin=True,
        columns={"ts": ("epochtime", "datetime", "time"), "user": ("login", "user"),
                 "src_ip": ("cip", "clientip"), "dst_ip": ("sip", "serverip"),
                 "url": ("eurl", "url"), "url_scheme": ("proto",),
                 "method": ("reqmethod",), "status_code": ("respcode",),
                 "bytes_out": ("reqsize",), "bytes_in": ("respsize",),
                 "user_agent": ("ua", "useragent"), "action": ("action",),
                 "category": ("urlcat", "urlcategory"), "content_type": ("contenttype",),
                 "duration": ("clienttranstime",)},
        time_format=("epoch", "%a %b %d %H:%M:%S %Y", "iso"), duration_unit="ms",
        signature=(("cip",), ("reqmethod",), ("respcode",), ("eurl", "url"),
                   ("epochtime", "datetime", "time"))),
)
_FW_TS = ("timestamp", "time", "datetime", "date_time", "event_time", "eventtime",
          "start_time", "receive_time", "generated_time", "log_time", "date")
_FW_SRC = ("src_ip", "source_ip", "srcip", "src", "source", "source_address", "src_addr",
           "saddr", "client_ip")
_FW_DST = ("dst_ip", "dest_ip", "destination_ip", "dstip", "dst", "destination",
           "destination_address", "dst_addr", "daddr", "dest")
_FW_DPORT = ("dst_port", "dest_port", "destination_port", "dstport", "dport", "dpt")
_FW_ACTION = ("action", "act", "disposition", "verdict", "fw_action")
_FW_PROTO = ("proto", "protocol", "ip_protocol", "ipproto", "transport")
FIREWALL_CSV = NetMapping(
    name="firewall_csv", table="net_conn", format="csv", builtin=True,
    columns={"ts": _FW_TS, "src_ip": _FW_SRC, "dst_ip": _FW_DST,
             "src_port": ("src_port", "source_port", "srcport", "sport", "spt"),
             "dst_port": _FW_DPORT, "proto": _FW_PROTO, "action": _FW_ACTION,
             "bytes_out": ("bytes_out", "bytes_sent", "sent_bytes", "sentbyte", "out_bytes",
                           "orig_bytes", "tx_bytes", "bytes_to_server"),
             "bytes_in": ("bytes_in", "bytes_received", "received_bytes", "rcvdbyte",
                          "rcvd_bytes", "in_bytes", "resp_bytes", "rx_bytes",
                          "bytes_to_client"),
             "orig_pkts": ("packets_sent", "pkts_sent", "sentpkt", "out_packets"),
             "resp_pkts": ("packets_received", "pkts_received", "rcvdpkt", "in_packets"),
             "duration": ("duration", "elapsed", "elapsed_time", "session_duration"),
             "service": ("service", "app", "application", "appname"),
             "device": ("device", "device_name", "devname", "firewall", "observer",
                        "log_source")},
    time_format=("auto",), undirected=("bytes", "total_bytes", "bytes_total"),
    signature=(_FW_TS, _FW_SRC, _FW_DST, _FW_DPORT, _FW_ACTION + _FW_PROTO))
PRESETS = (*PRESETS, FIREWALL_CSV)
PRESETS_BY_NAME: dict[str, NetMapping] = {m.name: m for m in PRESETS}
#: Squid's native access.log: times are epoch seconds, elapsed is milliseconds.
SQUID = NetMapping(name="squid", table="proxy", format="squid", columns={},
                   time_format=("epoch",), duration_unit="ms", builtin=True)


# ---- mapping documents --------------------------------------------------------------
def parse_mappings(doc: Any, where: str) -> tuple[NetMapping, ...]:
    """One mapping or ``mappings: [...]`` from a YAML document, checked."""
    if isinstance(doc, dict) and set(doc) == {"mappings"}:
        items = doc["mappings"]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{where}: mappings must be a non-empty list")
        return tuple(NetMapping.from_dict(m, f"{where}: mapping {i + 1}")
                     for i, m in enumerate(items))
    if isinstance(doc, list):
        if not doc:
            raise ConfigError(f"{where}: empty list of mappings")
        return tuple(NetMapping.from_dict(m, f"{where}: mapping {i + 1}")
                     for i, m in enumerate(doc))
    return (NetMapping.from_dict(doc, where),)


def load_net_mappings(path: str | Path) -> tuple[NetMapping, ...]:
    """The mappings of a ``--net-mapping`` file; a ConfigError names what is wrong."""
    doc = load_yaml(path, "net mapping")
    if doc is None:
        raise ConfigError(f"{path}: net mapping is empty")
    return parse_mappings(doc, str(path))


def mappings_from_options(options: Mapping[str, Any]) -> tuple[NetMapping, ...]:
    """The user's mappings among the ingest options (``net_mapping``): NetMapping values
    as the CLI gives them, or plain documents from a library caller (checked here)."""
    given = options.get("net_mapping")
    if not given:
        return ()
    items = given if isinstance(given, list | tuple) else [given]
    out: list[NetMapping] = []
    for i, m in enumerate(items):
        out.extend([m] if isinstance(m, NetMapping) else
                   parse_mappings(m, f"net_mapping option {i + 1}"))
    return tuple(out)


def _all_in(needles: Iterable[str], text: str) -> bool:
    low = text.lower()
    return all(n.lower() in low for n in needles)


def _columns(v: Any, table: str, fmt: str, where: str,
             base: NetMapping | None) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = dict(base.columns) if base else {}
    if v is None:
        if base is None and fmt != "squid":
            raise ConfigError(f"{where}: columns is missing (our column: their field)")
        return out
    if fmt == "squid":
        raise ConfigError(f"{where}: a squid mapping names extra_fields, not columns")
    if not isinstance(v, dict) or not v:
        raise ConfigError(f"{where}: columns must map our column names to their fields")
    allowed = (*OUR_COLUMNS[table], *PSEUDO[table])
    for ours, theirs in v.items():
        if ours not in allowed:
            raise ConfigError(f"{where}: {ours!r} is not a column of {table} (known: "
                              f"{', '.join(allowed)})")
        names = [theirs] if isinstance(theirs, str) else theirs
        if not isinstance(names, list) or not names or not all(
                isinstance(n, str) and n.strip() for n in names):
            raise ConfigError(f"{where}: column {ours} wants a field name or a list of "
                              f"them, not {theirs!r}")
        out[str(ours)] = tuple(n.strip() for n in names)
    if fmt == "jsonl":
        _check_json_paths(out, where)
    return out


def _check_json_paths(columns: Mapping[str, tuple[str, ...]], where: str) -> None:
    leaves = {p for names in columns.values() for p in names}
    for p in leaves:
        parts = p.split(".")
        for k in range(1, len(parts)):
            prefix = ".".join(parts[:k])
            if prefix in leaves:
                raise ConfigError(f"{where}: {prefix!r} is named both as a field and as an "
                                  f"object holding {p!r}")


def _extra_fields(v: Any, table: str, fmt: str, where: str) -> tuple[str, ...]:
    if fmt != "squid":
        if v is not None:
            raise ConfigError(f"{where}: extra_fields is for format squid only")
        return ()
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where}: a squid mapping needs extra_fields: the proxy columns "
                          "of the fields after the content type, in order (- to skip one)")
    for x in v:
        if x != "-" and (x not in OUR_COLUMNS[table] or x == "ts"):
            raise ConfigError(f"{where}: extra field {x!r} is not a proxy column (known: "
                              f"{', '.join(c for c in OUR_COLUMNS[table] if c != 'ts')})")
    return tuple(v)


def _time_formats(v: Any, where: str, base: NetMapping | None) -> tuple[str, ...]:
    if v is None:
        return base.time_format if base else ("auto",)
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
        raise ConfigError(f"{where}: time_format must be epoch, epoch_ms, iso, auto or a "
                          "strftime layout (or a list of them)")
    sample = datetime(2024, 11, 23, 14, 5, 9, 250000, tzinfo=UTC)
    for f in items:
        if f in TIME_KEYWORDS:
            continue
        if "%" not in f:
            raise ConfigError(f"{where}: time_format {f!r} is neither a keyword ("
                              f"{', '.join(TIME_KEYWORDS)}) nor a strftime layout")
        if "%Z" in f:
            raise ConfigError(f"{where}: time_format {f!r}: zone names (%Z) cannot be read; "
                              "use %z for offsets, or timezone for the zone")
        try:
            text = sample.strftime(f)
        except ValueError as exc:
            raise ConfigError(f"{where}: time_format {f!r} is not a strftime layout: "
                              f"{exc}") from exc
        got, _ = parse_times(pl.Series([text]), (f,), "UTC")
        if got[0] is None:
            raise ConfigError(f"{where}: time_format {f!r} cannot read the times it "
                              f"writes ({text!r}); check the layout")
    return tuple(items)


# ---- headers ------------------------------------------------------------------------
def header_of(head: bytes, mapping: NetMapping) -> tuple[str, list[str] | None]:
    """The header line of a csv/tsv/elff head and its fields (None: no header)."""
    if mapping.format == "elff":
        for ln in head_lines(head, 40):
            if ln.startswith("#Fields:"):
                return ln, ln[len("#Fields:"):].split()
        return "", None
    text = text_head(head)
    first = text.split("\n", 1)[0].rstrip("\r").lstrip("\ufeff")
    if not first.strip() or "\x00" in first:
        return "", None
    return first, split_header(first, mapping.delimiter)


def split_header(line: str, delimiter: str) -> list[str]:
    """A header line's fields (csv quoting honoured)."""
    try:
        fields = next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return []
    return [f.strip() for f in fields]


def dedup(names: Sequence[str]) -> list[str]:
    """Field names made unique (a second ``Padding`` becomes ``Padding_2``)."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0) + 1
        seen[n] = k
        out.append(n if k == 1 else f"{n}_{k}")
    return out


def json_get(obj: Any, path: str) -> Any:
    """The value at a key (tried whole first, as keys may hold dots) or dotted path."""
    if not isinstance(obj, dict):
        return None
    if path in obj:
        return obj[path]
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


# ---- times --------------------------------------------------------------------------
def parse_times(raw: pl.Series, formats: Sequence[str], tz: str
                ) -> tuple[pl.Series, pl.Series]:
    """Times in UTC and which of them were written without a zone (read in ``tz``).
    Each layout is tried only on the values the earlier ones could not read."""
    n = len(raw)
    raw = raw.cast(pl.String).str.strip_chars()
    out = pl.Series("ts", [None] * n, dtype=pl.Datetime("us", "UTC"))
    naive = pl.Series("naive", [False] * n, dtype=pl.Boolean)
    for fmt in formats:
        for layout, was_naive in _layouts(fmt, tz):
            todo = (out.is_null() & raw.is_not_null()).arg_true()
            if len(todo) == 0:
                return out, naive
            got = layout(raw.gather(todo) if len(todo) < n else raw)
            ok = got.is_not_null()
            if ok.any():
                hit = todo.filter(ok)
                out = out.scatter(hit, got.filter(ok))
                if was_naive:
                    naive = naive.scatter(hit, True)
    return out, naive


Layout = Callable[[pl.Series], pl.Series]


def _layouts(fmt: str, tz: str) -> list[tuple[Layout, bool]]:
    """The readers of one time_format, each with whether what it reads has no zone."""
    if fmt == "epoch":
        return [(lambda s: _epoch(s, 1.0), False)]
    if fmt == "epoch_ms":
        return [(lambda s: _epoch(s, 1000.0), False)]
    if fmt == "auto":
        return [(_epoch_auto, False), *_layouts("iso", tz),
                (lambda s: _strftime(s, "%Y/%m/%d %H:%M:%S%.f", tz), True),
                (lambda s: _strftime(s, "%d/%b/%Y:%H:%M:%S %z", tz), False)]
    if fmt == "iso":
        return [(lambda s: _to_dt(_iso(s), "%Y-%m-%dT%H:%M:%S%.f%z"), False),
                (lambda s: _local(_to_dt(_iso(s), "%Y-%m-%dT%H:%M:%S%.f"), tz), True)]
    chrono = fmt.replace(".%f", "%.f")
    aware = any(z in fmt for z in ("%z", "%:z"))
    return [(lambda s: _strftime(s, chrono, tz), not aware)]


def _iso(s: pl.Series) -> pl.Series:
    return (s.str.replace(r"^(\d{4}-\d\d-\d\d)[ T]", "${1}T")
            .str.replace(r"[Zz]$", "+00:00").str.replace(r" ?UTC$", "+00:00"))


def _epoch_auto(s: pl.Series) -> pl.Series:
    """9 to 13 digits: epoch seconds, or milliseconds from 1e11 (as parse_time reads)."""
    digits = s.str.contains(r"^\d{9,13}(?:\.\d+)?$").fill_null(False)
    x = s.cast(pl.Float64, strict=False)
    x = x.zip_with(digits, pl.Series([None] * len(s), dtype=pl.Float64))
    return _epoch_secs(x.zip_with((x < 1e11).fill_null(True), x / 1000.0))


def _strftime(raw: pl.Series, chrono: str, tz: str) -> pl.Series:
    # Polars reads fixed-width numbers: pad a lone digit ("Jun 5" -> "Jun 05"), twice for
    # neighbours ("1:2:3"); a digit after a dot is a fraction and stays
    pad = r"(^|[^0-9.])([0-9])([^0-9]|$)"
    s = raw.str.replace_all(r"\s+", " ").str.replace_all(pad, "${1}0${2}${3}")
    s = s.str.replace_all(pad, "${1}0${2}${3}")
    got = _to_dt(s, chrono)
    aware = any(z in chrono for z in ("%z", "%:z", "%#z"))
    return got if aware else _local(got, tz)


def _to_dt(s: pl.Series, fmt: str) -> pl.Series:
    try:
        got = s.str.to_datetime(fmt, time_unit="us", strict=False)
    except pl.exceptions.PolarsError:
        return pl.Series([None] * len(s), dtype=pl.Datetime("us", "UTC"))
    if got.dtype == pl.Datetime("us", "UTC"):
        return got
    if isinstance(got.dtype, pl.Datetime) and got.dtype.time_zone:
        return got.dt.convert_time_zone("UTC")
    return got


def _local(naive: pl.Series, tz: str) -> pl.Series:
    if isinstance(naive.dtype, pl.Datetime) and naive.dtype.time_zone:
        return naive.dt.convert_time_zone("UTC")
    return (naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC"))


def _epoch(raw: pl.Series, per_second: float) -> pl.Series:
    return _epoch_secs(raw.cast(pl.Float64, strict=False) / per_second)


def _epoch_secs(secs: pl.Series) -> pl.Series:
    ok = ((secs >= 0) & (secs < MAX_EPOCH)).fill_null(False)
    secs = secs.zip_with(ok, pl.Series([None] * len(secs), dtype=pl.Float64))
    us = (secs * 1_000_000).round().cast(pl.Int64, strict=False)
    return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


# ---- the batch ----------------------------------------------------------------------
def _clean(name: str) -> pl.Expr:
    e = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(e.is_in(["", "-"])).then(None).otherwise(e).alias(name)


def _ip(name: str) -> pl.Expr:
    """The address without blanks and brackets; null when it is no IPv4 or IPv6 address."""
    e = pl.col(name).str.strip_chars().str.strip_chars("[]")
    return pl.when(e.str.contains(_IPV4) | e.str.contains(_IPV6)).then(e).otherwise(None)


def _int(name: str) -> pl.Expr:
    e = pl.col(name)
    return pl.coalesce(e.cast(pl.Int64, strict=False),
                       e.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False))


@dataclass
class Builder:
    """Turns one layout's string columns into batches; counts records and bad rows."""

    mapping: NetMapping
    source: str
    artefact: Artefact
    ctx: RunContext
    stats: LineStats = field(default_factory=LineStats)

    def warn(self, message: str, lineno: pl.Series, *, bad: bool) -> None:
        """A defect of some rows (bad: they are not stored and count as bad lines)."""
        if bad:
            warn_bad(self.ctx, self.artefact, self.source, message, lineno, self.stats)
        elif len(lineno):
            self.ctx.warn(self.artefact.id, self.source, message,
                          [f"line {x}" for x in lineno.head(20).to_list()],
                          count=len(lineno), path=self.artefact.display)

    def build(self, raw: Mapping[str, pl.Series], lineno: pl.Series) -> TableBatch | None:
        """A batch of the mapping's table from string columns named as our columns (and
        the pseudo columns date, time, url_*); rows without a time or address are bad."""
        m = self.mapping
        n = len(lineno)
        if n == 0:
            return None
        df = pl.DataFrame({k: v.cast(pl.String) for k, v in raw.items()}, height=n)
        df = df.with_columns([_clean(c) for c in df.columns]).with_columns(
            lineno.alias("_line"))
        when = [pl.col("ts")] if "ts" in df.columns else []
        if {"date", "time"} <= set(df.columns):  # per row: ts, else date and time
            when.append(pl.concat_str(["date", "time"], separator=" "))
        ts_raw = (df.select(pl.coalesce(when)).to_series() if when
                  else pl.Series([None] * n, dtype=pl.String))
        ts, naive = parse_times(ts_raw, m.time_format, m.timezone)
        df = df.with_columns(ts.alias("_ts"), naive.alias("_naive"))
        for col in REQUIRED[m.table]:
            if col not in df.columns:
                df = df.with_columns(pl.lit(None, pl.String).alias(col))
        df = df.with_columns(*[_ip(c).alias(c + "_ok") for c in REQUIRED[m.table]])
        who = {"proxy": {"src_ip": "client"},
               "net_conn": {"src_ip": "source", "dst_ip": "destination"}}[m.table]
        bad = pl.Series([False] * n)
        reasons = [("unreadable or missing time; row not stored", df["_ts"].is_null())]
        reasons += [(f"unreadable or missing {who[c]} address; row not stored",
                     df[c + "_ok"].is_null()) for c in REQUIRED[m.table]]
        for message, hit in reasons:
            mine = hit & ~bad
            self.warn(message, df["_line"].filter(mine), bad=True)
            bad = bad | mine
        df = df.filter(~bad)
        if df.height == 0:
            return None
        self.stats.records += df.height
        note = m.naive_note()
        if note and df["_naive"].any():
            self.warn(note, df["_line"].filter(df["_naive"]), bad=False)
        cols = self._proxy(df) if m.table == "proxy" else self._conn(df)
        cols["ts"] = df["_ts"]
        for c in REQUIRED[m.table]:
            cols[c] = df[c + "_ok"]
        cols["line"] = df["_line"]
        arrays = {k: _arrow(v) for k, v in cols.items()}
        arrays["source_file"] = pa.array([self.artefact.display] * df.height, pa.string())
        locator = _arrow("line " + df["_line"].cast(pl.String))
        return TableBatch.of(m.table, arrays, source=self.source, artefact=self.artefact.id,
                             locator=locator)

    def _common(self, df: pl.DataFrame, skip: set[str]) -> dict[str, pl.Series]:
        out: dict[str, pl.Series] = {}
        factor = 1000.0 if self.mapping.duration_unit == "ms" else 1.0
        for c in OUR_COLUMNS[self.mapping.table]:
            if c in skip or c not in df.columns:
                continue
            if c in INTS:
                out[c] = df.select(_int(c)).to_series()
            elif c == "duration":
                out[c] = (df[c].cast(pl.Float64, strict=False) / factor).round(6)
            elif c in BOOLS:
                out[c] = df[c].str.to_lowercase().replace_strict(
                    {"t": True, "f": False, "true": True, "false": False, "1": True,
                     "0": False, "yes": True, "no": False}, default=None,
                    return_dtype=pl.Boolean)
            else:
                out[c] = df[c]
        return out

    def _conn(self, df: pl.DataFrame) -> dict[str, pl.Series]:
        out = self._common(df, {"ts", "src_ip", "dst_ip"})
        if "proto" in out:
            p = out["proto"].str.to_lowercase()
            out["proto"] = p.replace(PROTO_NUMBERS)
        if "device" in out:
            out["host"] = out["host"].fill_null(out["device"]) if "host" in out \
                else out["device"]
        return out

    def _proxy(self, df: pl.DataFrame) -> dict[str, pl.Series]:
        for c in ("url", "url_host", "url_scheme", "url_path", "url_query", "dst_port",
                  "method", "dst_ip"):
            if c not in df.columns:
                df = df.with_columns(pl.lit(None, pl.String).alias(c))
        scheme = pl.col("url_scheme").str.to_lowercase()
        default = scheme.replace_strict(DEFAULT_PORT, default=None, return_dtype=pl.String)
        host, port = pl.col("url_host"), pl.col("dst_port")
        query = pl.col("url_query").str.strip_chars_start("?")
        connect = ((pl.col("method").str.to_uppercase() == "CONNECT")
                   | scheme.is_in(["tcp", "ssl"])).fill_null(False)
        composed = (
            pl.when(host.is_null()).then(None)
            .when(connect).then(pl.concat_str([host, pl.when(port.is_not_null())
                                               .then(pl.lit(":") + port)], ignore_nulls=True))
            .otherwise(pl.concat_str([
                pl.when(scheme.is_not_null()).then(scheme + pl.lit("://")), host,
                pl.when(port.is_not_null() & (port != default).fill_null(True))
                .then(pl.lit(":") + port),
                pl.col("url_path"),
                pl.when(query.is_not_null() & (query != "")).then(pl.lit("?") + query)],
                ignore_nulls=True)))
        df = df.with_columns(pl.coalesce(pl.col("url"), composed).alias("url"))
        parts = df["url"].str.extract_groups(_URL)
        df = df.with_columns(parts.struct.field("host").alias("_uhost"),
                             parts.struct.field("port").alias("_uport"),
                             parts.struct.field("scheme").str.to_lowercase().alias("_usch"))
        h = pl.coalesce(pl.col("url_host"), pl.col("_uhost")).str.strip_chars()
        h = (pl.when(h.str.count_matches(":") == 1).then(h.str.replace(r":\d*$", ""))
             .otherwise(h))
        h = h.str.strip_chars("[]").str.strip_chars_end(".").str.to_lowercase()
        sch = pl.coalesce(pl.col("_usch"), scheme)
        df = df.with_columns(
            pl.when(h == "").then(None).otherwise(h).alias("url_host"),
            pl.coalesce(_int("dst_port"), _int("_uport"),
                        sch.replace_strict(DEFAULT_PORT, default=None,
                                           return_dtype=pl.String).cast(pl.Int64)
                        ).alias("dst_port"))
        out = self._common(df, {"ts", "src_ip", "dst_port"})
        out["dst_port"] = df["dst_port"]
        dst = df.select(_ip("dst_ip")).to_series()
        odd = dst.is_null() & df["dst_ip"].is_not_null()
        if odd.any():
            self.warn("server address that is not an IP address stored as null",
                      df["_line"].filter(odd), bad=False)
        out["dst_ip"] = dst
        return out


def _arrow(s: pl.Series) -> pa.Array:
    arr = s.to_arrow()
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
