"""Watering-hole check of a site you own: every script a page loads, against a baseline.

``tidehunt scan-site DIR_OR_WARC -o CASE`` reads a saved copy of the site (a folder of
pages and scripts, or a WARC capture read with warcio), parses each HTML page with the
standard library's HTML parser and writes one ``site_script`` row per script: the page, the
external origin or the inline script's SHA-256 (as a CSP hash), and the ScanBox traits
found in the script's code (keylogging hooks on inputs, plugin and software enumeration,
WebRTC/STUN local-address discovery, ScanBox's beacon URL grammar). With ``--baseline`` (an
earlier copy or case) each origin and inline script is marked new or known.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pyarrow as pa

from tidehunt.case.store import CaseStore, utcnow, write_part
from tidehunt.context import RunContext
from tidehunt.errors import NoUsableInput
from tidehunt.model.batch import TableBatch

SOURCE = "site_scan"
PAGE_EXT = (".html", ".htm", ".xhtml", ".shtml", ".php", ".asp", ".aspx", ".jsp")
MAX_BYTES = 16 << 20

#: ScanBox traits: name -> regex over script code (case-insensitive).
TRAITS: dict[str, re.Pattern[str]] = {
    "keylogger": re.compile(
        r"(getElementsByTagName\(\s*['\"]input['\"]\s*\)|querySelectorAll\(\s*['\"]input)"
        r"[\s\S]{0,400}(onkey(down|press|up)|addEventListener\(\s*['\"]key(down|press|up))"
        r"|document\.onkey(down|press|up)\s*=", re.I),
    "plugin_enumeration": re.compile(
        r"navigator\.(plugins|mimeTypes)[\s\S]{0,400}(length|\.name|description)"
        r"|new\s+ActiveXObject\(\s*['\"](ShockwaveFlash|AcroPDF|PDF\.PdfCtrl|Skype|"
        r"QuickTime|JavaWebStart)", re.I),
    "software_probe": re.compile(
        r"(res|chrome-extension|moz-extension)://[^'\"]{3,}\.(png|gif|bmp|js|css)"
        r"|(kaspersky|avast|avg|bitdefender|eset|mcafee|norton|360safe)[\s\S]{0,60}"
        r"(\.dll|://|extension)", re.I),
    "webrtc_local_ip": re.compile(
        r"(RTCPeerConnection|webkitRTCPeerConnection|mozRTCPeerConnection)[\s\S]{0,600}"
        r"(stun:|onicecandidate|createDataChannel)", re.I),
    "beacon_grammar": re.compile(r"/i/(\?|v\.php\?m=|k\.php\?data=)"
                                 r"|['\"](v\.php\?m=|k\.php\?data=)", re.I),
}


@dataclass
class SiteScanResult:
    """What a site scan read and found."""

    source: str
    pages: int = 0
    scripts: int = 0
    external_origins: int = 0
    flagged: int = 0
    seconds: float = 0.0


class _Scripts(HTMLParser):
    """Script tags of one page: (src or None, inline code)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str | None, str]] = []
        self._inline: list[str] | None = None
        self._src: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            a = dict(attrs)
            self._src = (a.get("src") or "").strip() or None
            self._inline = []

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._inline is not None:
            self.found.append((self._src, "".join(self._inline)))
            self._inline, self._src = None, None


def traits_of(code: str) -> list[str]:
    """ScanBox traits present in script code."""
    return [name for name, rx in TRAITS.items() if rx.search(code)]


def csp_hash(code: str) -> str:
    """The CSP ``sha256-...`` hash of an inline script."""
    return "sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()


def iter_site(path: Path, ctx: RunContext) -> Iterator[tuple[str, str, bytes]]:
    """(url or relative path, content type, body) of every page and script of the copy."""
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = f.relative_to(path).as_posix()
            low = rel.lower()
            kind = "html" if low.endswith(PAGE_EXT) else "js" if low.endswith(".js") else ""
            if kind:
                with open(f, "rb") as fh:
                    yield "/" + rel, kind, fh.read(MAX_BYTES)
        return
    from warcio.archiveiterator import ArchiveIterator  # type: ignore[import-untyped]
    from warcio.exceptions import ArchiveLoadFailed  # type: ignore[import-untyped]

    try:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type != "response" or rec.http_headers is None:
                    continue
                ctype = (rec.http_headers.get_header("Content-Type") or "").lower()
                kind = "html" if "html" in ctype else "js" if "javascript" in ctype else ""
                if kind:
                    url = rec.rec_headers.get_header("WARC-Target-URI") or ""
                    yield url, kind, rec.content_stream().read(MAX_BYTES)
    except ArchiveLoadFailed as exc:
        raise NoUsableInput(f"{path}: not a folder or a readable WARC file ({exc})") from exc


