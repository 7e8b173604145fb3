"""Findings: the contract later stages and external checks rely on.

Detectors that raise many findings (the Sigma engine) build them as Arrow batches in
FINDINGS_SCHEMA directly; detectors with few findings build ``Finding`` values and
convert them with ``findings_batch``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from tidehunt.model.rule import RuleMeta

EVIDENCE_TYPE = pa.struct(
    [
        pa.field("table", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("artefact", pa.string()),
        pa.field("record_id", pa.int64()),
        pa.field("locator", pa.string()),
    ]
)

FINDINGS_SCHEMA = pa.schema(
    [
        pa.field("finding_id", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("ts_last", pa.timestamp("us", tz="UTC")),
        pa.field("rule_id", pa.string()),
        pa.field("rule_title", pa.string()),
        pa.field("engine", pa.string()),
        pa.field("level", pa.string()),
        pa.field("severity", pa.int8()),
        pa.field("techniques", pa.list_(pa.string())),
        pa.field("tactics", pa.list_(pa.string())),
        pa.field("host", pa.string()),
        pa.field("user", pa.string()),
        pa.field("src", pa.string()),
        pa.field("dst", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("event_id", pa.int64()),
        pa.field("summary", pa.string()),
        pa.field("details", pa.string()),  # Hayabusa-style "Key: value ¦ ..." of the event
        pa.field("evidence", pa.list_(EVIDENCE_TYPE)),
        pa.field("fields", pa.string()),  # JSON object of the matched event's fields
    ]
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A pointer to one row of a table (or a file offset)."""

    table: str
    source_file: str
    artefact: str
    locator: str
    record_id: int | None = None
    ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding, for detectors that raise few of them."""

    id: str
    rule: RuleMeta
    evidence: tuple[Evidence, ...]
    summary: str
    matched: Mapping[str, str] = field(default_factory=dict)
    host: str | None = None
    user: str | None = None
    src: str | None = None
    dst: str | None = None
    ts_first: datetime | None = None
    ts_last: datetime | None = None

    @classmethod
    def of(
        cls,
        rule: RuleMeta,
        evidence: Iterable[Evidence],
        summary: str,
        *,
        matched: Mapping[str, str] | None = None,
        host: str | None = None,
        user: str | None = None,
        src: str | None = None,
        dst: str | None = None,
    ) -> Finding:
        """Sort evidence by time, keep the first 100, derive the stable id and times."""
        ev = sorted(evidence, key=lambda e: (e.ts is None, e.ts.timestamp() if e.ts else 0.0,
                                              e.locator))
        times = [e.ts for e in ev if e.ts is not None]
        return cls(
            id=finding_id(rule.id, [(e.artefact, e.locator) for e in ev]),
            rule=rule,
            evidence=tuple(ev[:100]),
            summary=summary,
            matched=dict(matched or {}),
            host=host,
            user=user,
            src=src,
            dst=dst,
            ts_first=min(times) if times else None,
            ts_last=max(times) if times else None,
        )


def finding_id(rule_id: str, evidence: Iterable[tuple[str, str]]) -> str:
    """sha256(rule id + evidence pointers)[:16]: stable across runs of the same case."""
    h = hashlib.sha256(rule_id.encode())
    for art, loc in evidence:
        h.update(b"\x00" + art.encode() + b"\x01" + loc.encode())
    return h.hexdigest()[:16]


def finding_ids(rule_ids: Sequence[str], rules: Sequence[int],
                evidence: Sequence[tuple[str, str]], events: Sequence[int]) -> list[str]:
    """``finding_id(rule_ids[r], [evidence[e]])`` for each pair of ``rules`` and ``events``
    (a finding with one evidence pointer), each rule's and event's bytes encoded once."""
    heads = [r.encode() for r in rule_ids]
    tails = [b"\x00" + a.encode() + b"\x01" + loc.encode() for a, loc in evidence]
    sha = hashlib.sha256
    return [sha(heads[r] + tails[e]).hexdigest()[:16]
            for r, e in zip(rules, events, strict=True)]


def findings_batch(findings: Iterable[Finding]) -> pa.RecordBatch:
    """Convert Finding values to one batch in FINDINGS_SCHEMA."""
    rows = []
    for f in findings:
        rows.append(
            {
                "finding_id": f.id,
                "ts": f.ts_first,
                "ts_last": f.ts_last,
                "rule_id": f.rule.id,
                "rule_title": f.rule.title,
                "engine": f.rule.engine,
                "level": f.rule.severity.label,
                "severity": int(f.rule.severity),
                "techniques": list(f.rule.techniques),
                "tactics": list(f.rule.tactics),
                "host": f.host,
                "user": f.user,
                "src": f.src,
                "dst": f.dst,
                "channel": None,
                "event_id": None,
                "summary": f.summary,
                "details": " ¦ ".join(f"{k}: {v}" for k, v in f.matched.items()),
                "evidence": [
                    {
                        "table": e.table,
                        "source_file": e.source_file,
                        "artefact": e.artefact,
                        "record_id": e.record_id,
                        "locator": e.locator,
                    }
                    for e in f.evidence
                ],
                "fields": orjson.dumps(dict(f.matched)).decode(),
            }
        )
    return pa.RecordBatch.from_pylist(rows, schema=FINDINGS_SCHEMA)


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()``, built column by column, each distinct timestamp made once.

    The same rows, faster on a findings table: a Python ``datetime`` per cell is the
    costliest conversion, and many findings share their event's time.
    """
    lists = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            values, idx = distinct(col)
            lists.append([None if i is None else values[i] for i in idx])
        else:
            lists.append(col.to_pylist())
    names = table.column_names
    return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]


def value_counts(col: pa.ChunkedArray | pa.Array) -> Counter[Any]:
    """``Counter(col.to_pylist())``, counted in Arrow: the same counts, the values in the
    order they first appear (so ``most_common`` breaks ties the same way)."""
    import pyarrow.compute as pc

    vc = pc.value_counts(col)
    return Counter(dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(),
                            strict=True)))


def codes(col: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A column's distinct values (an Arrow array) and each row's index among them (int64,
    the index of a null being their count), in one dictionary encoding."""
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(col)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.unify_dictionaries().combine_chunks() if enc.num_chunks \
            else pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([]))
    idx = enc.indices.fill_null(len(enc.dictionary)).to_numpy(zero_copy_only=False)
    return enc.dictionary, idx.astype(np.int64, copy=False)


def distinct(col: pa.ChunkedArray | pa.Array) -> tuple[list[Any], list[int | None]]:
    """A column's distinct values (as Python objects) and each row's index among them
    (None for a null): :func:`codes` as Python lists."""
    values, idx = codes(col)
    n = len(values)
    return values.to_pylist(), [None if i == n else i for i in idx.tolist()]
