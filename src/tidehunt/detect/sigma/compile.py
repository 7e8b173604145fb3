"""Turn pySigma rules into plain data: a condition tree over atomic predicates.

Every modifier and condition is interpreted by pySigma; this module only reads the
parsed tree (``SigmaRule.detection.parsed_condition``) and writes each leaf as an
atomic predicate (one field, one value), so the plan can evaluate each distinct
predicate once for every rule that shares it. Nothing here touches event data.

Condition trees are JSON lists: ``["and", [..]]``, ``["or", [..]]``, ``["not", x]``,
``["p", predicate]``, ``["true"]``, ``["false"]``. Predicates are dicts with ``kind``:

* ``str``: ``op`` in eq/contains/startswith/endswith/glob, ``value``, ``cased``
* ``re``: ``value`` (RE2 syntax), ``flags``
* ``num``: ``op`` in eq/lt/lte/gt/gte, ``value``
* ``null`` / ``exists``: field presence
* ``fieldref``: ``other`` column equals this one
* a ``field`` of None means a keyword (searched in every text column)
"""

from __future__ import annotations

import re
from typing import Any

from tidehunt.model.rule import AttackRef, Severity

Tree = list[Any]
Pred = dict[str, Any]


class Unsupported(Exception):
    """A rule construct the engine cannot evaluate; the message is the reason shown."""


def _types() -> Any:
    import sigma.types as t

    return t


def string_pred(field: str | None, value: Any) -> Pred:
    """Atomic predicate for a SigmaString (wildcards) value."""
    t = _types()
    cased = isinstance(value, t.SigmaCasedString)
    if value.contains_placeholder():
        raise Unsupported(f"unresolved placeholder in value of {field or 'keyword'}")
    parts = list(value.s)
    multi, single = t.SpecialChars.WILDCARD_MULTI, t.SpecialChars.WILDCARD_SINGLE
    if parts == [multi]:
        return {"kind": "exists", "field": field, "value": True} if field else {
            "kind": "true"}
    lead = bool(parts) and parts[0] == multi
    trail = len(parts) > 1 and parts[-1] == multi
    core = parts[(1 if lead else 0):(-1 if trail else None)]
    if all(isinstance(p, str) for p in core):
        text = "".join(core)
        if not cased:
            text = text.lower()
        op = ("contains" if lead and trail else "endswith" if lead else
              "startswith" if trail else "eq")
        if field is None:
            op = "contains"  # keywords match anywhere in a field, as glob keywords do
        return {"kind": "str", "field": field, "op": op, "value": text, "cased": cased}
    rx = []
    # a keyword is searched in each field of the event, which the matcher joins with \x1f:
    # its wildcards stay inside one field
    any_char = "." if field is not None else "[^\x1f]"
    for p in parts:
        if p == multi:
            rx.append(any_char + "*")
        elif p == single:
            rx.append(any_char)
        else:
            rx.append(re.escape(p.lower() if not cased else p))
    body = "".join(rx)
    pattern = body if field is None else "^" + body + "$"
    # longest literal part, used as a multi-pattern prefilter
    lits = [p for p in parts if isinstance(p, str)]
    anchor = max(lits, key=len) if lits else ""
    return {"kind": "str", "field": field, "op": "glob", "value": "(?s)" + pattern,
            "cased": cased, "anchor": anchor if cased else anchor.lower()}


