"""``tidehunt`` command line: argument parsing, logging, progress, summary, exit codes.

Exit codes: 0 done; 2 usage or configuration error; 3 no usable input; 4 invalid rules;
5 missing optional dependency; 10 findings at or above ``--fail-on``; 70 internal error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidehunt import __version__
from tidehunt.errors import (
    CaseError,
    ConfigError,
    MissingExtraError,
    NoUsableInput,
    RuleError,
    SourceError,
    TidehuntError,
)

E_OK, E_USAGE, E_INPUT, E_RULES, E_EXTRA, E_FINDINGS, E_BUG = 0, 2, 3, 4, 5, 10, 70
LEVELS = ("informational", "low", "medium", "high", "critical")
log = logging.getLogger("tidehunt")


def _time(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time (e.g. 2026-10-06T01:00:00Z)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _size(text: str) -> str:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size such as 512MB or 4GB, got {text!r}")
    size = f"{m[1]}{m[2].upper().replace('IB', 'iB')}"
    from tidehunt.memory import MIN_BUDGET, size_bytes

    if size_bytes(size) < MIN_BUDGET:  # the main process alone needs more
        raise argparse.ArgumentTypeError(
            f"{text} is less than the {MIN_BUDGET >> 20} MiB a run needs at the least")
    return size


def _at_least(minimum: int) -> Any:
    """An argparse type: a whole number no smaller than ``minimum``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{n} is less than {minimum}")
        return n
    return parse


def _hours(text: str) -> float:
    """An argparse type: a number of hours above zero."""
    try:
        h = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not h > 0 or h == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} hours: give a number above 0")
    return h


def _level(text: str) -> str:
    from tidehunt.model.rule import Severity

    try:
        return Severity.parse(text).label
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", "-r", action="append", default=[], metavar="DIR_OR_ARCHIVE",
                   help="Sigma rule folder, .yml file or .zip/.tar.gz archive (repeatable); "
                        "default: the bundled tidehunt pack plus packs fetched with "
                        "'tidehunt rules update'")
    p.add_argument("-m", "--min-level", type=_level, default="informational",
                   help="only report findings at or above this level "
                        "(informational, low, medium, high, critical)")
    p.add_argument("--from", dest="since", type=_time, metavar="TIME",
                   help="only events at or after this time (ISO-8601, UTC if no zone)")
    p.add_argument("--to", dest="until", type=_time, metavar="TIME",
                   help="only events at or before this time")
    p.add_argument("--exclude-rule", action="append", default=[], metavar="ID",
                   help="skip a rule by id or name (repeatable)")
    p.add_argument("--fail-on", type=_level, metavar="LEVEL",
                   help="exit with code 10 when findings at or above LEVEL exist")
    p.add_argument("--max-rule-age", type=_at_least(0), default=90, metavar="DAYS",
                   help="warn when a rule pack's newest rule is older than this (default 90)")
    p.add_argument("--no-cache", action="store_true",
                   help="recompile rules instead of using the compiled-plan cache")
    p.add_argument("--intel", action="append", default=[], metavar="PATH",
                   help="threat-intel file or folder (STIX 2.1, MISP JSON, CSV, plain or "
                        "signature-base lists) loaded into the case and matched (repeatable)")
    p.add_argument("--no-feeds", action="store_true",
                   help="do not load what 'tidehunt intel update' fetched")
    p.add_argument("--no-bundled-intel", action="store_true",
                   help="do not load the bundled, dated APT40 IOC pack")
    p.add_argument("--no-retro", action="store_true",
                   help="expired indicators do not match (default: they match, labelled "
                        "expired: retro-hunt)")
    p.add_argument("--intel-lifetime", action="append", default=[], metavar="TYPE=DAYS",
                   help="indicator lifetime per type (defaults ip=60, url=180, other=365)")
    p.add_argument("--warninglist", action="append", default=[], metavar="FILE",
                   help="extra warninglist whose values never match: YAML networks/domains/"
                        "hashes, a MISP warninglist JSON, or a folder of them "
                        "(misp-warninglists/lists)")
    p.add_argument("--inventory", action="append", default=[], metavar="FILE",
                   help="asset inventory (CSV: host,product,vendor,version,internet_facing; "
                        "or a CycloneDX SBOM) checked against the CVEs APT40 exploits")
    p.add_argument("--kev", metavar="FILE",
                   help="CISA KEV catalogue JSON, also checked (kept in the case)")
    p.add_argument("--geoip", metavar="FILE.mmdb",
                   help="offline GeoIP database (MaxMind DB format) for impossible travel")
    p.add_argument("--risky-networks", metavar="FILE",
                   help="YAML of address lists by category (tor, vps, soho) for sign-ins")
    p.add_argument("--incident-gap", type=_hours, default=72.0, metavar="HOURS",
                   help="findings naming the same host, user, address, file or mail are "
                        "chained into one incident when at most this far apart (default 72)")
    p.add_argument("--org", metavar="FILE",
                   help="organisation profile (YAML: own_domains, partner_domains, trusted "
                        "senders; business calendar and zones, see docs/network.md); kept "
                        "in the case for later runs")
    p.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                   help="where the Sigma plan runs: duckdb (this machine, default) or spark "
                        "(mapInArrow over the case's Parquet; see docs/scale.md)")
    p.add_argument("--spark-master", default="local[*]", metavar="URL",
                   help="Spark master for --engine spark (default local[*]; e.g. "
                        "spark://host:7077, yarn, k8s://https://...)")
    p.add_argument("--spark-conf", action="append", default=[], type=_key_value,
                   metavar="KEY=VALUE", help="a Spark setting, e.g. spark.executor.memory=8g "
                                             "(repeatable)")
    _memory_arg(p)


