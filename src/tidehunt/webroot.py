"""Web-root scan: a site tree into the ``file`` table, each file read once.

One read per file gives its hashes, its type from content, the heuristics (entropy,
compression ratio, longest token, dangerous functions of its language) and its YARA-X
matches (bundled tidehunt pack plus any extra rule folders). The sibling times, the Tomcat
work-folder check and the baseline diff are then computed over the whole tree. Files are
opened read-only, symbolic links are never followed, and limits on file count, file size
and total bytes keep a hostile tree from exhausting the machine.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import re
import stat
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from tidehunt.case.store import CASE_INSIDE, CaseStore, utcnow, write_part
from tidehunt.context import RunContext, not_regular
from tidehunt.errors import NoUsableInput, TidehuntError
from tidehunt.model.batch import TableBatch

log = logging.getLogger("tidehunt.webroot")

SOURCE = "webroot"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one scan reads."""

    max_files: int = 200_000
    max_file_bytes: int = 32 << 20
    max_total_bytes: int = 16 << 30


@dataclass
class WebrootResult:
    """What a scan did."""

    root: str
    files: int = 0
    scanned_bytes: int = 0
    skipped_links: int = 0
    over_limit: int = 0
    yara_matches: int = 0
    already_in_case: bool = False
    seconds: float = 0.0
    rule_files: list[str] = field(default_factory=list)
    rule_errors: list[dict[str, str]] = field(default_factory=list)


class RuleLoadError(TidehuntError):
    """Every extra YARA rule file failed to compile."""


# ------------------------------------------------------------------ content type

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image"), (b"GIF87a", "image"), (b"GIF89a", "image"),
    (b"\xff\xd8\xff", "image"), (b"BM", "image"), (b"\x00\x00\x01\x00", "image"),
    (b"RIFF", "image"), (b"MZ", "pe"), (b"\x7fELF", "elf"), (b"\xca\xfe\xba\xbe", "class"),
    (b"PK\x03\x04", "archive"), (b"\x1f\x8b", "archive"), (b"Rar!", "archive"),
    (b"7z\xbc\xaf", "archive"), (b"%PDF", "pdf"),
)
#: Server-side script markers, checked anywhere in the first 64 KiB (a shell appended to an
#: image still runs if the server treats the file as a script).
_SCRIPT_MARKERS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("php", re.compile(rb"<\?(php\b|=)", re.I)),
    ("aspx", re.compile(rb"<%@\s*(page|webhandler|webservice|control|master|application)\b"
                        rb"[^>]*\blanguage\s*=\s*\"?(c#|cs|vb|jscript|javascript)", re.I)),
    ("aspx", re.compile(rb"<%@\s*(webhandler|webservice)\b|<script[^>]+runat\s*=\s*\"?server",
                        re.I)),
    ("jsp", re.compile(rb"<%@\s*page\b[^>]*\b(import|contentType|pageEncoding)\s*=|<jsp:|"
                       rb"<%!|\brequest\.getParameter\s*\(", re.I)),
    ("asp", re.compile(rb"<%[^@]*\b(response\.write|server\.createobject|request\.form)\b",
                       re.I)),
)
SERVER_SCRIPTS = frozenset({"php", "aspx", "asp", "jsp"})


def kind_of(head: bytes, ext: str) -> str:
    """Type from content; the extension only breaks ties between text kinds."""
    if not head:
        return "empty"
    for lang, rx in _SCRIPT_MARKERS:
        if rx.search(head):
            return lang
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if b"\x00" in head[:8192]:
        return "binary"
    low = head[:4096].lower()
    if b"<html" in low or b"<!doctype html" in low:
        return "html"
    if ext in ("js", "mjs") or low.lstrip().startswith((b"(function", b"!function", b"var ")):
        return "js"
    if ext == "css":
        return "css"
    if low.lstrip().startswith(b"<?xml") or ext in ("xml", "config"):
        return "xml"
    return "text"


# ------------------------------------------------------------------ heuristics