def scan_site(source: str | Path, store: CaseStore, ctx: RunContext, *,
              baseline: str | None = None, site_origin: str | None = None) -> SiteScanResult:
    """Write the site's scripts into ``site_script``; returns counts."""
    t0 = time.perf_counter()
    path = Path(source)
    if not path.exists():
        raise NoUsableInput(f"site copy {str(source)!r} does not exist")
    res = SiteScanResult(str(source))
    rows = _rows(path, ctx, res, site_origin)
    if baseline:
        known = _known(Path(baseline), ctx, site_origin)
        for r in rows:
            key = r["origin"] or r["code_sha256"]
            r["baseline"] = "known" if key in known else "new"
    res.scripts = len(rows)
    res.external_origins = len({r["origin"] for r in rows if r["third_party"]})
    res.flagged = sum(1 for r in rows if r["traits"])
    digest = hashlib.sha256(repr(sorted((r["page"], r["origin"] or "", r["code_sha256"] or "",
                                         r.get("baseline") or "") for r in rows)).encode())
    aid = hashlib.sha256(f"site\0{path.resolve()}\0{digest.hexdigest()}".encode()
                         ).hexdigest()[:16]
    if store.has_ingested(aid):
        res.seconds = time.perf_counter() - t0
        return res
    parts = []
    if rows:
        cols = {k: pa.array([r.get(k) for r in rows]) for k in
                ("page", "src", "origin", "third_party", "code_sha256", "traits",
                 "baseline", "size")}
        cols["source_file"] = pa.array([str(source)] * len(rows), pa.string())
        batch = TableBatch.of("site_script", cols, source=SOURCE, artefact=aid,
                              locator=pa.array([f"{r['page']}#{r['n']}" for r in rows]))
        tmp = store.tmp_part("site_script")
        n, names = write_part(tmp, [batch.data])
        parts.append({"tmp": str(tmp), "table": "site_script", "rows": n, "columns": names,
                      "artefacts": [aid]})
    rec = {"path": str(path.resolve()), "display": str(source), "size": 0,
           "sha256": digest.hexdigest(), "reader": SOURCE, "status": "ingested",
           "records": {"site_script": len(rows)},
           "warnings": [w.to_dict() for w in ctx.take_warnings()], "ingested_at": utcnow(),
           "site": {"pages": res.pages, "baseline": baseline}}
    store.commit({aid: rec}, parts)
    store.write_catalogue()
    res.seconds = time.perf_counter() - t0
    return res


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}".lower() if p.scheme and p.netloc else ""


def _rows(path: Path, ctx: RunContext, res: SiteScanResult,
          site_origin: str | None) -> list[dict[str, Any]]:
    items = list(iter_site(path, ctx))
    local_js = {u: body for u, k, body in items if k == "js"}
    own = {site_origin.lower().rstrip("/")} if site_origin else set()
    own |= {_origin(u) for u, k, _ in items if k == "html" and _origin(u)}
    rows: list[dict[str, Any]] = []
    for url, kind, body in items:
        if kind != "html":
            continue
        res.pages += 1
        parser = _Scripts()
        try:
            parser.feed(body.decode("utf-8", "replace"))
            parser.close()
        except AssertionError as exc:  # html.parser's way of refusing a broken tag
            ctx.warn("-", SOURCE, f"page not fully parsed: {exc}", [url])
        for n, (src, inline) in enumerate(parser.found):
            row: dict[str, Any] = {"page": url, "n": n, "src": src, "origin": None,
                                   "third_party": False, "code_sha256": None,
                                   "baseline": None}
            # code_sha256: CSP hash of inline code, or of a local script file's content
            code = inline
            if src:
                full = urljoin(url if _origin(url) else "http://site.invalid" + url, src)
                origin = _origin(full)
                local = origin in own or origin == "http://site.invalid"
                row["origin"] = None if local else origin
                row["third_party"] = not local
                key = urlsplit(full).path if local else full
                body_js = local_js.get(key) or local_js.get(full)
                code = body_js.decode("utf-8", "replace") if body_js else ""
                if local and body_js is not None:
                    row["code_sha256"] = csp_hash(code)
            else:
                row["code_sha256"] = csp_hash(inline)
            row["traits"] = ", ".join(traits_of(code)) or None
            row["size"] = len(code)
            rows.append(row)
    return rows


def _known(baseline: Path, ctx: RunContext, site_origin: str | None) -> set[str]:
    if (baseline / "manifest.json").is_file():
        t = CaseStore(baseline).sql("SELECT origin, code_sha256 FROM site_script")
        return {v for c in t.columns for v in c.to_pylist() if v}
    rows = _rows(baseline, ctx, SiteScanResult(str(baseline)), site_origin)
    return {r["origin"] or r["code_sha256"] for r in rows if r["origin"] or
            r["code_sha256"]}