def _memory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", type=_size, default="2GB", metavar="SIZE",
                   help="memory budget of the whole run, main process and workers together "
                        "(default 2GB; e.g. 1GB, 8GB). Ingest and Sigma matching start as "
                        "many of --workers as fit, each with (budget - 384 MiB) / workers "
                        "for its row buffers (fewer workers and smaller buffers when the "
                        "budget is small; at 2GB with 2 workers they have their full "
                        "default sizes; from 4GB on, hunt matches the event logs while "
                        "ingest still runs, and two threads match chunks side by side); "
                        "each DuckDB connection (analytics, correlations, "
                        "posture) gets 70%% of it, at most 90%% of what the main process "
                        "leaves, and spills into the case folder beyond. See docs/scale.md")


def _mapping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--net-mapping", action="append", default=[], metavar="FILE",
                   help="column mapping (YAML) for proxy, firewall and flow exports the "
                        "built-in presets do not read: table, format, columns, time_format, "
                        "timezone, match (repeatable; see docs/usage.md)")
    p.add_argument("--auth-mapping", metavar="FILE",
                   help="column mapping (YAML: our column: their header) for sign-in CSVs "
                        "whose header the built-in names miss")


def _mail_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password", action="append", default=[], metavar="PW",
                   dest="attachment_passwords",
                   help="password to try on encrypted attachments and archives, after those "
                        "the mail itself gives (repeatable)")
    p.add_argument("--max-unpack-mb", type=_at_least(1), default=512, metavar="N",
                   help="unpack at most N MiB per attachment, archives inside included "
                        "(default 512; members expanding over 200x are not unpacked)")
    p.add_argument("--no-extract", action="store_true",
                   help="do not keep copies of attachments in CASE/extracted/")


#: Standard exports (``tidehunt export``, ``report --format``) and their file names.
EXPORT_FILES = {"timesketch": "timesketch.csv", "ecs": "findings.ecs.jsonl",
                "navigator": "navigator-layer.json", "stix": "stix-bundle.json",
                "misp": "misp-event.json"}
EXPORTS = tuple(EXPORT_FILES)


