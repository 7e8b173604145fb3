"""The compiled plan: every rule's condition over a shared, de-duplicated predicate table.

A ``Plan`` is plain data (JSON-serialisable), cached by the content hash of the rule
files, so a hunt that reuses a rule set pays neither YAML parsing nor compilation, and the
same plan can be shipped to other processes or a Spark executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tidehunt.detect.sigma.compile import Tree
from tidehunt.detect.sigma.logsource import partition

PLAN_VERSION = 5  # 5: keywords are substrings of one field whatever their wildcards


@dataclass
class Group:
    """Rules that share one partition (channel and event ID sets)."""

    channels: list[str] | None
    event_ids: list[int] | None
    rules: list[int] = field(default_factory=list)


@dataclass
class Plan:
    """Compiled rule set."""

    key: str
    rules: list[dict[str, Any]]
    preds: list[dict[str, Any]]
    errors: list[dict[str, str]]
    skipped: list[dict[str, str]]
    sources: list[dict[str, Any]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    #: derived tables the matcher memoises per plan (not serialised)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> bytes:
        """Serialise for the cache."""
        return orjson.dumps({
            "version": PLAN_VERSION, "key": self.key, "rules": self.rules,
            "preds": self.preds, "errors": self.errors, "skipped": self.skipped,
            "sources": self.sources,
            "groups": [[g.channels, g.event_ids, g.rules] for g in self.groups],
        })

    @classmethod
    def from_json(cls, data: bytes) -> Plan | None:
        """Load from the cache; None if written by another plan version."""
        d = orjson.loads(data)
        if d.get("version") != PLAN_VERSION:
            return None
        return cls(d["key"], d["rules"], d["preds"], d["errors"], d["skipped"], d["sources"],
                   [Group(c, e, r) for c, e, r in d["groups"]])

    def detection_rules(self) -> list[int]:
        """Indices of detection (not correlation) rules."""
        return [i for i, r in enumerate(self.rules) if r["type"] == "detection"]


def _intern(tree: Tree, preds: list[dict[str, Any]], index: dict[bytes, int]) -> Tree:
    op = tree[0]
    if op == "p":
        key = orjson.dumps(tree[1], option=orjson.OPT_SORT_KEYS)
        i = index.get(key)
        if i is None:
            i = index[key] = len(preds)
            preds.append(tree[1])
        return ["p", i]
    if op in ("and", "or"):
        return [op, [_intern(t, preds, index) for t in tree[1]]]
    if op == "not":
        return ["not", _intern(tree[1], preds, index)]
    return tree


def fields_of(tree: Tree, preds: list[dict[str, Any]], out: set[str]) -> bool:
    """Add the fields a tree reads to ``out``; True if it has a keyword (any field)."""
    op = tree[0]
    if op == "p":
        p = preds[tree[1]]
        if p.get("field") is None:
            return True
        out.add(p["field"])
        if p.get("other"):
            out.add(p["other"])
        return False
    if op in ("and", "or"):
        kw = False
        for t in tree[1]:
            kw = fields_of(t, preds, out) or kw
        return kw
    if op == "not":
        return fields_of(tree[1], preds, out)
    return False


def build(key: str, compiled: list[dict[str, Any]], errors: list[dict[str, str]],
          sources: list[dict[str, Any]]) -> Plan:
    """Intern predicates, map logsources to partitions, group rules by partition."""
    preds: list[dict[str, Any]] = []
    index: dict[bytes, int] = {}
    rules: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    seen_ids: dict[str, str] = {}
    for r in compiled:
        if r["id"] and r["id"] in seen_ids:
            errors.append({"path": r["path"], "id": r["id"], "title": r["title"],
                           "reason": f"duplicate rule id (also in {seen_ids[r['id']]}); "
                                     "this copy is not used"})
            continue
        if r["id"]:
            seen_ids[r["id"]] = r["path"]
        if r["type"] == "detection":
            part = partition(*r["logsource"])
            if part["table"] is None:
                skipped.append({"path": r["path"], "id": r["id"], "title": r["title"],
                                "reason": part["reason"]})
                continue
            r = {**r, "table": part["table"], "channels": part["channels"],
                 "event_ids": part["event_ids"],
                 "condition": _intern(r["condition"], preds, index)}
            fields: set[str] = set()
            r["keyword"] = fields_of(r["condition"], preds, fields)
            r["fields"] = sorted(fields)
        rules.append(r)
    _check_regexes(rules, preds, errors)
    groups: dict[tuple[Any, Any], Group] = {}
    for i, r in enumerate(rules):
        if r["type"] != "detection":
            continue
        k = (tuple(r["channels"]) if r["channels"] else None,
             tuple(r["event_ids"]) if r["event_ids"] else None)
        g = groups.get(k)
        if g is None:
            g = groups[k] = Group(r["channels"], r["event_ids"])
        g.rules.append(i)
    return Plan(key, rules, preds, errors, skipped, sources, list(groups.values()))


def _check_regexes(rules: list[dict[str, Any]], preds: list[dict[str, Any]],
                   errors: list[dict[str, str]]) -> None:
    """RE2 (Arrow's regex engine) lacks look-around and back-references: report those."""
    import pyarrow as pa
    import pyarrow.compute as pc

    bad: dict[int, str] = {}
    probe = pa.array(["x"])
    for i, p in enumerate(preds):
        if p["kind"] in ("re", "str") and (p["kind"] == "re" or p["op"] == "glob"):
            try:
                pc.match_substring_regex(probe, regex_of(p))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                bad[i] = str(exc).splitlines()[0][:200]
    if not bad:
        return
    keep = []
    for r in rules:
        if r["type"] == "detection":
            used: list[int] = []
            _preds_in(r["condition"], used)
            hit = [bad[i] for i in used if i in bad]
            if hit:
                errors.append({"path": r["path"], "id": r["id"], "title": r["title"],
                               "reason": f"regular expression not supported by RE2: {hit[0]}"})
                continue
        keep.append(r)
    rules[:] = keep


def _preds_in(tree: Tree, out: list[int]) -> None:
    if tree[0] == "p":
        out.append(tree[1])
    elif tree[0] in ("and", "or"):
        for t in tree[1]:
            _preds_in(t, out)
    elif tree[0] == "not":
        _preds_in(tree[1], out)


def regex_of(p: dict[str, Any]) -> str:
    """The RE2 pattern of a ``re`` or glob predicate."""
    if p["kind"] == "re":
        flags = p.get("flags") or ""
        return f"(?{flags}){p['value']}" if flags else str(p["value"])
    return str(p["value"])
