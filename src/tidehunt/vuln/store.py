"""Inventories into a case's ``inventory`` table, once per file content."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidehunt.case.store import CaseStore, utcnow, write_part
from tidehunt.context import RunContext
from tidehunt.errors import ConfigError
from tidehunt.model.batch import TableBatch
from tidehunt.vuln import read_inventory, read_kev

SOURCE = "inventory"
KEV_FILE = "kev.json"


def load_inventory(paths: list[str], store: CaseStore, ctx: RunContext) -> list[dict[str, Any]]:
    """Each inventory file into the case (an unreadable one stops the run: ConfigError).

    Committed unsaved, as :func:`tidehunt.intel.store.load_intel`: ``engine.detect`` saves
    the manifest and writes the catalogue after the detectors.
    """
    out: list[dict[str, Any]] = []
    for given in paths:
        p = Path(given)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{given}: inventory not readable: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        aid = hashlib.sha256(f"inventory\0{p.resolve()}\0{digest}".encode()).hexdigest()[:16]
        if store.has_ingested(aid):
            out.append({"path": given, "status": "already in case"})
            continue
        assets = read_inventory(p)
        now = datetime.now(UTC)
        vals: dict[str, list[Any]] = {"ts": [now] * len(assets), "host": [a.host for a in assets],
                "product": [a.product for a in assets], "vendor": [a.vendor for a in assets],
                "version": [a.version for a in assets], "purl": [a.purl for a in assets],
                "cpe": [a.cpe for a in assets],
                "internet_facing": [a.internet_facing for a in assets],
                "custom": [a.custom for a in assets],
                "source_file": [given] * len(assets)}
        parts = []
        if assets:
            batch = TableBatch.from_values("inventory", vals, source=SOURCE, artefact=aid,
                                           locators=[f"row {i + 1}" for i in range(len(assets))])
            tmp = store.tmp_part("inventory")
            n, names = write_part(tmp, [batch.data])
            parts.append({"tmp": str(tmp), "table": "inventory", "rows": n, "columns": names,
                          "artefacts": [aid]})
        rec = {"path": str(p.resolve()), "display": given, "size": len(data), "sha256": digest,
               "reader": SOURCE, "status": "ingested", "records": {"inventory": len(assets)},
               "warnings": [] if assets else [{"artefact": aid, "source": SOURCE, "count": 1,
                                               "path": given, "locators": [],
                                               "message": "inventory lists no product"}],
               "ingested_at": utcnow()}
        store.commit({aid: rec}, parts, save=False)
        out.append({"path": given, "status": "ingested", "assets": len(assets)})
    return out


def keep_kev(store: CaseStore, path: str | None) -> Path | None:
    """Copy a KEV catalogue into the case (checked first); the case's copy, if any."""
    dest = store.root / KEV_FILE
    if path:
        read_kev(path)  # refuses what is not the KEV JSON
        if Path(path).resolve() != dest.resolve():
            shutil.copyfile(path, dest)
    return dest if dest.is_file() else None