def value_tree(field: str | None, value: Any) -> Tree:
    """Condition tree for ``field == value`` for any Sigma value type."""
    t = _types()
    if isinstance(value, t.SigmaExpansion):
        return ["or", [value_tree(field, v) for v in value.values]]
    if isinstance(value, t.SigmaString):
        p = string_pred(field, value)
        return ["true"] if p["kind"] == "true" else ["p", p]
    if isinstance(value, t.SigmaNull):
        if field is None:
            raise Unsupported("null keyword")
        return ["p", {"kind": "null", "field": field}]
    if isinstance(value, t.SigmaExists):
        if field is None:
            raise Unsupported("exists without a field")
        return ["p", {"kind": "exists", "field": field, "value": bool(value.exists)}]
    if isinstance(value, t.SigmaBool):
        return ["p", {"kind": "str", "field": field, "op": "eq",
                      "value": "true" if value.boolean else "false", "cased": False}]
    if isinstance(value, t.SigmaNumber):
        if field is None:
            return ["p", {"kind": "str", "field": None, "op": "contains",
                          "value": str(value.number), "cased": False}]
        return ["p", {"kind": "num", "field": field, "op": "eq", "value": value.number}]
    if isinstance(value, t.SigmaCompareExpression):
        ops = {
            t.SigmaCompareExpression.CompareOperators.LT: "lt",
            t.SigmaCompareExpression.CompareOperators.LTE: "lte",
            t.SigmaCompareExpression.CompareOperators.GT: "gt",
            t.SigmaCompareExpression.CompareOperators.GTE: "gte",
        }
        return ["p", {"kind": "num", "field": field, "op": ops[value.op],
                      "value": value.number.number}]
    if isinstance(value, t.SigmaRegularExpression):
        flags = "".join(sorted({
            t.SigmaRegularExpressionFlag.IGNORECASE: "i",
            t.SigmaRegularExpressionFlag.MULTILINE: "m",
            t.SigmaRegularExpressionFlag.DOTALL: "s",
        }[f] for f in value.flags))
        return ["p", {"kind": "re", "field": field, "value": str(value.regexp), "flags": flags}]
    if isinstance(value, t.SigmaCIDRExpression):
        pats = value.expand(wildcard="*")
        return ["or", [value_tree(field, t.SigmaString(p)) for p in pats]]
    if isinstance(value, t.SigmaFieldReference):
        return ["p", {"kind": "fieldref", "field": field, "other": value.field}]
    raise Unsupported(f"value type {type(value).__name__} is not supported")


def condition_tree(node: Any) -> Tree:
    """Translate a pySigma parsed condition to a plain tree."""
    import sigma.conditions as c

    if isinstance(node, c.ConditionAND):
        return ["and", [condition_tree(a) for a in node.args]]
    if isinstance(node, c.ConditionOR):
        return ["or", [condition_tree(a) for a in node.args]]
    if isinstance(node, c.ConditionNOT):
        return ["not", condition_tree(node.args[0])]
    if isinstance(node, c.ConditionFieldEqualsValueExpression):
        return value_tree(node.field, node.value)
    if isinstance(node, c.ConditionValueExpression):
        return value_tree(None, node.value)
    raise Unsupported(f"condition element {type(node).__name__} is not supported")


def simplify(tree: Tree) -> Tree:
    """Flatten nested and/or, drop constant children."""
    op = tree[0]
    if op in ("and", "or"):
        kids: list[Tree] = []
        for k in (simplify(x) for x in tree[1]):
            if k[0] == op:
                kids.extend(k[1])
            elif (op == "and" and k == ["true"]) or (op == "or" and k == ["false"]):
                continue
            elif (op == "and" and k == ["false"]) or (op == "or" and k == ["true"]):
                return k
            else:
                kids.append(k)
        if not kids:
            return ["true"] if op == "and" else ["false"]
        return kids[0] if len(kids) == 1 else [op, kids]
    if op == "not":
        inner = simplify(tree[1])
        if inner == ["true"]:
            return ["false"]
        if inner == ["false"]:
            return ["true"]
        if inner[0] == "not":
            return inner[1]  # type: ignore[no-any-return]
        return ["not", inner]
    return tree


def _meta(rule: Any, path: str) -> dict[str, Any]:
    tags = [f"{t.namespace}.{t.name}" for t in (rule.tags or [])]
    attack, tactics = AttackRef.from_sigma_tags(tags)
    level = rule.level.name.lower() if rule.level is not None else "medium"
    try:
        Severity.parse(level)
    except ValueError:
        level = "medium"
    return {
        "id": str(rule.id) if rule.id else "",
        "name": getattr(rule, "name", None),
        "title": rule.title or "",
        "level": level,
        "status": rule.status.name.lower() if rule.status is not None else "",
        "description": (rule.description or "").strip(),
        "references": list(rule.references or []),
        "falsepositives": list(getattr(rule, "falsepositives", None) or []),
        "author": rule.author or "",
        "date": str(rule.date) if rule.date else "",
        "modified": str(rule.modified) if rule.modified else "",
        "tags": tags,
        "techniques": [a.technique_id for a in attack],
        "tactics": list(tactics),
        "path": path,
    }


def compile_rule(rule: Any, path: str) -> dict[str, Any]:
    """Compile one SigmaRule or SigmaCorrelationRule to plain data.

    Raises:
        Unsupported: with the reason.
    """
    from sigma.correlations import SigmaCorrelationRule

    meta = _meta(rule, path)
    if isinstance(rule, SigmaCorrelationRule):
        return {**meta, **_correlation(rule)}
    ls = rule.logsource
    trees = [condition_tree(c.parsed) for c in rule.detection.parsed_condition]
    tree = simplify(trees[0] if len(trees) == 1 else ["or", trees])
    return {
        **meta,
        "type": "detection",
        "logsource": [ls.category, ls.product, ls.service],
        "condition": tree,
    }