#: Functions that turn input into code or commands, per server language.
DANGEROUS: dict[str, tuple[tuple[str, re.Pattern[bytes]], ...]] = {
    "php": tuple((n, re.compile(p, re.I)) for n, p in (
        ("eval", rb"\beval\s*\("), ("assert", rb"\bassert\s*\("),
        ("system", rb"\bsystem\s*\("), ("shell_exec", rb"\bshell_exec\s*\("),
        ("passthru", rb"\bpassthru\s*\("), ("exec", rb"(?<![\w>:$])exec\s*\("),
        ("popen", rb"\bp(roc_)?open\s*\("), ("pcntl_exec", rb"\bpcntl_exec\s*\("),
        ("create_function", rb"\bcreate_function\s*\("),
        ("base64_decode", rb"\bbase64_decode\s*\("), ("gzinflate", rb"\bgz(inflate|uncompress)"),
        ("str_rot13", rb"\bstr_rot13\s*\("),
        ("preg_replace_e", rb"preg_replace\s*\(\s*['\"].{1,80}/e"),
        ("php_input", rb"php://input"), ("request_var", rb"\$_(request|post|cookie)\s*\["),
        ("backticks", rb"`\s*\$_"),
    )),
    "jsp": tuple((n, re.compile(p, re.I)) for n, p in (
        ("Runtime.exec", rb"getruntime\s*\(\s*\)\s*\.\s*exec"),
        ("ProcessBuilder", rb"new\s+processbuilder"), ("defineClass", rb"\bdefineclass\b"),
        ("ClassLoader", rb"extends\s+classloader|urlclassloader"),
        ("Cipher", rb"javax\.crypto|cipher\.getinstance"),
        ("base64", rb"base64\.?decoder|decodebuffer"),
        ("Socket", rb"new\s+socket\s*\(|socketchannel"),
        ("StandardContext", rb"standardcontext|applicationfilterconfig"),
    )),
    "aspx": tuple((n, re.compile(p, re.I)) for n, p in (
        ("Process.Start", rb"process\s*\.\s*start|processstartinfo"),
        ("Assembly.Load", rb"assembly\s*\.\s*load"), ("FromBase64String", rb"frombase64string"),
        ("eval", rb"\beval\s*\("), ("cmd.exe", rb"cmd(\.exe)?\b\s*[\"']?\s*,|cmd\.exe"),
        ("Request.Item", rb"request\s*\.\s*item\s*\["), ("unsafe", rb"[\"']unsafe[\"']"),
    )),
    "asp": tuple((n, re.compile(p, re.I)) for n, p in (
        ("Execute", rb"\bexecute(global)?\s*\(?\s*request"), ("eval", rb"\beval\s*\(\s*request"),
        ("WScript.Shell", rb"wscript\.shell"), ("cmd.exe", rb"cmd\.exe"),
    )),
}
_TOKEN = re.compile(rb"\S+")


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def longest_token(data: bytes) -> int:
    """Longest run of non-whitespace bytes."""
    return max((len(m) for m in _TOKEN.findall(data)), default=0)


# ------------------------------------------------------------------ YARA-X

#: signature-base and THOR rules read these external variables; defined empty when unknown.
EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")


def bundled_yara() -> Path:
    """The tidehunt web-shell pack shipped in the package."""
    return Path(str(resources.files("tidehunt") / "data" / "yara" / "webshells.yar"))


def _rule_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".yar", ".yara")
                          and f.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise RuleLoadError(f"{p}: no such YARA rule file or folder")
    return out


def compile_yara(extra: Sequence[str | Path] = ()) -> tuple[Any, list[str],
                                                               list[dict[str, str]]]:
    """Compile the bundled pack and every extra rule file, each in its own namespace.

    A file that does not compile is reported and left out; the bundled pack must compile.
    Returns (rules, files compiled, errors).
    """
    import yara_x

    comp = yara_x.Compiler(relaxed_re_syntax=True)
    for name in EXTERNALS:
        comp.define_global(name, "")
    files, errors = [], []
    bundled = bundled_yara()
    comp.new_namespace("tidehunt")
    comp.add_source(bundled.read_text(encoding="utf-8"), origin=str(bundled))
    files.append(str(bundled))
    for f in _rule_files(extra):
        ns = re.sub(r"\W", "_", f.stem)
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
            probe = yara_x.Compiler(relaxed_re_syntax=True)
            for name in EXTERNALS:
                probe.define_global(name, "")
            probe.add_source(text, origin=str(f))  # a failing file must not taint comp
        except (yara_x.CompileError, OSError) as exc:
            errors.append({"file": str(f), "error": str(exc).strip().splitlines()[0]})
            continue
        comp.new_namespace(ns)
        comp.add_source(text, origin=str(f))
        files.append(str(f))
    if extra and len(files) == 1:
        raise RuleLoadError("no extra YARA rule file compiled: " + "; ".join(
            f"{e['file']}: {e['error']}" for e in errors[:3]))
    return comp.build(), files, errors


