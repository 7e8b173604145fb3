"""YARA-X matches of the web-root scan, one finding per file and rule."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import orjson

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import WEBROOT_KEEP, WEBROOT_PARTITION, Analytic, meta, query
from tidehunt.model.finding import Evidence, Finding
from tidehunt.model.rule import AttackRef, RuleMeta, Severity

_LEVELS = {s.label for s in Severity}


class WebrootYara(Analytic):
    """Each YARA-X rule that matched a file of a scanned web root (bundled or extra pack)."""

    NAME: ClassVar[str] = "webroot_yara"
    READS: ClassVar[frozenset[str]] = frozenset({"file"})
    #: Every finding is of files of one scan: partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = WEBROOT_PARTITION
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = WEBROOT_KEEP
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0013", "YARA-X rule matched a web-root file", "high", ["T1505.003"],
        ["persistence"],
        "A file of the scanned web root matched a YARA-X rule. The finding carries the "
        "rule's own id, severity and ATT&CK techniques (tidehunt's web-shell pack, or "
        "any extra rule folder given with --yara).",
        ["https://attack.mitre.org/techniques/T1505/003/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (file, rule)."""
        rows = query(con, "SELECT host, root, path, _artefact, _locator, ts, kind, sha256, "
                          "size, yara FROM webroot_file WHERE yara IS NOT NULL ORDER BY path")
        for row in rows:
            for m in orjson.loads(row["yara"]):
                level = str(m.get("severity", "high")).lower()
                techs = tuple(t.strip().upper() for t in str(m.get("techniques", "")).split(",")
                              if t.strip().upper().startswith("T"))
                rule = RuleMeta(
                    id=m["id"], title=f"YARA {m['namespace']}:{m['rule']}", engine="yara",
                    severity=Severity.parse(level if level in _LEVELS else "high"),
                    attack=tuple(AttackRef(t, ("persistence",)) for t in techs),
                    tactics=("persistence",), description=m["description"],
                    tags=(m["namespace"],))
                ev = Evidence("file", f"{row['root']}/{row['path']}", row["_artefact"],
                              row["_locator"], None, row["ts"])
                yield Finding.of(
                    rule, [ev], f"{row['path']} matches YARA rule {m['namespace']}:"
                                f"{m['rule']} ({m['description']})",
                    matched={"path": row["path"], "rule": f"{m['namespace']}:{m['rule']}",
                             "kind": row["kind"], "sha256": row["sha256"],
                             "size": str(row["size"]), "offset": str(m.get("offset"))},
                    host=row["host"], dst=row["path"])