def _correlation(rule: Any) -> dict[str, Any]:
    ctype = rule.type.name.lower() if hasattr(rule.type, "name") else str(rule.type)
    ctype = {"event_count": "event_count", "value_count": "value_count",
             "temporal": "temporal", "temporal_ordered": "temporal_ordered"}.get(ctype, ctype)
    if ctype not in ("event_count", "value_count", "temporal", "temporal_ordered"):
        raise Unsupported(f"correlation type {ctype!r} is not supported")
    cond = rule.condition
    op = cond.op.name.lower() if cond is not None else "gte"
    return {
        "type": "correlation",
        "ctype": ctype,
        "refs": [str(r.reference) for r in rule.rules],
        "group_by": list(rule.group_by or []),
        "timespan": int(rule.timespan.seconds),
        "op": op,
        "count": cond.count if cond is not None else 1,
        "field": cond.fieldref if cond is not None else None,
        "generate": bool(rule.generate),
    }


#: An anchor and an alias outside quotes: only such a file can be a YAML bomb.
_ANCHOR = re.compile(r"(?:^|[\s\[\]{},:-])&[^\s\[\]{},]")
_ALIAS = re.compile(r"(?:^|[\s\[\]{},:-])\*[^\s\[\]{},*]")


def yaml_bomb(text: str) -> str | None:
    """Why a rule file's aliases make it a YAML bomb, or None.

    PyYAML shares aliased values, so "billion laughs" loads quickly and only explodes
    when pySigma walks it (a hang, then the memory limit); the document is measured first,
    as ``tidehunt.yamlconf`` does for the analyst's configuration files.
    """
    if not (_ANCHOR.search(text) and _ALIAS.search(text)):
        return None
    import yaml

    from tidehunt.yamlconf import MAX_VALUES, expanded_size

    try:
        docs = yaml_docs(text)
    except (yaml.YAMLError, RecursionError):
        return None  # pySigma reports what is wrong with it
    if expanded_size(docs) > MAX_VALUES:
        return (f"YAML aliases expand to more than {MAX_VALUES:,} values or refer to "
                "themselves (a YAML bomb?); not loaded")
    return None


def yaml_docs(text: str) -> list[Any]:
    """The YAML documents of a rule file, as ``yaml.safe_load_all`` gives them, parsed by
    libyaml where PyYAML has it (``CSafeLoader``). pySigma's ``SigmaCollection.from_yaml``
    uses the pure-Python loader: 3.3 s of the 2,535 benchmark rule files against 0.36 s
    (the same documents, every file), most of a cold plan compile."""
    import yaml

    from tidehunt.yamlconf import safe_loader

    return list(yaml.load_all(text, Loader=safe_loader()))


def compile_text(text: str, path: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Parse one YAML file (may hold several documents) and compile its rules.

    Returns compiled rules and errors ({path, id, title, reason}); never raises for bad
    rules, which are reported rather than dropped.
    """
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    rules: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    bomb = yaml_bomb(text)
    if bomb:
        return [], [{"path": path, "id": "", "title": "", "reason": bomb}]
    try:
        col = SigmaCollection.from_dicts(yaml_docs(text), collect_errors=True,
                                         resolve_references=False)
    except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return [], [{"path": path, "id": "", "title": "", "reason": f"unreadable: {exc}"}]
    except Exception as exc:  # noqa: BLE001 - yaml errors of every kind; reported, not fatal
        return [], [{"path": path, "id": "", "title": "",
                     "reason": f"invalid YAML: {str(exc).splitlines()[0][:200]}"}]
    for rule in col.rules:
        rid = str(getattr(rule, "id", "") or "")
        title = getattr(rule, "title", "") or ""
        errs = getattr(rule, "errors", None) or []
        if errs:
            errors.append({"path": path, "id": rid, "title": title,
                           "reason": "; ".join(str(e) for e in errs)[:500]})
            continue
        try:
            rules.append(compile_rule(rule, path))
        except Unsupported as exc:
            errors.append({"path": path, "id": rid, "title": title, "reason": str(exc)})
        except (SigmaError, ValueError, TypeError, AttributeError) as exc:
            errors.append({"path": path, "id": rid, "title": title,
                           "reason": f"cannot compile: {exc}"})
    return rules, errors
