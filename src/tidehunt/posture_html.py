"""The posture as one self-contained HTML page (no scripts, no network fetches).

Every string comes from package data or the case and is escaped; the page has no
JavaScript at all, so nothing in it can run.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tidehunt.posture import COLORS, LABELS, STATUSES, Posture, defence_layers

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:80em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}
.sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;margin-right:.4em;
vertical-align:-.1em}.gap{margin:.3em 0}.layer{border:1px solid #ddd;padding:.6em 1em;
margin:.8em 0;border-radius:4px}.muted{color:#666}
"""


def _e(v: Any) -> str:
    return escape(str(v), quote=True)


def render(posture: Posture, title: str) -> str:
    """The page, as text."""
    counts = posture.counts()
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
           'style-src \'unsafe-inline\'">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{_e(title)}</h1>", '<p id="counts">']
    out += [f'<span class="sw" style="background:{COLORS[s]}"></span>{counts[s]} '
            f"{_e(LABELS[s])}<br>" for s in STATUSES]
    out.append("</p><h2>Techniques</h2>")
    out.append('<table id="techniques"><tr><th>Technique</th><th>Name</th><th>Status</th>'
               "<th>Findings</th><th>Rules (with telemetry)</th><th>Note</th></tr>")
    for t in posture.techniques:
        note = t.why_not() if t.status == "not_covered" else ", ".join(t.logsources)
        out.append(
            f'<tr data-status="{_e(t.status)}"><td>{_e(t.id)}</td><td>{_e(t.name)}</td>'
            f'<td><span class="sw" style="background:{COLORS[t.status]}"></span>'
            f"{_e(t.status.replace('_', ' '))}</td><td>{t.findings}</td>"
            f"<td>{len(t.rules)} ({len(t.seen_rules)})</td><td>{_e(note)}</td></tr>")
    out.append("</table><h2>Telemetry gaps</h2>")
    if posture.gaps:
        out += [f'<p class="gap">{_e(g.message())}</p>' for g in posture.gaps]
    else:
        out.append('<p class="muted">None: every loaded rule has the events it reads.</p>')
    out.append("<h2>Defence layers</h2>")
    for layer in defence_layers(posture):
        shows, missing = layer["shows"], layer["missing"]
        out.append(f'<div class="layer" id="layer-{_e(layer["id"])}">'
                   f"<h3>{_e(layer['name'])}</h3>")
        out.append(f"<p><b>This case shows:</b> "
                   f"{_e(', '.join(shows['fired'] + shows['covered']) or 'nothing')}</p>")
        out.append(f"<p><b>Cannot see:</b> "
                   f"{_e(', '.join(missing['no_telemetry'] + missing['not_covered']) or 'nothing')}"
                   "</p>")
        out += [f'<p class="gap">{_e(g)}</p>' for g in missing["gaps"]]
        out.append("<p><b>Mitigations:</b> " + _e(", ".join(
            f"{k} {v}" for k, v in layer["mitigations"].items())) + "</p><ul>")
        out += [f"<li>{_e(a)}</li>" for a in layer["advice"]]
        out.append("</ul></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
