"""End-of-run summary for the terminal (rich tables)."""

from __future__ import annotations

from collections import Counter
from typing import IO

import pyarrow as pa

from tidehunt.model.report import RunReport

NAME = "terminal"
LEVELS = ("critical", "high", "medium", "low", "informational")
_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan",
          "informational": "dim"}


#: The findings columns the summary reads.
COLUMNS = ("rule_title", "level", "tactics")


def render(report: RunReport, findings: pa.Table, out: IO[str], *, color: bool = True,
           top: int = 10) -> None:
    """Print the summary: input, rules, findings by level, top rules, tactics, timings."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console(file=out, no_color=not color, highlight=False, soft_wrap=False,
                  width=110)
    st = report.stats
    ing = st.get("ingest", {})
    sig = st.get("sigma", {})
    t = Table(title="tidehunt run summary", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    if ing:
        t.add_row("Evidence files", f"{ing.get('found', 0)} found, {ing.get('ingested', 0)} "
                  f"ingested, {ing.get('skipped', 0)} already in case, {ing.get('failed', 0)} "
                  f"failed, {ing.get('unsupported', 0)} not recognised")
        t.add_row("Events read", f"{ing.get('records', 0):,}")
    t.add_row("Events in case", f"{sig.get('events', 0):,}")
    t.add_row("Input warnings", str(len(report.warnings)))
    t.add_row("Rules", f"{sig.get('rules_loaded', 0)} loaded, {sig.get('rules_active', 0)} "
              f"active, {sig.get('rules_failed', 0)} failed, "
              f"{sig.get('rules_not_applicable', 0)} not applicable"
              + (f", {sig.get('correlations', 0)} correlations" if sig.get("correlations")
                 else ""))
    for src in report.meta.rule_sources:
        age = f", {src.age_days} days old" if src.age_days is not None else ""
        t.add_row("  pack", escape(f"{src.name or src.path} ({src.files} files{age})"))
    t.add_row("Findings", f"{report.findings_count:,}")
    con.print(t)
    levels = Counter(findings.column("level").to_pylist()) if findings.num_rows else Counter()
    lt = Table(title="Findings by level")
    lt.add_column("Level")
    lt.add_column("Findings", justify="right")
    for lv in LEVELS:
        lt.add_row(f"[{_STYLE[lv]}]{lv}[/]", f"{levels.get(lv, 0):,}")
    con.print(lt)
    if findings.num_rows:
        titles = findings.select(["rule_title", "level"]).to_pylist()
        counts = Counter((r["rule_title"], r["level"]) for r in titles)
        order = sorted(counts.items(), key=lambda kv: (LEVELS.index(kv[0][1])
                                                       if kv[0][1] in LEVELS else 9, -kv[1]))
        rt = Table(title=f"Top rules (of {len(counts)})")
        rt.add_column("Level")
        rt.add_column("Rule")
        rt.add_column("Findings", justify="right")
        for (title, lv), n in order[:top]:
            rt.add_row(f"[{_STYLE.get(lv, '')}]{lv}[/]", escape(title), f"{n:,}")
        con.print(rt)
        tac = Counter(x for row in findings.column("tactics").to_pylist() for x in (row or []))
        if tac:
            tt = Table(title="ATT&CK tactics")
            tt.add_column("Tactic")
            tt.add_column("Findings", justify="right")
            for name, n in tac.most_common():
                tt.add_row(name, f"{n:,}")
            con.print(tt)
    if report.incidents:
        it = Table(title=f"Incidents ({len(report.incidents)})", show_lines=True)
        it.add_column("Incident")
        it.add_column("Level")
        it.add_column("Score", justify="right")
        it.add_column("What")
        for inc in report.incidents[:top]:
            lv = inc.get("level", "")
            it.add_row(inc["id"], f"[{_STYLE.get(lv, '')}]{lv}[/]", str(inc.get("score", "")),
                       escape(f"{inc.get('title', '')}: {len(inc.get('steps', []))} steps, "
                              f"{len(inc.get('findings', []))} findings"))
        con.print(it)
    if report.rule_errors:
        et = Table(title=f"Rules not used ({len(report.rule_errors)}; all in report.json and "
                         "'tidehunt rules lint')")
        et.add_column("Rule")
        et.add_column("Reason")
        for e in report.rule_errors[:top]:
            et.add_row(escape(e.get("title") or e.get("path", "")), escape(e["reason"][:120]))
        con.print(et)
    timing = st.get("seconds", {})
    if timing:
        con.print("Timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timing.items()))
    for w in report.warnings[:10]:
        where = w.get("path") or w.get("artefact") or ""
        con.print("[yellow]warning[/]: " + escape(f"{where}: {w.get('message')} "
                                                  f"(x{w.get('count', 1)})"),
                  soft_wrap=True)  # a path stays whole, to copy
    if len(report.warnings) > 10:
        con.print(f"… {len(report.warnings) - 10} more warnings in report.json")
