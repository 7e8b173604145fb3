"""Property test: the compiled Sigma engine against a reference evaluator written here
from the Sigma specification, on random small rules and random events.

Rules draw field names from a small set, modifiers from those the engine supports
(contains, startswith, endswith, all, re with flags, cased, windash, base64offset, cidr,
exists, numeric comparisons, null), values with wildcards and escapes, keyword lists, and
conditions built from and/or/not, ``1 of``/``all of`` over patterns and ``them``, printed
with only the parentheses precedence needs. Events are rows of a ``windows`` table with
some fields missing. The engine (pySigma parse, tidehunt compile, bulk match over Arrow)
and the reference (a plain loop over events, nothing shared with the engine) must select
the same rows. The reference reads the rule YAML itself, so pySigma's parsing is under
test too.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
import yaml
from hypothesis import given, note, settings
from hypothesis import strategies as st

from tests.fuzz._contract import examples
from tidehunt.detect.sigma.compile import compile_text
from tidehunt.detect.sigma.plan import build
from tidehunt.detect.sigma.run import run_groups

TEXT_FIELDS = ("CommandLine", "Image", "User")
ALPHABET = "aAb- /\\*?é"
CHANNEL = "Microsoft-Windows-Sysmon/Operational"
DASHES = ("-", "/", "\u2013", "\u2014", "\u2015")

# ---- events -----------------------------------------------------------------------------

text_value = st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=6))
ip_value = st.one_of(st.none(), st.sampled_from(
    ["10.0.0.1", "10.1.2.3", "10.255.255.255", "11.0.0.0", "192.168.1.1", "192.168.1.200",
     "0.0.0.0", "127.0.0.1"]))  # values that are no address: test_cidr_on_non_addresses
count_value = st.one_of(st.none(), st.integers(-3, 20).map(str), st.just(" 7"))
event = st.fixed_dictionaries({
    **dict.fromkeys(TEXT_FIELDS, text_value), "SourceIp": ip_value, "Count": count_value})


def table_of(events: list[dict[str, Any]]) -> pa.Table:
    n = len(events)
    cols: dict[str, pa.Array] = {
        "ts": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", "UTC")),
        "channel": pa.array([CHANNEL] * n), "event_id": pa.array([1] * n, pa.int64()),
        "host": pa.array(["h1"] * n)}
    for f in (*TEXT_FIELDS, "SourceIp", "Count"):
        cols[f] = pa.array([e[f] for e in events], pa.string())
    return pa.table(cols)


def engine_hits(rule_yaml: str, events: list[dict[str, Any]]) -> set[int] | str:
    """Rows the compiled engine selects, or the reason the rule did not compile."""
    rules, errors = compile_text(rule_yaml, "fuzz.yml")
    if errors or not rules:
        return "; ".join(e["reason"] for e in errors) or "no rule"
    plan = build("fuzz", rules, [], [])
    if plan.errors or not plan.groups:
        return "; ".join(e["reason"] for e in plan.errors) or "skipped"
    hits = run_groups(plan, plan.groups, table_of(events))
    return {int(r) for rows in hits.rows for r in rows}


# ---- the reference evaluator (from the specification, not from the engine) ---------------

STAR, ONE = object(), object()


def wildcards(value: str) -> list[Any]:
    """A value as characters and wildcards: ``*`` any run, ``?`` one character; ``\\``
    escapes ``*``, ``?`` and itself, any other backslash is a plain character."""
    out: list[Any] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in "*?\\":
            out.append(value[i + 1])
            i += 2
            continue
        out.append(STAR if c == "*" else ONE if c == "?" else c)
        i += 1
    return out


def glob_regex(value: str | list[Any], cased: bool) -> re.Pattern[str]:
    """The whole-value regex of a value (or of its characters and wildcards)."""
    toks = wildcards(value) if isinstance(value, str) else value
    body = "".join(".*" if t is STAR else "." if t is ONE else re.escape(t) for t in toks)
    return re.compile(body, re.S | (0 if cased else re.I))


def windash_variants(value: str) -> list[str]:
    """Every spelling with each parameter dash (a ``-`` or ``/`` after the start or a
    non-word character and before a word character) as any of the five dashes."""
    spots = [i for i, c in enumerate(value) if c in "-/"
             and (i == 0 or not (value[i - 1].isalnum() or value[i - 1] == "_"))
             and i + 1 < len(value) and (value[i + 1].isalnum() or value[i + 1] == "_")]
    out = [value]
    for i in spots:
        out = [v[:i] + d + v[i + 1:] for v in out for d in DASHES]
    return out


def base64_variants(value: str) -> list[str]:
    """The three encodings of ``value`` at byte offsets 0, 1 and 2, with the characters
    that depend on the unknown neighbours cut off (the specification's table)."""
    raw = value.encode()
    out = []
    for i in range(3):
        enc = base64.b64encode(b" " * i + raw).decode()
        start = (0, 2, 3)[i]
        end = (None, -3, -2)[(len(raw) + i) % 3]
        out.append(enc[start:end])
    return out


def value_matches(field_value: str | None, value: Any, mods: list[str]) -> bool:
    """One value of a detection item against one event field."""
    if "exists" in mods:
        return (field_value is not None) == bool(value)
    if value is None:
        return field_value is None
    if field_value is None:
        return False
    if "cidr" in mods:
        try:
            return ipaddress.ip_address(field_value) in ipaddress.ip_network(value,
                                                                             strict=False)
        except ValueError:
            return False
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            n = int(field_value.strip())
        except ValueError:
            return False
        op = next((m for m in mods if m in ("lt", "lte", "gt", "gte")), "eq")
        return {"eq": n == value, "lt": n < value, "lte": n <= value, "gt": n > value,
                "gte": n >= value}[op]
    text = str(value)
    if "re" in mods:
        flags = (re.I if "i" in mods else 0) | (re.M if "m" in mods else 0) | (
            re.S if "s" in mods else 0)
        return re.search(text, field_value, flags) is not None
    if "base64offset" in mods:  # the encodings are plain text, not wildcards
        variants = [list(v) for v in base64_variants(text)]
    else:
        variants = [wildcards(v) for v in (windash_variants(text) if "windash" in mods
                                           else [text])]
    cased = "cased" in mods
    for v in variants:
        if "contains" in mods:
            v = [STAR, *v, STAR]
        elif "startswith" in mods:
            v = [*v, STAR]
        elif "endswith" in mods:
            v = [STAR, *v]
        if glob_regex(v, cased).fullmatch(field_value):
            return True
    return False


def item_matches(ev: dict[str, Any], key: str, values: Any) -> bool:
    field, *mods = key.split("|")
    vals = values if isinstance(values, list) else [values]
    got = [value_matches(ev.get(field), v, mods) for v in vals]
    return all(got) if "all" in mods else any(got)


def keyword_matches(ev: dict[str, Any], kw: str) -> bool:
    texts = [v for v in ev.values() if v is not None]
    pat = glob_regex([STAR, *wildcards(kw), STAR], False)
    return any(pat.fullmatch(t) for t in texts)


def selection_matches(ev: dict[str, Any], sel: Any) -> bool:
    if isinstance(sel, dict):
        return all(item_matches(ev, k, v) for k, v in sel.items())
    if all(isinstance(s, dict) for s in sel):
        return any(selection_matches(ev, s) for s in sel)
    return any(keyword_matches(ev, str(k)) for k in sel)


def names_for(pattern: str, names: list[str]) -> list[str]:
    if pattern == "them":
        return names
    rx = glob_regex(pattern, True)
    return [n for n in names if rx.fullmatch(n)]


def condition_true(node: tuple, ev: dict[str, Any], dets: dict[str, Any]) -> bool:
    op = node[0]
    if op == "id":
        return selection_matches(ev, dets[node[1]])
    if op == "not":
        return not condition_true(node[1], ev, dets)
    if op in ("and", "or"):
        a, b = condition_true(node[1], ev, dets), condition_true(node[2], ev, dets)
        return (a and b) if op == "and" else (a or b)
    hits = [selection_matches(ev, dets[n]) for n in names_for(node[1], sorted(dets))]
    return any(hits) if op == "1of" else all(hits)


def reference_hits(dets: dict[str, Any], cond: tuple, events: list[dict[str, Any]]) -> set[int]:
    rows = set()
    for i, e in enumerate(events):
        ev = {"channel": CHANNEL, "event_id": "1", "host": "h1", **e}
        if condition_true(cond, ev, dets):
            rows.add(i)
    return rows


# ---- rules ------------------------------------------------------------------------------

plain = st.text(alphabet="aAb- /", min_size=1, max_size=4)  # non-ASCII: see the xfail
wild = st.text(alphabet="aAb- /\\*?", min_size=0, max_size=5)
REGEX_ATOMS = ["a", "b", "A", "-", "/", " ", ".", "[ab]", "[^a]", "\\\\", "\\*", "é"]


@st.composite
def regex(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        atom = draw(st.sampled_from(REGEX_ATOMS))
        parts.append(atom + draw(st.sampled_from(["", "", "*", "+", "?"])))
    body = "".join(parts)
    if draw(st.booleans()):
        body = body + "|" + draw(st.sampled_from(REGEX_ATOMS))
    return draw(st.sampled_from(["", "^"])) + body + draw(st.sampled_from(["", "$"]))


@st.composite
def text_item(draw: st.DrawFn) -> tuple[str, Any]:
    field = draw(st.sampled_from(TEXT_FIELDS))
    kind = draw(st.sampled_from(["eq", "contains", "startswith", "endswith", "all", "re",
                                 "cased", "windash", "b64", "null", "exists"]))
    many = draw(st.booleans())

    def values(s: st.SearchStrategy) -> Any:
        return draw(st.lists(s, min_size=1, max_size=3)) if many else draw(s)

    if kind == "eq":
        return field, values(wild)
    if kind in ("contains", "startswith", "endswith"):
        return f"{field}|{kind}", values(wild)
    if kind == "all":
        return f"{field}|contains|all", draw(st.lists(wild, min_size=1, max_size=3))
    if kind == "re":
        flags = draw(st.sampled_from(["", "|i", "|s", "|m"]))
        return f"{field}|re{flags}", values(regex())
    if kind == "cased":
        return f"{field}|{draw(st.sampled_from(['', 'contains|']))}cased", values(wild)
    if kind == "windash":
        dashed = st.text(alphabet="ab -/", min_size=1, max_size=5)
        return f"{field}|windash{draw(st.sampled_from(['', '|contains']))}", values(dashed)
    if kind == "b64":
        return f"{field}|base64offset|contains", values(plain)
    if kind == "null":
        return field, None
    return f"{field}|exists", draw(st.booleans())


@st.composite
def other_item(draw: st.DrawFn) -> tuple[str, Any]:
    if draw(st.booleans()):
        nets = st.builds(lambda a, p: str(ipaddress.ip_network(f"{a}/{p}", strict=False)),
                         st.sampled_from(["10.0.0.0", "10.1.2.3", "192.168.1.128", "0.0.0.0",
                                          "127.0.0.1"]), st.integers(0, 32))
        many = draw(st.booleans())
        return "SourceIp|cidr", draw(st.lists(nets, min_size=1, max_size=3)) if many \
            else draw(nets)
    op = draw(st.sampled_from(["", "|lt", "|lte", "|gt", "|gte"]))
    return f"Count{op}", draw(st.integers(-2, 20))


@st.composite
def selection(draw: st.DrawFn) -> Any:
    def one_map() -> dict[str, Any]:
        items = draw(st.lists(st.one_of(text_item(), other_item()), min_size=1, max_size=3))
        return dict(items)

    shape = draw(st.sampled_from(["map", "map", "map", "list", "keywords"]))
    if shape == "map":
        return one_map()
    if shape == "list":
        return [one_map() for _ in range(draw(st.integers(1, 2)))]
    return draw(st.lists(st.text(alphabet="aAb-/ *?", min_size=1, max_size=4), min_size=1,
                         max_size=3))


@st.composite
def condition(draw: st.DrawFn, names: list[str], depth: int = 0) -> tuple:
    leaf = st.one_of(st.sampled_from(names).map(lambda n: ("id", n)),
                     st.tuples(st.sampled_from(["1of", "allof"]),
                               st.sampled_from(["them", "sel*", "filter*", "*1", names[0]])))
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(leaf)
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return ("not", draw(condition(names, depth + 1)))
    return (op, draw(condition(names, depth + 1)), draw(condition(names, depth + 1)))


PREC = {"or": 1, "and": 2, "not": 3}


def render(node: tuple, parent: int = 0, paren_all: bool = False) -> str:
    op = node[0]
    if op == "id":
        return node[1]
    if op in ("1of", "allof"):
        return f"{'1' if op == '1of' else 'all'} of {node[1]}"
    if op == "not":
        text = "not " + render(node[1], PREC["not"], paren_all)
    else:
        text = (f"{render(node[1], PREC[op], paren_all)} {op} "
                f"{render(node[2], PREC[op] + 1, paren_all)}")
    return f"({text})" if paren_all or PREC[op] < parent else text


@st.composite
def rule(draw: st.DrawFn) -> tuple[str, dict[str, Any], tuple]:
    names = draw(st.lists(st.sampled_from(["sel1", "sel2", "filter1", "sel_x"]), min_size=1,
                          max_size=3, unique=True))
    dets = {n: draw(selection()) for n in names}
    cond = draw(condition(names))
    # patterns that name no selection are errors in Sigma: keep the ones that do
    for node in _nodes(cond):
        if node[0] in ("1of", "allof") and not names_for(node[1], names):
            cond = ("id", names[0])
            break
    text = render(cond, paren_all=draw(st.integers(0, 3)) == 0)
    doc = {"title": "fuzz", "id": "0e5a7d62-0000-4000-8000-000000000001", "status": "test",
           "level": "low", "logsource": {"product": "windows"},
           "detection": {**dets, "condition": text}}
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), dets, cond


def _nodes(node: tuple) -> list[tuple]:
    out = [node]
    for k in node[1:]:
        if isinstance(k, tuple):
            out += _nodes(k)
    return out


@settings(max_examples=examples(8))
@given(rule(), st.lists(event, min_size=1, max_size=12))
def test_engine_agrees_with_reference(r, events):
    text, dets, cond = r
    note(text)
    got = engine_hits(text, events)
    if isinstance(got, str):
        pytest.fail(f"a rule the reference evaluates did not compile: {got}\n{text}")
    want = reference_hits(dets, cond, events)
    assert got == want, {"only engine": sorted(got - want), "only reference":
                         sorted(want - got), "events": [events[i] for i in
                                                        sorted(got ^ want)]}


@pytest.mark.xfail(strict=True, reason=(
    "justified difference: cidr is matched as pySigma expands it for backends without an "
    "address type, as prefixes of the address text (10.0.0.0/8 -> '10.*', 0.0.0.0/0 -> "
    "'*'), so a value that is no address but starts like one (or any value, for /0) "
    "matches; Windows address fields hold addresses or '-', which no prefix but /0 takes"))
def test_cidr_on_non_addresses():
    dets = {"sel1": {"SourceIp|cidr": "0.0.0.0/0"}}
    events = [{**dict.fromkeys(TEXT_FIELDS), "Count": None, "SourceIp": v}
              for v in ("-", "10.0.0.1", "not-an-ip")]
    doc = {"title": "t", "logsource": {"product": "windows"},
           "detection": {**dets, "condition": "sel1"}}
    assert engine_hits(yaml.safe_dump(doc), events) == reference_hits(dets, ("id", "sel1"),
                                                                      events)


@pytest.mark.xfail(strict=True, reason=(
    "justified difference (pySigma): base64offset cuts the three encodings by the value's "
    "length in characters, not in UTF-8 bytes, so a non-ASCII value gets wrong patterns "
    "(for 'é' one is empty and matches every value); the engine takes pySigma's modifiers "
    "as they are, SigmaHQ's rules use ASCII values"))
def test_base64offset_non_ascii():
    dets = {"sel1": {"Image|base64offset|contains": "é"}}
    events = [{**dict.fromkeys(TEXT_FIELDS), "Count": None, "SourceIp": None, "Image": v}
              for v in ("", "x", base64.b64encode("é".encode()).decode())]
    doc = {"title": "t", "logsource": {"product": "windows"},
           "detection": {**dets, "condition": "sel1"}}
    assert engine_hits(yaml.safe_dump(doc, allow_unicode=True), events) == reference_hits(
        dets, ("id", "sel1"), events)


def _ev(**kw: str | None) -> dict[str, Any]:
    return {**dict.fromkeys((*TEXT_FIELDS, "SourceIp", "Count")), **kw}


#: Disagreements the property found, fixed in the engine and kept as examples.
FOUND = [
    # "Count|lt" over " 7": Arrow's cast of a number with blanks raised and ended the run
    ({"sel1": {"Count|lt": 0}}, [_ev(Count=" 7"), _ev(Count="-1")]),
    # a keyword with a trailing wildcard was anchored at the start of a field, unlike
    # plain keywords and those with inner wildcards (substrings of a field)
    ({"sel1": ["A*"]}, [_ev(), _ev(Image="xa"), _ev(User="bA")]),
    # a keyword's wildcard could span two fields of the event (matched over their join)
    ({"sel1": ["a*b"]}, [_ev(Image="xa", User="b"), _ev(Image="a-b")]),
    ({"sel1": ["a?b"]}, [_ev(Image="a", User="b")]),
]


@pytest.mark.parametrize(("dets", "events"), FOUND)
def test_found_disagreements(dets, events):
    doc = {"title": "t", "logsource": {"product": "windows"},
           "detection": {**dets, "condition": "sel1"}}
    assert engine_hits(yaml.safe_dump(doc), events) == reference_hits(dets, ("id", "sel1"),
                                                                      events)
