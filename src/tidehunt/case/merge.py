"""Merging cases: ingest split across machines (each writes its own case, its own Parquet
parts), then one case for detection. Parts are hard-linked when the file system allows,
else copied; the evidence records and part lists join the target's manifest. Evidence
already in the target (same path, same SHA-256) is not added twice."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tidehunt.case.store import CaseStore, utcnow
from tidehunt.errors import CaseError


@dataclass
class MergeResult:
    """What a merge added and what it left out."""

    cases: int = 0
    parts: int = 0
    rows: int = 0
    artefacts: int = 0
    skipped_artefacts: int = 0
    linked: int = 0
    copied: int = 0
    warnings: list[str] = field(default_factory=list)


def merge(sources: list[str | Path], target: str | Path) -> MergeResult:
    """Add every source case's evidence and parts to ``target`` (created if missing)."""
    dest = CaseStore(target, create=True)
    res = MergeResult()
    for src_path in sources:
        src = CaseStore(src_path)
        if src.root == dest.root:
            raise CaseError(f"{src.root}: cannot merge a case into itself")
        res.cases += 1
        have = {a for a, r in dest.artefacts.items() if r.get("status") == "ingested"}
        new_arts = {a: r for a, r in src.artefacts.items() if a not in have}
        res.skipped_artefacts += len(src.artefacts) - len(new_arts)
        tag = _tag(src.root)
        parts = []
        for rel, p in sorted(src.manifest.get("parts", {}).items()):
            arts = set(p.get("artefacts", []))
            if arts and arts <= have:
                continue  # all of its evidence is in the target already
            if arts & have:
                raise CaseError(
                    f"{src.root / rel}: holds rows of evidence the target already has and "
                    "of evidence it has not; re-ingest that evidence instead of merging")
            src_file = src.root / rel
            tmp = dest.tmp_part(p["table"])
            final_name = f"{tag}-{Path(rel).name}"
            tmp.unlink()
            tmp = tmp.with_name(".tmp-" + final_name)
            if _link_or_copy(src_file, tmp):
                res.linked += 1
            else:
                res.copied += 1
            parts.append({"tmp": str(tmp), "table": p["table"], "rows": p["rows"],
                          "columns": p.get("columns", []), "artefacts": sorted(arts)})
            res.parts += 1
            res.rows += int(p["rows"])
        dest.commit(new_arts, parts, save=False)
        res.artefacts += len(new_arts)
        dest.manifest.setdefault("runs", []).append({
            "command": "merge", "finished": utcnow(), "source": str(src.root),
            "parts": len(parts), "artefacts": len(new_arts)})
        dest.save()
    dest.write_catalogue()
    return res


def _tag(root: Path) -> str:
    import hashlib

    return hashlib.sha256(str(root).encode()).hexdigest()[:8]


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst`` (True), or copy it when linking is not possible."""
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False
