"""The HTML report: one self-contained file (inline CSS, SVG and one script; nothing is
fetched) with the overview and timeline, the incidents step by step, an ATT&CK heat map,
the findings table with search and filters, the posture and the rule versions.

Evidence is attacker-written, so it never becomes markup: every string the page shows from
the case is escaped where the page is built here, and the findings the table renders come
in a JSON data block (``<`` written as ``\\u003c``) that the page's own script turns into
text nodes (``textContent``, never ``innerHTML``). A Content-Security-Policy allows only
that one script, by its hash, and no network, so an injected tag could not run even if
escaping failed. With JavaScript off the page still shows everything but the table.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from html import escape
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tidehunt.correlate import LEVEL_WEIGHT, TACTIC_ORDER
from tidehunt.model.finding import distinct
from tidehunt.model.report import RunReport

NAME = "html"
#: Findings embedded in the table (the rest are counted; findings.jsonl has them all).
MAX_TABLE_ROWS = 20000
LEVELS = ("critical", "high", "medium", "low", "informational")
#: Rows read into Python at a time, where every finding is counted.
_SLICE = 8192
LEVEL_COLOR = {"critical": "#8b0000", "high": "#d62728", "medium": "#ff9f1c",
               "low": "#1f77b4", "informational": "#999999"}

_CSS = """
:root{--b:#ddd;--m:#666}*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#222}
header{background:#0b2840;color:#fff;padding:1em 2em}header h1{margin:0;font-size:1.4em}
header p{margin:.2em 0 0;color:#cfe}nav{padding:.5em 2em;background:#eef3f7;
position:sticky;top:0;border-bottom:1px solid var(--b);z-index:2}nav a{margin-right:1.2em}
main{padding:0 2em 3em;max-width:110em}h2{font-size:1.2em;margin-top:1.8em;
border-bottom:2px solid #0b2840;padding-bottom:.2em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid var(--b);
border-radius:6px;padding:.6em 1em;min-width:9em}.card b{display:block;font-size:1.5em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid var(--b);padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f4f6f8}
.lv{display:inline-block;padding:0 .45em;border-radius:3px;color:#fff;font-size:.85em}
.lv-critical{background:#8b0000}.lv-high{background:#d62728}.lv-medium{background:#e08600}
.lv-low{background:#1f77b4}.lv-informational{background:#999}
.inc{border:1px solid var(--b);border-radius:6px;margin:1em 0;padding:.2em 1em 1em}
.inc h3{margin:.6em 0 .2em}.muted{color:var(--m)}ol.steps li{margin:.35em 0;
word-break:break-word}
.ev{font-family:ui-monospace,Consolas,monospace;font-size:.85em;color:#444;
word-break:break-all}.matrix td{min-width:8em;font-size:.85em}
.matrix td.hit{color:#fff}.filters{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}
.filters input{min-width:22em}#ftable td{font-size:.88em}#ftable td.s{max-width:60em;
word-break:break-word}code{word-break:break-all}
"""

_JS = """
(function(){
var data=JSON.parse(document.getElementById('findings-data').textContent);
var tb=document.querySelector('#ftable tbody'),q=document.getElementById('q');
var sel={level:document.getElementById('f-level'),host:document.getElementById('f-host'),
tactic:document.getElementById('f-tactic'),engine:document.getElementById('f-engine')};
function opts(el,vals){vals.sort().forEach(function(v){var o=document.createElement('option');
o.value=v;o.textContent=v;el.appendChild(o);});}
function uniq(f){var s={};data.forEach(function(r){[].concat(f(r)).forEach(function(v){
if(v)s[v]=1;});});return Object.keys(s);}
opts(sel.level,uniq(function(r){return r[1];}));opts(sel.host,uniq(function(r){return r[3];}));
opts(sel.tactic,uniq(function(r){return r[4];}));opts(sel.engine,uniq(function(r){return r[5];}));
function cell(tr,text,cls){var td=document.createElement('td');td.textContent=text||'';
if(cls)td.className=cls;tr.appendChild(td);return td;}
function draw(){var t=q.value.toLowerCase(),n=0;tb.textContent='';
var frag=document.createDocumentFragment();
for(var i=0;i<data.length;i++){var r=data[i];
if(sel.level.value&&r[1]!==sel.level.value)continue;
if(sel.host.value&&r[3]!==sel.host.value)continue;
if(sel.tactic.value&&r[4].indexOf(sel.tactic.value)<0)continue;
if(sel.engine.value&&r[5]!==sel.engine.value)continue;
if(t&&r.join(' ').toLowerCase().indexOf(t)<0)continue;
if(++n>2000)continue;var tr=document.createElement('tr');cell(tr,r[0]);
var lv=cell(tr,'');var s=document.createElement('span');s.className='lv lv-'+r[1];
s.textContent=r[1];lv.appendChild(s);cell(tr,r[2]);cell(tr,r[3]);cell(tr,r[4].join(', '));
cell(tr,r[5]);cell(tr,r[6],'s');cell(tr,r[7],'ev');frag.appendChild(tr);}
tb.appendChild(frag);document.getElementById('fcount').textContent=n+' finding(s)'+
(n>2000?' (first 2000 shown; narrow the filters)':'');}
q.addEventListener('input',draw);Object.keys(sel).forEach(function(k){
sel[k].addEventListener('change',draw);});draw();
document.documentElement.setAttribute('data-rendered','1');
})();
"""
_JS_HASH = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()


def _e(v: Any) -> str:
    return escape("" if v is None else str(v), quote=True)


def _json_block(obj: Any) -> str:
    """JSON safe inside a <script type=application/json> element."""
    text = orjson.dumps(obj).decode()
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _lv(level: str) -> str:
    lv = level if level in LEVEL_COLOR else "informational"
    return f'<span class="lv lv-{lv}">{_e(level)}</span>'


def render(report: RunReport, findings: pa.Table, out: IO[bytes]) -> None:
    """Write the page (UTF-8)."""
    out.write(page(report, findings).encode("utf-8"))


def page(report: RunReport, findings: pa.Table) -> str:
    """The whole report page as text."""
    # the page reads whole columns (counts, the timeline, the matrix) and the rows of only
    # the findings its table shows: never a Python dict per finding
    case = report.meta.case
    title = f"tidehunt report: {case.rstrip('/').rsplit('/', 1)[-1]}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        f"style-src 'unsafe-inline'; script-src 'sha256-{_JS_HASH}'; img-src data:; "
        "base-uri 'none'; form-action 'none'\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p>{_e(case)} &middot; {_e(report.meta.command)} "
        f"finished {_e(report.meta.finished)} &middot; tidehunt "
        f"{_e(report.meta.tool_version)}</p></header>",
        '<nav><a href="#overview">Overview</a><a href="#incidents">Incidents</a>'
        '<a href="#matrix">ATT&amp;CK</a><a href="#findings">Findings</a>'
        '<a href="#posture">Posture</a><a href="#versions">Rules and intel</a>'
        '<a href="#warnings">Warnings</a></nav><main>',
    ]
    parts += _overview(report, findings)
    parts += _incidents(report)
    parts += _matrix(findings)
    parts += _findings_table(findings.num_rows)
    parts += _posture(report)
    parts += _versions(report)
    parts += _warnings(report)
    parts.append("</main>")
    parts.append('<script type="application/json" id="findings-data">'
                 + _json_block(_table_rows(findings)) + "</script>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts)


def _values(col: pa.ChunkedArray) -> list[Any]:
    """A column as Python values, each distinct value one object."""
    values, idx = distinct(col)
    return [None if i is None else values[i] for i in idx]


def _overview(report: RunReport, findings: pa.Table) -> list[str]:
    st = report.stats
    level = _values(findings.column("level"))
    levels = Counter(level)
    hosts = {h for h in _values(findings.column("host")) if h}
    ing = st.get("ingest", {})
    cards = [("Findings", f"{report.findings_count:,}"),
             ("Incidents", str(len(report.incidents))),
             ("Hosts with findings", str(len(hosts))),
             ("Events in case", f"{st.get('sigma', {}).get('events', 0):,}"),
             ("Evidence files read by this run", str(ing.get("ingested", "")) if ing else "-"),
             ("Warnings", str(len(report.warnings)))]
    cards += [(lv.capitalize(), f"{levels.get(lv, 0):,}") for lv in LEVELS]
    out = ['<section id="overview"><h2>Overview</h2><div class="cards">']
    out += [f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards]
    out.append("</div>")
    out.append(_timeline_svg(findings.column("ts"), findings.column("level")))
    out.append("</section>")
    return out


def _micros(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column as microseconds since the epoch (nulls 0) and its validity."""
    ts = col.cast(pa.timestamp("us", getattr(col.type, "tz", None)))
    valid = pc.is_valid(ts)
    us = pc.fill_null(ts.cast(pa.int64()), 0)
    return (np.asarray(_flat(us), dtype=np.int64),
            np.asarray(_flat(valid), dtype=bool))


def _flat(a: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks() if a.num_chunks != 1 else a.chunk(0)
    out: np.ndarray = a.to_numpy(zero_copy_only=False)
    return out


def _codes(col: pa.ChunkedArray | pa.Array) -> tuple[list[Any], np.ndarray]:
    """A column's distinct values (Python objects) and each row's code among them (the
    number of values for a null)."""
    enc = pc.dictionary_encode(col)
    chunks = enc.unify_dictionaries().chunks if isinstance(enc, pa.ChunkedArray) else [enc]
    if not chunks:
        return [], np.zeros(0, np.int64)
    values = chunks[0].dictionary.to_pylist()
    codes = [np.asarray(c.indices.fill_null(len(values)).to_numpy(zero_copy_only=False),
                        np.int64) for c in chunks]
    return values, np.concatenate(codes)


def _epoch(us: int, tz: Any) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC if tz else None) + timedelta(microseconds=us)


def _timeline_svg(ts_col: pa.ChunkedArray, level_col: pa.ChunkedArray) -> str:
    """Findings over time as stacked bars per level (inline SVG, no script).

    Counted in numpy: a bar per step of time, a segment per level (110,600 findings took
    0.45 s as a loop over Python datetimes).
    """
    us, valid = _micros(ts_col)
    if not valid.any():
        return '<p class="muted" id="timeline">No timed findings.</p>'
    names, code = _codes(level_col)
    us, code = us[valid], code[valid]
    tz = getattr(ts_col.type, "tz", None)
    t0, t1 = int(us.min()), int(us.max())
    span = max((t1 - t0) / 1e6, 1.0)
    step = next((s for s in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400,
                             30 * 86400) if span / s <= 120), 90 * 86400)
    step_us = step * 1_000_000
    start_us = t0 // step_us * step_us
    start = _epoch(start_us, tz)
    nb = (t1 - start_us) // step_us + 1
    bins = (us - start_us) // step_us
    k = len(names) + 1  # the last code: a null level
    per = np.bincount(bins * k + code, minlength=nb * k).reshape(nb, k)
    top = int(per.sum(axis=1).max())
    col = {lv: names.index(lv) for lv in LEVELS if lv in names}
    w, h, left, bottom = 1000, 180, 40, 24
    bw = (w - left) / nb
    out = [f'<svg id="timeline" role="img" aria-label="findings over time" viewBox="0 0 {w} '
           f'{h + bottom}" width="100%" style="max-width:{w}px">',
           f'<text x="0" y="12" font-size="11">{top}</text>'
           f'<line x1="{left}" y1="{h}" x2="{w}" y2="{h}" stroke="#999"/>']
    for i in np.flatnonzero(per.sum(axis=1)).tolist():
        y = float(h)
        for lv in reversed(LEVELS):
            n = int(per[i, col[lv]]) if lv in col else 0
            if not n:
                continue
            bh = n / top * (h - 16)
            y -= bh
            t = start + timedelta(seconds=i * step)
            out.append(f'<rect class="bar" x="{left + i * bw:.1f}" y="{y:.1f}" '
                       f'width="{max(bw - 1, 1):.1f}" height="{bh:.1f}" '
                       f'fill="{LEVEL_COLOR[lv]}"><title>{_e(f"{t:%Y-%m-%d %H:%M} UTC")}: '
                       f"{n} {_e(lv)}</title></rect>")
    out.append(f'<text x="{left}" y="{h + 16}" font-size="11">{_e(f"{start:%Y-%m-%d %H:%M}")}'
               f'</text><text x="{w}" y="{h + 16}" font-size="11" text-anchor="end">'
               f'{_e(f"{_epoch(t1, tz):%Y-%m-%d %H:%M} UTC")}</text></svg>')
    return "".join(out)


def _incidents(report: RunReport) -> list[str]:
    out = ['<section id="incidents"><h2>Incidents</h2>']
    if not report.incidents:
        out.append('<p class="muted">No incident: no high or critical finding, and no '
                   "group of linked findings across two tactics.</p>")
    for inc in report.incidents:
        out.append(f'<div class="inc" id="{_e(inc["id"])}"><h3>{_lv(inc.get("level", ""))} '
                   f'{_e(inc["id"])}: {_e(inc.get("title"))}</h3>')
        out.append(f'<p>Score <b>{_e(inc.get("score"))}</b>: '
                   + "; ".join(_e(r) for r in inc.get("reasons", [])) + "</p>")
        nxt = inc.get("next_steps") or []
        if nxt:
            out.append("<details open><summary>What to do next</summary><ul>" + "".join(
                f"<li>{_e(x)}</li>" for x in nxt) + "</ul></details>")
        out.append('<ol class="steps">')
        for s in inc.get("steps", []):
            ev = "; ".join(
                _e(f"{e.get('table')} {e.get('source_file', '')} "
                   f"{e.get('record_id') if e.get('record_id') is not None else ''} "
                   f"{e.get('locator', '')}".strip()) for e in s.get("evidence", [])[:3])
            out.append(f"<li>{_lv(s.get('level', ''))} {_e(s.get('narrative'))}"
                       f'<div class="ev">{ev}</div></li>')
        out.append("</ol></div>")
    out.append("</section>")
    return out


def _matrix(findings: pa.Table) -> list[str]:
    from tidehunt.posture import load_coverage

    names = {t["id"]: t.get("name", "") for t in load_coverage().get("techniques", [])}
    # findings of one rule share their tactics and techniques: count each pair of lists
    pairs = _list_pairs(findings.select(["tactics", "techniques"]))
    cells: dict[str, Counter[str]] = defaultdict(Counter)
    for (tacs, techs), n in pairs.items():
        for tac in tacs:
            for tech in techs:
                cells[tac][tech] += n
    tactics = [t for t in TACTIC_ORDER if t in cells]
    out = ['<section id="matrix"><h2>ATT&amp;CK techniques that fired</h2>']
    if not tactics:
        out.append('<p class="muted">Nothing fired.</p></section>')
        return out
    top = max(n for c in cells.values() for n in c.values())
    out.append('<table class="matrix"><tr>' + "".join(
        f"<th>{_e(t.replace('-', ' '))}</th>" for t in tactics) + "</tr>")
    columns = [sorted(cells[t].items(), key=lambda kv: (-kv[1], kv[0])) for t in tactics]
    for i in range(max(len(c) for c in columns)):
        out.append("<tr>")
        for col in columns:
            if i >= len(col):
                out.append("<td></td>")
                continue
            tech, n = col[i]
            alpha = 0.35 + 0.65 * n / top
            out.append(f'<td class="hit" style="background:rgba(214,39,40,{alpha:.2f})" '
                       f'title="{_e(n)} finding(s)"><b>{_e(tech)}</b> {_e(names.get(tech, ""))}'
                       f" ({n})</td>")
        out.append("</tr>")
    out.append("</table></section>")
    return out


def _list_pairs(both: pa.Table) -> Counter[tuple[tuple[str, ...], tuple[str, ...]]]:
    """How many findings have each (tactics, techniques) pair of lists (null as empty).

    Counted in Arrow, each pair of lists joined into one text key, unless an item is
    null, empty or holds a separator (then one Python tuple per row, as before).
    """
    keys = []
    for name in ("tactics", "techniques"):
        col = both.column(name)
        flat = pc.list_flatten(col)
        if flat.null_count or pc.any(pc.match_substring_regex(flat, "^$|[\x1e\x1f]")).as_py():
            return _list_pairs_py(both)
        keys.append(pc.fill_null(pc.binary_join(col, "\x1f"), ""))
    pairs: Counter[tuple[tuple[str, ...], tuple[str, ...]]] = Counter()
    vc = pc.value_counts(pc.binary_join_element_wise(keys[0], keys[1], "\x1e"))
    for key, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(),
                      strict=True):
        tacs, techs = key.split("\x1e")
        pairs[(tuple(tacs.split("\x1f")) if tacs else (),
               tuple(techs.split("\x1f")) if techs else ())] += n
    return pairs


def _list_pairs_py(both: pa.Table) -> Counter[tuple[tuple[str, ...], tuple[str, ...]]]:
    pairs: Counter[tuple[tuple[str, ...], tuple[str, ...]]] = Counter()
    for start in range(0, both.num_rows, _SLICE):
        part = both.slice(start, _SLICE)
        pairs.update(zip((tuple(v or ()) for v in part.column("tactics").to_pylist()),
                         (tuple(v or ()) for v in part.column("techniques").to_pylist()),
                         strict=True))
    return pairs


def _table_rows(findings: pa.Table) -> list[list[Any]]:
    """The rows of the findings table: by level (worst first), then time (none last).

    The order is a stable sort, as Python's ``sorted`` of the rows by the same keys; only
    the first MAX_TABLE_ROWS rows become Python values, and of their evidence only the
    first entry.
    """
    if findings.num_rows == 0:
        return []
    names, code = _codes(findings.column("level"))
    weight = np.array([-LEVEL_WEIGHT.get(lv, 0) for lv in names] + [0], np.int64)[code]
    us, valid = _micros(findings.column("ts"))
    order = np.lexsort((us, ~valid, weight))[:MAX_TABLE_ROWS]
    top = findings.select(["ts", "level", "rule_title", "host", "tactics", "engine",
                           "summary", "evidence"]).take(pa.array(order, pa.int64()))
    ev = top.column("evidence").combine_chunks()
    first = pc.list_slice(ev, 0, 1)
    has = np.zeros(top.num_rows, bool)
    has[_flat(pc.list_parent_indices(first))] = True
    e0 = pc.list_flatten(first)
    at = np.cumsum(has) - 1
    sf, rid, loc = (e0.field(n).to_pylist() for n in ("source_file", "record_id", "locator"))
    whole = pc.floor_temporal(top.column("ts"), unit="second")  # %S alone shows no fraction
    whole = whole.cast(pa.timestamp("s", getattr(whole.type, "tz", None)))
    ts = pc.fill_null(pc.strftime(whole, "%Y-%m-%d %H:%M:%S"), "").to_pylist()
    cols = [top.column(n).to_pylist() for n in ("level", "rule_title", "host", "tactics",
                                               "engine", "summary")]
    out = []
    for i, (t, lv, title, host, tactics, engine, summary) in enumerate(zip(
            ts, *cols, strict=True)):
        cite = ""
        if has[i]:
            j = at[i]
            cite = " ".join(str(x) for x in (sf[j], rid[j] if rid[j] is not None
                                             else loc[j]) if x)
        out.append([t, lv, title, host or "", list(tactics or []), engine, summary or "",
                    cite])
    return out


def _findings_table(count: int) -> list[str]:
    more = (f' <span class="muted">({count - MAX_TABLE_ROWS:,} more in findings.jsonl)'
            "</span>" if count > MAX_TABLE_ROWS else "")
    return [
        f'<section id="findings"><h2>Findings</h2>{more}',
        '<div class="filters"><input id="q" type="search" placeholder="search all columns" '
        'aria-label="search"><select id="f-level"><option value="">any level</option>'
        '</select><select id="f-host"><option value="">any host</option></select>'
        '<select id="f-tactic"><option value="">any tactic</option></select>'
        '<select id="f-engine"><option value="">any engine</option></select>'
        '<span id="fcount" class="muted"></span></div>',
        '<noscript><p class="muted">The findings table needs JavaScript; findings.jsonl and '
        "timeline.csv hold the same rows.</p></noscript>",
        '<table id="ftable"><thead><tr><th>Time (UTC)</th><th>Level</th><th>Rule</th>'
        "<th>Host</th><th>Tactics</th><th>Engine</th><th>Summary</th><th>Evidence</th></tr>"
        "</thead><tbody></tbody></table></section>",
    ]


def _posture(report: RunReport) -> list[str]:
    pos = report.stats.get("posture") or {}
    out = ['<section id="posture"><h2>APT40 posture and gaps</h2>']
    if not pos:
        out.append('<p class="muted">No posture in this report.</p></section>')
        return out
    from tidehunt.posture import LABELS, STATUSES

    counts = pos.get("counts", {})
    out.append("<ul>" + "".join(f"<li>{_e(counts.get(s, 0))} {_e(LABELS[s])}</li>"
                                for s in STATUSES) + "</ul>")
    gaps = pos.get("gaps") or []
    if gaps:
        out.append("<p>Gaps:</p><ul>" + "".join(f"<li>{_e(g)}</li>" for g in gaps) + "</ul>")
    out.append(f'<p class="muted">ATT&amp;CK Navigator layer: '
               f"{_e(pos.get('navigator_layer', ''))}; the full posture: "
               "<code>tidehunt posture CASE --format html</code></p></section>")
    return out


def _versions(report: RunReport) -> list[str]:
    out = ['<section id="versions"><h2>Rules and intel</h2><table><tr><th>Pack</th>'
           "<th>Files</th><th>Newest rule</th><th>Age (days)</th><th>SHA-256</th></tr>"]
    for s in report.meta.rule_sources:
        out.append(f"<tr><td>{_e(s.name or s.path)}</td><td>{_e(s.files)}</td>"
                   f"<td>{_e(s.content_date)}</td><td>{_e(s.age_days)}</td>"
                   f"<td><code>{_e(s.sha256[:16])}</code></td></tr>")
    out.append("</table>")
    intel = report.stats.get("intel") or {}
    if intel.get("in_case"):
        out.append(f"<p>Intel: {_e(intel.get('in_case'))} indicators in the case, "
                   f"{_e(intel.get('expired', 0))} expired (they "
                   f"{'still match: retro-hunt' if intel.get('retro', True) else 'do not match'}"
                   f"), {_e(intel.get('warninglisted', 0))} on a warninglist.</p>")
        files = [f for f in intel.get("files", []) if isinstance(f, dict)]
        if files:
            out.append("<table><tr><th>Intel file</th><th>Format</th><th>Indicators</th>"
                       "<th>Status</th></tr>" + "".join(
                           f"<tr><td>{_e(f.get('path'))}</td><td>{_e(f.get('format', ''))}"
                           f"</td><td>{_e(f.get('indicators'))}</td><td>{_e(f.get('status'))}"
                           "</td></tr>" for f in files) + "</table>")
    else:
        out.append("<p>Intel: no indicator in this case.</p>")
    an = report.stats.get("analytics") or {}
    if an:
        out.append(f"<p>Analytics: {_e(an.get('ran'))} ran, {_e(an.get('not_applicable'))} "
                   f"not applicable, {_e(len(an.get('failed') or []))} failed.</p>")
    out.append("</section>")
    return out


def _warnings(report: RunReport) -> list[str]:
    out = [f'<section id="warnings"><h2>Warnings ({len(report.warnings)})</h2>']
    if report.warnings:
        out.append("<table><tr><th>Where</th><th>Message</th><th>Count</th></tr>")
        for w in report.warnings[:500]:
            out.append(f"<tr><td>{_e(w.get('path') or w.get('artefact'))}</td>"
                       f"<td>{_e(w.get('message'))}</td><td>{_e(w.get('count', 1))}</td></tr>")
        out.append("</table>")
    out.append("</section>")
    return out