def yara_matches(scanner: Any, data: bytes, rel: str, kind: str) -> list[dict[str, Any]]:
    """Matches of one file as plain data (rule, namespace and its meta, first offset)."""
    name = rel.rsplit("/", 1)[-1]
    scanner.set_global("filename", name)
    scanner.set_global("filepath", "/" + rel)
    scanner.set_global("extension", ("." + name.rsplit(".", 1)[-1].lower()) if "." in name
                       else "")
    scanner.set_global("filetype", kind.upper())
    out = []
    for r in scanner.scan(data).matching_rules:
        meta = dict(r.metadata)
        offset = min((m.offset for p in r.patterns for m in p.matches), default=None)
        out.append({
            "rule": r.identifier, "namespace": r.namespace,
            "id": str(meta.get("id") or f"{r.namespace}:{r.identifier}"),
            "severity": str(meta.get("severity") or (
                _score_level(meta["score"]) if "score" in meta else "high")),
            "techniques": str(meta.get("mitre_attack") or ""),
            "description": str(meta.get("description") or r.identifier),
            "offset": offset,
        })
    return out


def _score_level(score: Any) -> str:
    """signature-base ``score`` (0-100) as a level."""
    try:
        s = int(score)
    except (TypeError, ValueError):
        return "high"
    return "critical" if s >= 90 else "high" if s >= 70 else "medium" if s >= 40 else "low"


# ------------------------------------------------------------------ walk and scan

