"""Intel into a case: each intel file (and the bundled APT40 pack) becomes rows of the
``indicator`` table, once per content (re-running with the same file adds nothing)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tidehunt.case.store import CaseStore, utcnow, write_part
from tidehunt.context import RunContext
from tidehunt.intel.readers import ReadResult, read
from tidehunt.model.batch import TableBatch
from tidehunt.yamlconf import load_bundled

SOURCE = "intel"


def bundled_pack() -> Path:
    """The APT40 IOC pack shipped in the package (dated, from public reports)."""
    return Path(str(resources.files("tidehunt") / "data" / "intel" / "apt40_ioc_pack_v0.csv"))


@cache
def pack_sources() -> dict[str, dict[str, Any]]:
    """The reports the bundled pack cites, by code."""
    text = (resources.files("tidehunt") / "data" / "intel" / "sources.yml").read_text("utf-8")
    return dict(load_bundled(text))


@dataclass
class IntelLoad:
    """What loading intel into a case did."""

    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def indicators(self) -> int:
        """Indicators added by this run."""
        return sum(f["indicators"] for f in self.files if f["status"] == "ingested")


def _describe(res: ReadResult) -> None:
    srcs = pack_sources()
    for i in res.indicators:
        s = srcs.get(i.source)
        if s:
            i.context = f"{i.context} [{i.source}: {s['publisher']}, {s['date']}]".strip()
            i.source = f"apt40-pack/{i.source}"


def load_intel(paths: list[str], store: CaseStore, ctx: RunContext, *,
               bundled: bool = True) -> IntelLoad:
    """Read each intel file into the case; a file that gives nothing usable is a warning.

    The files' records are committed unsaved: the caller (``engine.detect``) saves the
    manifest and writes the catalogue once, after the detectors (a run killed before then
    reads the files again, its unlisted parts deleted when the case is reopened).
    """
    out = IntelLoad()
    todo = ([str(bundled_pack())] if bundled else []) + list(paths)
    for given in todo:
        p = Path(given)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            out.files.append(_one(f, given if f == p else str(f), store, ctx,
                                  f == bundled_pack()))
    return out


def _one(path: Path, display: str, store: CaseStore, ctx: RunContext,
         is_pack: bool) -> dict[str, Any]:
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        ctx.warn("-", SOURCE, f"intel file not readable: {exc.strerror or exc}", [display],
                 path=display)
        return {"path": display, "status": "failed", "indicators": 0}
    aid = hashlib.sha256(f"intel\0{path.resolve()}\0{digest}".encode()).hexdigest()[:16]
    if store.has_ingested(aid):
        return {"path": display, "status": "already in case", "indicators": 0}
    res = read(path, "apt40-pack" if is_pack else None)
    if is_pack:
        _describe(res)
    warnings = []
    for e in res.errors[:50]:
        warnings.append({"artefact": aid, "source": SOURCE, "message": e,
                         "locators": [], "count": 1, "path": display})
    if not res.indicators and not res.errors:
        pats = f", {res.patterns} regular expressions" if res.patterns else ""
        warnings.append({"artefact": aid, "source": SOURCE, "count": 1, "path": display,
                         "locators": [], "message": f"no indicator tidehunt can match "
                         f"({res.format or 'unknown format'}, {res.skipped} entries "
                         f"skipped{pats})"})
    parts = []
    if res.indicators:
        rows = [dict(i.to_row(), source_file=display) for i in res.indicators]
        batch = TableBatch.from_values(
            "indicator", {k: [r[k] for r in rows] for k in rows[0]}, source=SOURCE,
            artefact=aid, locators=[f"{i.type}:{i.value}" for i in res.indicators])
        tmp = store.tmp_part("indicator")
        n, names = write_part(tmp, [batch.data])
        parts.append({"tmp": str(tmp), "table": "indicator", "rows": n, "columns": names,
                      "artefacts": [aid]})
    rec = {"path": str(path.resolve()), "display": display, "size": path.stat().st_size,
           "sha256": digest, "reader": f"intel_{res.format or 'unknown'}",
           "status": "ingested" if not res.errors or res.indicators else "failed",
           "records": {"indicator": len(res.indicators)}, "warnings": warnings,
           "ingested_at": utcnow(),
           "intel": {"format": res.format, "indicators": len(res.indicators),
                     "skipped": res.skipped, "patterns": res.patterns,
                     "bundled": is_pack}}
    store.commit({aid: rec}, parts, save=False)  # saved by engine.detect (load_intel)
    return {"path": display, "status": rec["status"], "indicators": len(res.indicators),
            "skipped": res.skipped, "format": res.format, "errors": res.errors[:5]}