def _version() -> str:
    """``tidehunt X`` and whether the native EVTX flatten is built (found without
    importing it, so that ``--help`` stays cheap) and switched on."""
    import importlib.util
    import os

    built = importlib.util.find_spec("tidehunt._evtxflat") is not None
    off = os.environ.get("TIDEHUNT_NATIVE_FLATTEN", "1") == "0"
    native = "not built" if not built else "off, TIDEHUNT_NATIVE_FLATTEN=0" if off else "on"
    return f"tidehunt {__version__} (native EVTX flatten: {native})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used for the docs)."""
    ap = argparse.ArgumentParser(
        prog="tidehunt",
        description="Hunt APT40 (Leviathan, G0065) tradecraft in a case's evidence.")
    ap.add_argument("--version", action="version", version=_version())
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="more log output (-v info, -vv debug)")
    ap.add_argument("--no-color", action="store_true", help="plain text output")
    ap.add_argument("--debug", action="store_true", help="tracebacks for internal errors")
    ap.add_argument("--log-json", action="store_true", help="log as JSON lines on stderr")
    ap.add_argument("--workers", type=_at_least(1), metavar="N",
                    help="worker processes for ingest, matching and rule compilation "
                         "(default: cores, at most 2; fewer if --max-memory cannot hold "
                         "them)")
    ap.add_argument("--strict", action="store_true",
                    help="stop at the first unreadable evidence file instead of going on")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("hunt", help="ingest evidence, run every detector, write the report")
    p.add_argument("evidence", nargs="*", metavar="EVIDENCE",
                   help="files or folders (type is found from content)")
    p.add_argument("-o", "--output", "--case", dest="case", required=True, metavar="CASE",
                   help="case directory (created; re-running adds only new evidence)")
    _webroot_args(p, repeat=True)
    _mail_args(p)
    _mapping_args(p)
    _detect_args(p)

    p = sub.add_parser("scan-site", help="watering-hole check of a saved copy of a site you "
                       "own (folder or WARC): script origins, inline hashes, ScanBox traits")
    p.add_argument("site", metavar="DIR_OR_WARC", help="saved pages and scripts, or a WARC")
    p.add_argument("-o", "--output", "--case", dest="case", required=True, metavar="CASE")
    p.add_argument("--site-baseline", metavar="DIR_WARC_OR_CASE",
                   help="a known-good copy (or a case with its scan): new origins and "
                        "changed scripts are flagged")
    p.add_argument("--site-origin", metavar="URL",
                   help="the site's own origin, e.g. https://www.example.org (scripts from "
                        "it are local); found from a WARC's URLs when not given")
    _detect_args(p)

    p = sub.add_parser("scan-webroot", help="scan a web root (hashes, type, heuristics, "
                       "YARA-X) into a case and run the detectors")
    p.add_argument("webroot", metavar="DIR", help="the site's folder (read-only)")
    p.add_argument("-o", "--output", "--case", dest="case", required=True, metavar="CASE")
    _webroot_args(p, repeat=False)
    _detect_args(p)

    p = sub.add_parser("ingest", help="only build or extend the case store (resumable)")
    p.add_argument("evidence", nargs="+", metavar="EVIDENCE")
    p.add_argument("-o", "--output", "--case", dest="case", required=True, metavar="CASE")
    _mail_args(p)
    _mapping_args(p)
    _memory_arg(p)

    p = sub.add_parser("merge", help="join cases ingested on several machines into one "
                       "(parts hard-linked or copied; evidence already there is skipped)")
    p.add_argument("sources", nargs="+", metavar="CASE")
    p.add_argument("-o", "--output", dest="case", required=True, metavar="CASE",
                   help="the merged case (created if missing; may already hold evidence)")
    p = sub.add_parser("detect", help="re-run detection on an existing case")
    p.add_argument("case", metavar="CASE")
    _detect_args(p)

    p = sub.add_parser("report", help="render the last run of a case again")
    p.add_argument("case", metavar="CASE")
    p.add_argument("--format", "-f", default="terminal",
                   choices=("terminal", "jsonl", "csv", "html", *EXPORTS),
                   help="output format (exports: " + ", ".join(EXPORTS) + ")")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")

    p = sub.add_parser("export", help="write every standard export of a case (Timesketch "
                       "CSV, ECS JSON lines, Navigator layer, STIX 2.1, MISP) without "
                       "re-running detection")
    p.add_argument("case", metavar="CASE")
    p.add_argument("--to", metavar="DIR", help="folder for the files (default CASE/exports)")
    p.add_argument("--format", "-f", action="append", choices=EXPORTS, default=[],
                   help="only these exports (repeatable; default all)")

    ip = sub.add_parser("intel", help="the case's threat intel: sources, ages, what is stale")
    isub = ip.add_subparsers(dest="intel_command", required=True, metavar="ACTION")
    for name, what in (("list", "indicators per source: counts, types, age, expired"),
                       ("stale", "expired or decayed indicators (score below --below)")):
        p = isub.add_parser(name, help=what)
        p.add_argument("case", metavar="CASE", nargs="?",
                       help="a case (default: the bundled APT40 pack alone)")
        p.add_argument("--intel-lifetime", action="append", default=[], metavar="TYPE=DAYS")
        p.add_argument("--below", type=float, default=20.0, metavar="SCORE",
                       help="stale: score under this counts as decayed (default 20)")
        p.add_argument("--limit", type=_at_least(1), default=50)
    p = isub.add_parser("update", help="pull the configured feeds (TAXII 2.1 collections, "
                        "URLs) into the intel store; every hunt loads them")
    p.add_argument("--config", metavar="FILE",
                   help="feed configuration (YAML; default $TIDEHUNT_FEEDS or the user's "
                        "config folder's tidehunt/feeds.yml)")

    p = sub.add_parser("search", help="hunt over the case tables (DuckDB): SQL, or keywords "
                       "across every text column of every table")
    p.add_argument("case", metavar="CASE")
    p.add_argument("query", metavar="SQL", nargs="?",
                   help="e.g. \"SELECT Image, count(*) FROM windows GROUP BY ALL ORDER BY 2 "
                        "DESC\"")
    p.add_argument("-k", "--keyword", action="append", default=[], metavar="WORD",
                   help="find rows holding WORD in any text column (repeatable; any word, "
                        "or all with --all); e.g. -k rclone -k dropboxapi")
    p.add_argument("--all", dest="match_all", action="store_true",
                   help="with -k: every word in the same row")
    p.add_argument("--table", action="append", default=[], metavar="NAME",
                   help="with -k: only this table (repeatable)")
    p.add_argument("--limit", type=_at_least(1), default=50, help="rows shown (default 50)")
    p.add_argument("--format", "-f", default="table", choices=("table", "csv", "jsonl"),
                   dest="out_format", help="output (default a table on the terminal)")
    p.add_argument("--csv", action="store_true", help="same as --format csv")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")

    rp = sub.add_parser("rules", help="manage and check rule packs")
    rsub = rp.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    p = rsub.add_parser("update", help="fetch a rule pack, check it loads, keep it versioned")
    p.add_argument("--from", dest="source", metavar="URL_OR_PATH",
                   help="archive URL, archive file or folder (default: SigmaHQ's latest "
                        "release package)")
    p.add_argument("--name", default="sigmahq", help="pack name (default sigmahq)")
    rsub.add_parser("list", help="list the bundled and fetched rule packs")
    p = rsub.add_parser("export", help="convert rule packs to SIEM queries (pySigma backends)")
    p.add_argument("--target", "-t", required=True, choices=("splunk", "elastic", "kusto"),
                   help="splunk: SPL; elastic: Lucene over ECS; kusto: Defender XDR")
    p.add_argument("--pack", default="tidehunt", choices=("tidehunt", "all"),
                   help="the bundled tidehunt pack (default) or every pack a hunt would use")
    p.add_argument("--format", "-f", default="text", choices=("text", "json"))
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p = rsub.add_parser("lint", help="load rules and list every rule that cannot be used")
    p.add_argument("paths", nargs="*", metavar="DIR_OR_ARCHIVE",
                   help="default: the packs a hunt would use")

    p = sub.add_parser("posture", help="APT40 technique coverage of a case: what fired, "
                       "what could have, and the telemetry it lacks")
    p.add_argument("case", metavar="CASE")
    p.add_argument("--format", "-f", default="text",
                   choices=("text", "json", "navigator", "html"),
                   help="text summary, JSON document, an ATT&CK Navigator 4.5 layer, or a "
                        "self-contained HTML page")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--rules", "-r", action="append", default=[], metavar="DIR_OR_ARCHIVE",
                   help="rule packs to assess with (default: those a hunt would use)")

    p = sub.add_parser("demo", help="write the synthetic APT40 demo evidence and hunt it")
    p.add_argument("-o", "--output", dest="out", default="demo-case", metavar="DIR",
                   help="folder for the demo evidence and case (default demo-case)")
    return ap


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import orjson

        return orjson.dumps({"time": self.formatTime(record), "level": record.levelname,
                             "logger": record.name, "message": record.getMessage()}).decode()