def iter_tree(root: Path, ctx: RunContext, aid: str, result: WebrootResult,
              limits: Limits, skip: str | None = None
              ) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(relative path, path, lstat) of every regular file, sorted; links not followed.

    ``skip``: a folder (relative path) not walked, with a warning: the case's own, when
    it sits inside the web root."""
    stack = [""]
    while stack:
        rel = stack.pop()
        here = root / rel if rel else root
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            ctx.warn(aid, SOURCE, f"folder not readable: {exc.strerror}", [rel or "."])
            continue
        subdirs = []
        for e in entries:
            sub = f"{rel}/{e.name}" if rel else e.name
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as exc:
                ctx.warn(aid, SOURCE, f"not readable: {exc.strerror}", [sub])
                continue
            if stat.S_ISLNK(st.st_mode):
                result.skipped_links += 1
                target = os.path.realpath(root / sub)
                inside = Path(target).is_relative_to(root)
                ctx.warn(aid, SOURCE, "symbolic link not followed" + (
                    "" if inside else " (it points outside the web root)"), [sub])
                continue
            if stat.S_ISDIR(st.st_mode):
                if sub == skip:
                    ctx.warn(aid, SOURCE, CASE_INSIDE, [sub])
                    continue
                subdirs.append(sub)
            elif stat.S_ISREG(st.st_mode):
                if result.files >= limits.max_files:
                    ctx.warn(aid, SOURCE, f"file limit reached ({limits.max_files}); the "
                             "rest of the tree is not scanned", [sub])
                    return
                result.files += 1
                yield sub, root / sub, st
            else:  # a named pipe (a read would wait for a writer), socket or device
                ctx.warn(aid, SOURCE, f"not a regular file ({not_regular(st.st_mode)}); "
                         "not read", [sub])
        stack.extend(reversed(subdirs))


def _ts(sec: float) -> datetime:
    return datetime.fromtimestamp(sec, tz=UTC)


def scan_file(path: Path, rel: str, st: os.stat_result, scanner: Any, limits: Limits,
              budget: list[int]) -> dict[str, Any]:
    """One read: hashes, type, heuristics, YARA."""
    name = rel.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name[1:] else ""
    row: dict[str, Any] = {
        "path": rel, "abs_path": str(path), "name": name, "ext": ext, "size": st.st_size,
        "mtime": _ts(st.st_mtime), "ctime": _ts(st.st_ctime), "atime": _ts(st.st_atime),
        "ctime_gap_s": int(st.st_ctime - st.st_mtime),
    }
    notes = []
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    cap = min(limits.max_file_bytes, max(0, budget[0]))
    try:
        # never through a link, never blocking on a FIFO: the tree may change under us
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with open(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                row["scan_note"] = "not read: no longer a regular file (changed during the scan)"
                return row
            data = fh.read(cap)
            sha.update(data)
            md5.update(data)
            while chunk := fh.read(1 << 20):  # hash the rest, never hold it
                sha.update(chunk)
                md5.update(chunk)
    except OSError as exc:
        row["scan_note"] = (
            "not read: replaced by a symbolic link during the scan (not followed)"
            if exc.errno == errno.ELOOP else
            "not read: it went away during the scan" if exc.errno == errno.ENOENT else
            f"not read: {exc.strerror or exc}")
        return row
    budget[0] -= len(data)
    if len(data) < st.st_size:
        notes.append(f"content scanned up to {len(data)} of {st.st_size} bytes (limit)")
    row["sha256"], row["md5"] = sha.hexdigest(), md5.hexdigest()
    kind = kind_of(data[:65536], ext)
    row["kind"] = kind
    row["server_script"] = kind in SERVER_SCRIPTS
    sample = data[: 4 << 20]
    row["entropy"] = round(entropy(sample), 4)
    row["compress_ratio"] = round(len(zlib.compress(sample, 6)) / len(sample), 4) if sample \
        else None
    row["longest_token"] = longest_token(sample)
    hits = {n: len(rx.findall(data)) for n, rx in DANGEROUS.get(kind, ())}
    found = [n for n, c in hits.items() if c]
    row["dangerous"] = ", ".join(found) or None
    row["dangerous_count"] = len(found)
    row["dangerous_per_kb"] = round(sum(hits.values()) * 1024 / len(data), 3) if data else 0.0
    matches = yara_matches(scanner, data, rel, kind) if data else []
    row["yara"] = orjson.dumps(matches).decode() if matches else None
    if notes:
        row["scan_note"] = "; ".join(notes)
    return row


def load_baseline(spec: str) -> tuple[dict[str, str], set[str]]:
    """Known-good content: a folder, a hash list (``sha256  path`` lines or bare hashes),
    or a previous tidehunt case. Returns (path -> sha256, set of hashes)."""
    p = Path(spec)
    by_path: dict[str, str] = {}
    if (p / "manifest.json").is_file() and (p / "tables" / "file").is_dir():
        t = CaseStore(p).sql("SELECT path, sha256 FROM file")
        by_path = dict(zip(t.column("path").to_pylist(), t.column("sha256").to_pylist(),
                           strict=True))
    elif p.is_dir():
        res = WebrootResult(str(p))
        for rel, path, _ in iter_tree(p.resolve(), RunContext(), "baseline", res, Limits()):
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            by_path[rel] = h.hexdigest()
    elif p.is_file():
        hashes: set[str] = set()
        for ln in p.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = re.split(r"[\s,;]+", ln.strip(), maxsplit=1)
            if parts and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
                digest = parts[0].lower()
                if len(parts) > 1 and parts[1]:
                    by_path[parts[1].lstrip("*./").replace("\\", "/")] = digest
                hashes.add(digest)
        return by_path, hashes
    else:
        raise NoUsableInput(f"baseline {spec!r} is not a folder, hash list or case")
    return by_path, set(by_path.values())


def scan_webroot(root: str | Path, store: CaseStore, ctx: RunContext, *,
                 yara: Sequence[str | Path] = (), baseline: str | None = None,
                 host: str | None = None, limits: Limits | None = None) -> WebrootResult:
    """Scan a web root into the case's ``file`` table (skipped if this exact tree is in).

    Raises:
        NoUsableInput: the root is not a folder.
        RuleLoadError: extra YARA rules were given and none compiled.
    """
    import yara_x

    t0 = time.perf_counter()
    limits = limits or Limits()
    given = str(root)
    real = Path(root).resolve()
    if not real.is_dir():
        raise NoUsableInput(f"web root {given!r} is not a folder")
    rules, files, errors = compile_yara(yara)
    result = WebrootResult(given, rule_files=files, rule_errors=errors)
    for e in errors:
        ctx.warn("-", "yara", f"YARA rule file left out: {e['error']}", [e["file"]],
                 path=e["file"])
    scanner = yara_x.Scanner(rules)
    aid = hashlib.sha256(f"webroot\0{real}".encode()).hexdigest()[:16]
    budget = [limits.max_total_bytes]
    rows = []
    case = store.root.resolve()
    if real.is_relative_to(case):
        raise NoUsableInput(f"web root {given!r} is in the case folder, which is not evidence")
    skip = case.relative_to(real).as_posix() if case.is_relative_to(real) else None
    for n_done, (rel, path, st) in enumerate(iter_tree(real, ctx, aid, result, limits, skip),
                                             1):
        if budget[0] <= 0 and st.st_size:
            result.over_limit += 1
        row = scan_file(path, rel, st, scanner, limits, budget)
        if str(row.get("scan_note") or "").startswith("not read:"):
            why = row["scan_note"].removeprefix("not read: ")
            ctx.warn(aid, SOURCE, f"file not read ({why}); listed without hashes", [rel])
        rows.append(row)
        if n_done % 500 == 0:
            ctx.on_progress("webroot", n_done, None)
    if result.over_limit:
        ctx.warn(aid, SOURCE, f"total scan limit ({limits.max_total_bytes} bytes) reached: "
                 "content of later files only hashed", count=result.over_limit)
    digest = hashlib.sha256(b"".join(f"{r['path']}\0{r.get('sha256')}\n".encode()
                                     for r in rows)).hexdigest()
    aid = hashlib.sha256(f"webroot\0{real}\0{digest}".encode()).hexdigest()[:16]
    if store.has_ingested(aid):
        result.already_in_case = True
        ctx.take_warnings()
        result.seconds = time.perf_counter() - t0
        return result
    if rows:
        _derive(rows, baseline)
    result.yara_matches = sum(1 for r in rows if r.get("yara"))
    result.scanned_bytes = limits.max_total_bytes - budget[0]
    parts = []
    if rows:
        cols = {k: pa.array([r.get(k) for r in rows]) for k in _COLUMNS}
        for k in ("mtime", "ctime", "atime"):
            cols[k] = pa.array([r[k] for r in rows], pa.timestamp("us", tz="UTC"))
        cols["ts"] = cols["mtime"]
        cols["root"] = pa.array([given] * len(rows), pa.string())
        cols["origin"] = pa.array(["webroot"] * len(rows), pa.string())
        cols["host"] = pa.array([host] * len(rows), pa.string())
        batch = TableBatch.of("file", cols, source=SOURCE, artefact=aid,
                              locator=pa.array([r["path"] for r in rows], pa.string()))
        tmp = store.tmp_part("file")
        n, names = write_part(tmp, [batch.data])
        parts.append({"tmp": str(tmp), "table": "file", "rows": n, "columns": names,
                      "artefacts": [aid]})
    warnings = [w.to_dict() for w in ctx.take_warnings()]
    rec = {"path": str(real), "display": given, "size": sum(r["size"] for r in rows),
           "sha256": digest, "reader": SOURCE, "status": "ingested",
           "records": {"file": len(rows)}, "warnings": warnings, "ingested_at": utcnow(),
           "webroot": {"files": len(rows), "yara_files": files, "yara_errors": errors,
                       "baseline": baseline, "links_skipped": result.skipped_links}}
    store.commit({aid: rec}, parts)
    store.write_catalogue()
    result.seconds = time.perf_counter() - t0
    return result


_COLUMNS = ("path", "abs_path", "name", "ext", "size", "sha256", "md5", "kind",
            "server_script", "entropy", "compress_ratio", "longest_token", "dangerous",
            "dangerous_count", "dangerous_per_kb", "siblings", "sibling_mtime_delta_s",
            "ctime_gap_s", "baseline", "yara", "scan_note")


def _derive(rows: list[dict[str, Any]], baseline: str | None) -> None:
    """Whole-tree columns: sibling times and the baseline status."""
    df = pl.DataFrame({"dir": [r["path"].rpartition("/")[0] for r in rows],
                       "m": [r["mtime"].timestamp() for r in rows]})
    df = df.with_columns(
        pl.len().over("dir").alias("n"),
        pl.col("m").median().over("dir").alias("med"))
    for r, n, m, med in zip(rows, df["n"], df["m"], df["med"], strict=True):
        r["siblings"] = int(n) - 1
        r["sibling_mtime_delta_s"] = int(abs(m - med)) if n > 2 else None
    if baseline is None:
        return
    by_path, hashes = load_baseline(baseline)
    for r in rows:
        old = by_path.get(r["path"])
        if old is None:
            r["baseline"] = "unchanged" if r.get("sha256") in hashes and not by_path else "new"
        else:
            r["baseline"] = "unchanged" if old == r.get("sha256") else "modified"