def _webroot_args(p: argparse.ArgumentParser, *, repeat: bool) -> None:
    if repeat:
        p.add_argument("--webroot", action="append", default=[], metavar="DIR",
                       help="also scan this web root into the file table (repeatable)")
    p.add_argument("--yara", action="append", default=[], metavar="PATH",
                   help="extra YARA rule file or folder for the web-root scan, next to the "
                        "bundled web-shell pack (repeatable)")
    p.add_argument("--baseline", metavar="DIR_HASHLIST_OR_CASE",
                   help="known-good copy of the web root: a folder, a sha256sum-style hash "
                        "list, or a case holding an earlier scan")
    p.add_argument("--web-host", metavar="NAME",
                   help="host name of the web server (joins the scan to its logs and events)")
    p.add_argument("--max-file-mb", type=_at_least(1), default=32, metavar="N",
                   help="content of larger files is scanned up to N MiB (default 32)")


def _setup_logging(args: argparse.Namespace, console: Any) -> None:
    level = logging.WARNING - 10 * min(args.verbose, 2)
    root = logging.getLogger()
    root.handlers.clear()
    if args.log_json:
        h: logging.Handler = logging.StreamHandler(sys.stderr)
        h.setFormatter(_JsonFormatter())
    else:
        from rich.logging import RichHandler

        h = RichHandler(console=console, show_time=False, show_path=False, markup=False,
                        rich_tracebacks=False)
    root.addHandler(h)
    root.setLevel(level)
    for noisy in ("sigma", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def run() -> None:
    """The ``tidehunt`` command: :func:`main`, then a quick exit.

    When ``main`` returns, every output has been written and closed. The interpreter's
    own teardown after it (freeing the rule plan's half a million objects, closing DuckDB
    and Polars) took 0.15-0.23 s of every run, a tenth of a small hunt; the exit handlers
    (``atexit``) and logging's are still run, the streams flushed, and the process then
    ends at once with ``main``'s exit code. ``main`` itself returns normally (tests and
    library callers use it).
    """
    import atexit

    from tidehunt.memory import tune_gc

    tune_gc()
    code = main()
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken pipe: leave it to the interpreter
        sys.exit(code)
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from rich.console import Console

    ap = build_parser()
    args = ap.parse_args(argv)
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and until is not None and since > until:  # would match nothing
        ap.error(f"--from ({since.isoformat()}) is after --to ({until.isoformat()})")
    err = Console(stderr=True, no_color=args.no_color, highlight=False)
    _setup_logging(args, err)
    from tidehunt.memory import configure_arrow_memory

    configure_arrow_memory()
    try:
        return _dispatch(args, err)
    except KeyboardInterrupt:
        err.print("interrupted; re-run the same command to resume")
        return 130
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return E_USAGE
    except (NoUsableInput, CaseError, SourceError) as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return E_INPUT
    except RuleError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return E_RULES
    except MissingExtraError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return E_EXTRA
    except TidehuntError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return E_USAGE
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        err.print(f"internal error: {exc!r} (run with --debug for the traceback)",
                  markup=False, soft_wrap=True)
        if args.debug:
            traceback.print_exc()
        return E_BUG


def _dispatch(args: argparse.Namespace, err: Any) -> int:
    cmd = args.command
    if cmd in ("hunt", "detect", "ingest", "demo", "scan-webroot", "scan-site"):
        return _run(args, err)
    if cmd == "merge":
        return _merge(args)
    if cmd == "report":
        return _report(args)
    if cmd == "export":
        return _case_export(args)
    if cmd == "intel":
        return _intel(args)
    if cmd == "search":
        return _search(args)
    if cmd == "rules":
        return _rules(args, err)
    if cmd == "posture":
        return _posture(args)
    raise ConfigError(f"unknown command {cmd}")  # argparse prevents this


def _opts(args: argparse.Namespace) -> Any:
    from tidehunt.engine import HuntOptions
    from tidehunt.model.rule import Severity

    return HuntOptions(
        rules=list(args.rules), min_level=Severity.parse(args.min_level),
        exclude=list(args.exclude_rule), since=args.since, until=args.until,
        workers=args.workers, max_rule_age_days=args.max_rule_age, strict=args.strict,
        use_cache=not args.no_cache, org=args.org, source_options=_source_options(args),
        incident_gap_hours=args.incident_gap, intel=list(args.intel),
        bundled_intel=not args.no_bundled_intel, retro=not args.no_retro,
        intel_lifetimes=list(args.intel_lifetime), warninglists=list(args.warninglist),
        inventory=list(args.inventory), kev=args.kev, feeds=not args.no_feeds,
        geoip=args.geoip, risky_networks=args.risky_networks,
        engine=getattr(args, "engine", "duckdb"),
        spark_master=getattr(args, "spark_master", "local[*]"),
        spark_conf=dict(getattr(args, "spark_conf", []) or []),
        max_memory=getattr(args, "max_memory", "2GB"))


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the readers get (mail: attachment passwords, unpack limits, copies, YARA;
    column mappings of network exports and sign-in CSVs, checked here: ConfigError)."""
    out: dict[str, Any] = {}
    if getattr(args, "net_mapping", None):
        from tidehunt.sources._netmap import load_net_mappings

        out["net_mapping"] = [m for f in args.net_mapping for m in load_net_mappings(f)]
    if getattr(args, "auth_mapping", None):
        from tidehunt.sources.auth_csv import load_auth_mapping

        out["auth_mapping"] = load_auth_mapping(args.auth_mapping)
    if getattr(args, "attachment_passwords", None):
        out["attachment_passwords"] = list(args.attachment_passwords)
    if getattr(args, "max_unpack_mb", None):
        out["unpack_limits"] = {"max_total": args.max_unpack_mb << 20,
                                "max_member": min(args.max_unpack_mb, 128) << 20}
    if getattr(args, "no_extract", False):
        out["extract_attachments"] = False
    if getattr(args, "yara", None):
        out["yara"] = [str(Path(y).resolve()) for y in args.yara]
    return out


def _run(args: argparse.Namespace, err: Any) -> int:
    from tidehunt import engine
    from tidehunt.case.store import CaseStore
    from tidehunt.cli.progress import Progress
    from tidehunt.context import RunContext

    show = not args.quiet and err.is_terminal
    with Progress(show, err) as prog:
        ctx = RunContext(on_progress=prog.update)
        if args.command == "ingest":
            store, res = engine.run_ingest(args.evidence, args.case, ctx, args.workers,
                                           args.strict, _source_options(args),
                                           args.max_memory)
            if not args.quiet:
                print(f"{res.ingested} evidence files ingested ({res.records:,} events), "
                      f"{res.skipped} already in case, {res.failed} failed, "
                      f"{res.unsupported} not recognised, {res.warnings} with warnings; "
                      f"case: {store.root}")
            return E_OK
        if args.command == "demo":
            return _demo(args, ctx, err)
        opts = _opts(args)
        if args.command == "scan-site":
            opts.sites = [args.site]
            opts.site_baseline = args.site_baseline
            opts.site_origin = args.site_origin
            report = engine.hunt([], args.case, ctx, opts)
        elif args.command in ("hunt", "scan-webroot"):
            roots = [args.webroot] if args.command == "scan-webroot" else args.webroot
            if args.command == "hunt" and not args.evidence and not roots:
                raise ConfigError("give evidence files or folders, or --webroot DIR")
            opts.webroots = list(roots)
            opts.yara = list(args.yara)
            opts.baseline = args.baseline
            opts.web_host = args.web_host
            opts.max_file_bytes = args.max_file_mb << 20
            evidence = args.evidence if args.command == "hunt" else []
            report = engine.hunt(evidence, args.case, ctx, opts)
        else:
            report = engine.detect(CaseStore(args.case), ctx, opts)
    return _finish(args, report, opts.min_level, args.fail_on)


def _finish(args: argparse.Namespace, report: Any, min_level: Any, fail_on: str | None) -> int:
    from tidehunt.model.rule import Severity
    from tidehunt.render import terminal

    case = Path(report.meta.case)
    if not args.quiet:
        # the summary reads three columns: not the events' fields of every finding
        findings = report.load_findings(case, terminal.COLUMNS)
        terminal.render(report, findings, sys.stdout, color=not args.no_color)
        print(f"\nCase: {case}\n  findings: {case / 'findings.jsonl'}\n"
              f"  timeline: {case / 'timeline.csv'}\n  report:   {case / 'report.html'} "
              f"(and report.json)")
        if report.rule_errors:
            print(f"  {len(report.rule_errors)} rules could not be used; see "
                  "'tidehunt rules lint' or report.json (rule_errors)")
    sig = report.stats.get("sigma", {})
    if sig.get("rules_active", 0) == 0 and report.rule_errors:
        raise RuleError("no usable rule was loaded; see 'tidehunt rules lint'")
    if fail_on:
        bar = Severity.parse(fail_on)
        if any(Severity.parse(lv) >= bar for lv in report.stats.get("findings_by_level", {})):
            return E_FINDINGS
    del min_level
    return E_OK


def _posture(args: argparse.Namespace) -> int:
    import orjson

    from tidehunt import engine
    from tidehunt.case.store import CaseStore
    from tidehunt.context import RunContext
    from tidehunt.posture import LABELS, STATUSES, defence_layers, navigator_layer

    store = CaseStore(args.case)
    plan = engine.prepare_plan(engine.HuntOptions(rules=list(args.rules), workers=args.workers),
                           RunContext())
    pos = engine.posture(store, plan)
    if args.format == "json":
        text = orjson.dumps(pos.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    elif args.format == "html":
        from tidehunt import posture_html

        text = posture_html.render(pos, f"tidehunt APT40 posture: {store.root.name}")
    elif args.format == "navigator":
        layer = navigator_layer(pos, f"tidehunt APT40 posture: {store.root.name}")
        text = orjson.dumps(layer, option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        counts = pos.counts()
        lines = [f"APT40 techniques in {store.root}: {len(pos.techniques)}"]
        lines += [f"  {counts[s]:3d}  {LABELS[s]}" for s in STATUSES]
        for s in STATUSES:
            ts = [t for t in pos.techniques if t.status == s]
            if ts:
                lines.append(f"\n{LABELS[s]}:")
                for t in ts:
                    extra = f" ({t.findings} findings)" if t.findings else ""
                    if s == "not_covered":
                        extra = ": " + t.why_not()
                    lines.append(f"  {t.id:10s} {t.name}{extra}")
        if pos.gaps:
            lines.append("\nTelemetry gaps:")
            lines += [f"  - {g.message()}" for g in pos.gaps]
        lines.append("\nDefence layers:")
        for layer in defence_layers(pos):
            shows, missing = layer["shows"], layer["missing"]
            lines.append(f"\n  {layer['name']}: {len(shows['fired'])} fired, "
                         f"{len(shows['covered'])} visible, {len(missing['no_telemetry'])} "
                         f"blind for lack of telemetry, {len(missing['not_covered'])} not "
                         "covered")
            if shows["fired"]:
                lines.append("    this case shows: " + ", ".join(shows["fired"]))
            if missing["no_telemetry"] or missing["not_covered"]:
                lines.append("    cannot see: " + ", ".join(
                    missing["no_telemetry"] + missing["not_covered"]))
            lines.append("    mitigations: " + ", ".join(
                f"{k} {v}" for k, v in layer["mitigations"].items()))
            lines += [f"    - {a}" for a in layer["advice"]]
        text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return E_OK


def _merge(args: argparse.Namespace) -> int:
    from tidehunt.case.merge import merge

    res = merge(list(args.sources), args.case)
    if not args.quiet:
        print(f"{res.cases} case(s) merged into {args.case}: {res.artefacts} evidence files, "
              f"{res.parts} parts ({res.rows:,} rows; {res.linked} linked, {res.copied} "
              f"copied), {res.skipped_artefacts} evidence files already there")
    return 0


def _demo(args: argparse.Namespace, ctx: Any, err: Any) -> int:
    from tidehunt import engine
    from tidehunt.demo.generate import WEB_HOST, write_demo_evidence, write_demo_webroot

    out = Path(args.out)
    evidence = out / "evidence"
    files = write_demo_evidence(evidence, include_web_logs=True)
    from tidehunt.demo.mail import write_demo_mail, write_org_profile
    from tidehunt.demo.site import write_demo_site

    webroot = out / "webroot"
    site = write_demo_webroot(webroot)
    before, during = write_demo_site(out / "partner-site")
    mails = write_demo_mail(evidence / "mail")
    org = write_org_profile(out / "org.yaml")
    from tidehunt.demo.intel import write_demo_intel, write_demo_inventory, write_demo_wiki_log

    intel = write_demo_intel(out / "intel")
    inventory = write_demo_inventory(out / "assets")
    write_demo_wiki_log(evidence)
    from tidehunt.demo.network import write_demo_network

    zeek = write_demo_network(evidence)
    if not args.quiet:
        err.print(f"demo evidence: {len(files)} log files and {len(mails)} mails in "
                  f"{evidence}, web root of {len(site)} files in {webroot}, partner site "
                  f"copy in {during}, organisation profile {org}, {len(intel)} intel files "
                  f"in {out / 'intel'}, {len(zeek)} Zeek logs in {evidence / 'zeek'}",
                  markup=False)
    opts = engine.HuntOptions(workers=args.workers, webroots=[str(webroot)],
                              web_host=WEB_HOST, sites=[str(during)],
                              site_baseline=str(before), org=str(org),
                              intel=[str(out / "intel")], inventory=[str(inventory)])
    report = engine.hunt([str(evidence)], out / "case", ctx, opts)
    code = _finish(args, report, opts.min_level, None)
    if not args.quiet:
        _print_story(report, args.no_color)
        # the APT40 coverage the hunt assessed, and the Navigator layer it wrote
        from tidehunt.engine import POSTURE_LAYER
        from tidehunt.posture import LABELS, STATUSES

        pos = report.stats.get("posture", {})
        counts = pos.get("counts", {})
        print("\nAPT40 techniques (tidehunt posture): " + "; ".join(
            f"{counts.get(s, 0)} {LABELS[s]}" for s in STATUSES))
        for g in pos.get("gaps", [])[:3]:
            print(f"  gap: {g}")
        print(f"  ATT&CK Navigator layer: {out / 'case' / POSTURE_LAYER}")
    return code


def _print_story(report: Any, no_color: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tidehunt.demo.coverage import coverage

    stages = coverage(report.load_findings(report.meta.case))
    t = Table(title="The demo intrusion, stage by stage", show_lines=True)
    t.add_column("#")
    t.add_column("When (UTC)")
    t.add_column("Host")
    t.add_column("What the actor did", max_width=52)
    t.add_column("Detected by", max_width=40)
    for s in stages:
        hits = s["detected_by"]
        found = "\n".join(f"{escape(k)} ({v})" for k, v in sorted(hits.items())[:4])
        t.add_row(s["stage"], s["time"][:16].replace("T", " "), escape(s["host"]),
                  escape(s["description"]), found or "[red]not detected[/]")
    con = Console(no_color=no_color, width=160)
    con.print(t)
    n = sum(1 for s in stages if s["detected_by"])
    con.print(f"{n} of {len(stages)} stages detected.")


def _load_report(case_dir: str) -> tuple[Path, Any, Any]:
    """A case's last report and its findings (CaseError if detection never ran)."""
    from tidehunt.model.report import RunReport

    case = Path(case_dir)
    path = case / "report.json"
    if not path.exists():
        raise CaseError(f"{case}: no report.json; run 'tidehunt detect {case}' first")
    report = RunReport.from_json(path.read_bytes())
    return case, report, report.load_findings(case)


def _report(args: argparse.Namespace) -> int:
    from tidehunt import registry

    _, report, findings = _load_report(args.case)
    if args.format == "terminal":
        from tidehunt.render import terminal

        terminal.render(report, findings, sys.stdout, color=not args.no_color)
        return E_OK
    mod = registry.load("renderers", {"jsonl": "jsonl", "csv": "csv_timeline"}.get(
        args.format, args.format))
    if args.out:
        with open(args.out, "wb") as fh:
            mod.render(report, findings, fh)
    else:
        mod.render(report, findings, sys.stdout.buffer)
    return E_OK


def _case_export(args: argparse.Namespace) -> int:
    from tidehunt import registry

    case, report, findings = _load_report(args.case)
    dest = Path(args.to) if args.to else case / "exports"
    dest.mkdir(parents=True, exist_ok=True)
    for name in args.format or EXPORTS:
        target = dest / EXPORT_FILES[name]
        tmp = target.with_name(".tmp-" + target.name)
        with open(tmp, "wb") as fh:
            registry.load("renderers", name).render(report, findings, fh)
        tmp.replace(target)
        if not args.quiet:
            print(f"{name:10} {target}")
    return E_OK


def _intel(args: argparse.Namespace) -> int:
    from collections import Counter, defaultdict

    if args.intel_command == "update":
        from tidehunt.intel import feeds

        results = feeds.update(feeds.load_config(args.config))
        for r in results:
            if r.error:
                print(f"{r.name}: FAILED: {r.error}")
            else:
                print(f"{r.name}: {r.objects} new object(s)"
                      + (f" since {r.since}" if r.since else "")
                      + (f" -> {r.file}" if r.file else "")
                      + (f" ({'; '.join(r.notes)})" if r.notes else ""))
        return E_OK if all(not r.error for r in results) else E_INPUT

    from tidehunt.intel.ageing import AgeingPolicy
    from tidehunt.intel.live import IntelOptions, live_table
    from tidehunt.intel.readers import read
    from tidehunt.intel.store import _describe, bundled_pack

    if args.case:
        from tidehunt.case.store import CaseStore

        store = CaseStore(args.case)
        if not store.rows("indicator"):
            raise CaseError(f"{args.case}: no indicators; hunt or detect with --intel first")
        rows = store.sql("SELECT type, value, source, first_seen, last_seen, valid_until, "
                         "confidence, context, source_file, _artefact, _locator "
                         "FROM indicator").to_pylist()
    else:
        res = read(bundled_pack(), "apt40-pack")
        _describe(res)
        rows = [dict(i.to_row(), _artefact="", _locator="") for i in res.indicators]
    opts = IntelOptions(policy=AgeingPolicy.parse(args.intel_lifetime), warninglists=[])
    live, st = live_table(rows, opts)
    items = live.to_pylist()
    if args.intel_command == "list":
        per: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in items:
            per[r["source"]].append(r)
        print(f"{st.indicators} indicators, {st.warninglisted} on a warninglist, "
              + (f"{st.too_broad} networks too broad, " if st.too_broad else "")
              + f"{st.expired} expired (they still match in retro-hunt mode)")
        for src in sorted(per):
            rs = per[src]
            ages = [r["age_days"] for r in rs if r["age_days"] is not None]
            types = Counter(r["type"] for r in rs)
            print(f"  {src}: {len(rs)} ({', '.join(f'{n} {t}' for t, n in types.most_common())})"
                  + (f"; age {min(ages):.0f}-{max(ages):.0f} days" if ages else "")
                  + f"; {sum(r['expired'] for r in rs)} expired")
        return E_OK
    stale = sorted((r for r in items if r["expired"] or r["score"] < args.below),
                   key=lambda r: (-(r["age_days"] or 0), r["type"], r["value"]))
    print(f"{len(stale)} of {len(items)} indicators are stale (expired, or score under "
          f"{args.below}):")
    for r in stale[:args.limit]:
        why = (f"expired ({r['age_days']:.0f} days, lifetime {r['lifetime_days']})"
               if r["expired"] else f"score {r['score']}")
        print(f"  {r['type']:9} {r['value'][:70]:70} {r['source']}: {why}")
    if len(stale) > args.limit:
        print(f"  ... {len(stale) - args.limit} more (--limit)")
    return E_OK


def _search(args: argparse.Namespace) -> int:
    import csv

    from tidehunt import search
    from tidehunt.case.store import CaseStore

    store = CaseStore(args.case)
    if bool(args.query) == bool(args.keyword):
        raise ConfigError("give either an SQL query or -k WORD")
    if args.keyword:
        table = search.keywords(store, args.keyword, tables=args.table,
                                match_all=args.match_all, limit=args.limit)
    else:
        table = search.sql(store, args.query, args.limit)
    fmt = "csv" if args.csv else args.out_format
    import contextlib

    with (open(args.out, "w", encoding="utf-8", newline="") if args.out
          else contextlib.nullcontext(sys.stdout)) as out:
        if fmt == "csv":
            w = csv.writer(out)
            w.writerow(table.column_names)
            for row in table.to_pylist():
                w.writerow(["" if v is None else v for v in row.values()])
        elif fmt == "jsonl":
            import orjson

            for row in table.to_pylist():
                out.write(orjson.dumps(row, default=str).decode() + "\n")
        else:
            from rich.console import Console
            from rich.markup import escape
            from rich.table import Table

            t = Table(caption=f"{table.num_rows} row(s)")
            for c in table.column_names:
                t.add_column(escape(c))
            for row in table.to_pylist():
                t.add_row(*(escape("" if v is None else str(v))[:300] for v in row.values()))
            Console(file=out, no_color=args.no_color).print(t)
    return E_OK


def _rules(args: argparse.Namespace, err: Any) -> int:
    from tidehunt import rulepacks

    if args.rules_command == "update":
        rec = rulepacks.update(args.source, args.name)
        state = "unchanged (already the newest version)" if rec.get("unchanged") else "added"
        print(f"{rec['name']} {rec['version']}: {state}; {rec['rules']} rules, "
              f"{rec['errors']} failed, {rec['not_applicable']} not applicable; newest rule "
              f"dated {rec['content_date'] or 'unknown'}; stored at {rec['path']}")
        return E_OK
    if args.rules_command == "list":
        print(f"bundled: {rulepacks.bundled_pack()}")
        for name, versions in sorted(rulepacks.load_index().get("packs", {}).items()):
            for v in versions:
                age = rulepacks.age_days(v.get("content_date", ""))
                print(f"{name} {v['version']}: {v['rules']} rules, fetched {v['fetched']} "
                      f"from {v['source']}, newest rule {v.get('content_date') or '?'}"
                      + (f" ({age} days old)" if age is not None else ""))
        return E_OK
    if args.rules_command == "export":
        return _export(args, err)
    from tidehunt.detect.sigma.correlate import resolve_refs
    from tidehunt.detect.sigma.loader import load_plan

    paths = args.paths or [p for p, _ in rulepacks.default_rule_paths()]
    plan = load_plan(paths, workers=args.workers)
    _, corr_errors = resolve_refs(plan)
    errors = plan.errors + corr_errors
    for e in errors:
        name = e.get("title") or e.get("id")  # none when the YAML itself is refused
        print(f"FAILED {e['path']}: {f'{name}: ' if name else ''}{e['reason']}")
    for e in plan.skipped:
        print(f"N/A    {e['path']}: {e.get('title')}: {e['reason']}")
    print(f"{len(plan.rules)} rules usable, {len(errors)} failed, {len(plan.skipped)} not "
          f"applicable to any tidehunt table")
    return E_RULES if errors else E_OK


def _export(args: argparse.Namespace, err: Any) -> int:
    import orjson

    from tidehunt import export, rulepacks

    paths = ([str(rulepacks.bundled_pack())] if args.pack == "tidehunt"
             else [p for p, _ in rulepacks.default_rule_paths()])
    res = export.export(paths, args.target)
    text = (orjson.dumps(res.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
            if args.format == "json" else export.render_text(res))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if not args.quiet:
        err.print(f"{len(res.converted)} rules converted to {res.language}; "
                  f"{len(res.failed)} could not be expressed"
                  + (" (listed in the output)" if res.failed else ""), markup=False)
    return E_OK if res.converted or not res.failed else E_RULES


if __name__ == "__main__":
    sys.exit(main())
