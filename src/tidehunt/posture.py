"""APT40 technique coverage of a case: what fired, what could have, and what cannot be seen.

The coverage model (``data/coverage/apt40.yml``) lists every APT40 technique with the
SigmaHQ rules that match the group's procedures, the non-Sigma detectors that see it, or why
only the defender's configuration can show it. Bundled and user rules cover a technique
through their ATT&CK tags as well. ``assess`` joins that with the loaded rule plan, the
telemetry the case actually holds (event counts per channel and event ID) and the findings
of the last run, giving each technique one status:

* ``fired``: a finding of this case carries the technique (or one of its sub-techniques);
* ``covered``: a loaded rule covers it and the case holds the events that rule reads;
* ``no_telemetry``: rules cover it, but the case has none of the events they read;
* ``not_covered``: no loaded rule covers it (a planned detector, or assessment only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from tidehunt.yamlconf import load_bundled

#: Non-Sigma detectors named in the coverage model, with the issue that builds each one.
DETECTORS: dict[str, dict[str, str]] = {
    "mail": {"what": "spear-phishing mail and attachment analysis",
             "state": "built (th-analytic-0022..0032; needs .eml, .msg or mbox evidence)"},
    "web": {"what": "web-root scan and web-shell access analytics",
            "state": "built (th-analytic-0001..0021; needs access logs, --webroot or "
                     "scan-site)"},
    "yara": {"what": "YARA-X content rules over files and attachments",
             "state": "built (web roots and every mail attachment; bundled web-shell "
                      "pack and --yara rules)"},
    "network": {"what": "cloud exfiltration, beaconing, tunnels and segmentation",
                "state": "started (Zeek logs; th-analytic-0046 cloud uploads; the rest #6)"},
    "intel": {"what": "retro-hunt of dated APT40 indicators with ageing",
              "state": "built (th-analytic-0034; bundled APT40 pack, --intel STIX/MISP/CSV/"
                       "lists; TAXII feeds planned #7)"},
    "vulnerability": {"what": "exposure to the CVEs APT40 exploits",
                      "state": "built (th-analytic-0035; needs --inventory, --kev optional)"},
    "identity": {"what": "sign-in, remote-access and MFA analytics",
                 "state": "built (th-analytic-0036..0041, 0061; needs Entra, Okta or VPN "
                          "sign-ins, or Windows Security logons)"},
}

STATUSES = ("fired", "covered", "no_telemetry", "not_covered")
#: Navigator colours per status (legend order as STATUSES).
COLORS = {"fired": "#d62728", "covered": "#2ca02c", "no_telemetry": "#ff9f1c",
          "not_covered": "#9e9e9e"}
LABELS = {"fired": "covered and fired in this case",
          "covered": "covered, telemetry present, did not fire",
          "no_telemetry": "covered, but this case has none of the events the rules read",
          "not_covered": "not covered by a loaded rule (planned detector or assessment only)"}


@cache
def load_coverage() -> dict[str, Any]:
    """The bundled coverage model (parsed once; treat as read-only)."""
    text = resources.files("tidehunt").joinpath("data/coverage/apt40.yml").read_text("utf-8")
    doc: dict[str, Any] = load_bundled(text)
    return doc


@dataclass
class TechniqueState:
    """One technique's status in one case, with the rules and events behind it."""

    id: str
    name: str
    status: str
    rules: list[str] = field(default_factory=list)  # loaded rule ids that cover it
    seen_rules: list[str] = field(default_factory=list)  # of those, telemetry present
    findings: int = 0
    detectors: list[str] = field(default_factory=list)
    assessment: str = ""
    sigmahq_known: int = 0  # SigmaHQ rules the model names for it (loaded or not)
    logsources: list[str] = field(default_factory=list)  # what the covering rules read

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ([], "", None)} | {
            "findings": self.findings}

    def why_not(self) -> str:
        """For a technique no loaded rule covers: what would, in one line."""
        parts = []
        if self.sigmahq_known:
            parts.append(f"{self.sigmahq_known} SigmaHQ rule(s) cover it; load them with "
                         "'tidehunt rules update'")
        if self.detectors:
            parts.append("detectors: " + ", ".join(
                f"{d} {DETECTORS[d]['state']}" for d in self.detectors))
        if self.assessment:
            parts.append(self.assessment)
        return "; ".join(parts) or "no rule or detector yet"


@dataclass
class Gap:
    """A data source the case lacks, and the techniques that cannot be seen because of it."""

    logsource: str
    wants: list[str]  # channel / event ID pairs its rules read
    techniques: list[str]

    def message(self) -> str:
        what = ", ".join(self.wants[:4]) + (" ..." if len(self.wants) > 4 else "")
        return (f"no {self.logsource} events ({what}) in this case, so "
                f"{len(self.techniques)} APT40 technique"
                f"{'s' if len(self.techniques) != 1 else ''} cannot be seen: "
                + ", ".join(self.techniques))


@dataclass
class Posture:
    """The coverage of one case."""

    techniques: list[TechniqueState]
    gaps: list[Gap]
    telemetry: dict[str, int]  # "channel|event_id" -> events

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for t in self.techniques:
            out[t.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(),
                "techniques": [t.to_dict() for t in self.techniques],
                "gaps": [{"logsource": g.logsource, "wants": g.wants,
                          "techniques": g.techniques, "message": g.message()}
                         for g in self.gaps],
                "detectors": DETECTORS,
                "defence_layers": defence_layers(self)}


def _logsource_name(ls: Sequence[Any]) -> str:
    parts = [str(x) for x in ls if x]
    return "/".join(parts) if parts else "any"


def _reads(rule: dict[str, Any]) -> list[tuple[str | None, int | None]]:
    """(channel, event ID) pairs a rule reads (None: any)."""
    from tidehunt.detect.sigma.logsource import AUDIT_4688

    chans = [c.lower() for c in rule.get("channels") or []] or [None]
    eids = list(rule.get("event_ids") or []) or [None]
    audit = (AUDIT_4688[0].lower(), AUDIT_4688[1])
    pairs = [(c, e) for c in chans for e in eids]
    if audit in pairs:  # process_creation: Security 4688 next to the Sysmon pairs, not mixed
        pairs = [(c, e) for c, e in pairs if (c == audit[0]) == (e == audit[1])]
    return pairs


def _present(pair: tuple[str | None, int | None], have: set[tuple[str, int]],
             chans: set[str]) -> bool:
    c, e = pair
    if c is None and e is None:
        return bool(have)
    if e is None:
        return c in chans
    if c is None:
        return any(x[1] == e for x in have)
    return (c, e) in have


def assess(rules: Sequence[dict[str, Any]], telemetry: dict[tuple[str, int], int],
           fired: dict[str, int], coverage: dict[str, Any] | None = None) -> Posture:
    """Status of every APT40 technique for a case.

    Args:
        rules: the loaded plan's detection rules (``id``, ``techniques``, ``logsource``,
            ``channels``, ``event_ids``).
        telemetry: events in the case per (lower-case channel, event ID).
        fired: findings per technique in the case's last run.
        coverage: the coverage model (default: the bundled one).
    """
    cov = coverage or load_coverage()
    have = {k for k, n in telemetry.items() if n}
    chans = {c for c, _ in have}
    by_id = {r["id"]: r for r in rules if r.get("id")}
    # technique -> rules tagged with it or with one of its sub-techniques (one pass)
    tagged: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rules:
        if not r.get("id"):
            continue
        for tag in r.get("techniques") or []:
            tagged[tag][r["id"]] = r
            if "." in tag:
                tagged[tag.split(".", 1)[0]][r["id"]] = r
    states: list[TechniqueState] = []
    blind_by_ls: dict[str, set[str]] = defaultdict(set)
    wants_by_ls: dict[str, set[str]] = defaultdict(set)
    for t in cov["techniques"]:
        tid = t["id"]
        covering = dict(tagged.get(tid, {}))
        for rid in t.get("sigmahq", []):
            if rid in by_id:
                covering[rid] = by_id[rid]
        seen = [rid for rid, r in covering.items()
                if any(_present(p, have, chans) for p in _reads(r))]
        n_fired = sum(n for k, n in fired.items() if k == tid or k.startswith(tid + "."))
        logsources = sorted({_logsource_name(r.get("logsource") or ()) for r in
                             covering.values()})
        if n_fired:
            status = "fired"
        elif seen:
            status = "covered"
        elif covering:
            status = "no_telemetry"
            for r in covering.values():
                name = _logsource_name(r.get("logsource") or ())
                blind_by_ls[name].add(tid)
                for c, e in _reads(r):
                    wants_by_ls[name].add(f"{c or 'any channel'} {e if e else ''}".strip())
        else:
            status = "not_covered"
        states.append(TechniqueState(
            id=tid, name=t["name"], status=status, rules=sorted(covering), seen_rules=seen,
            findings=n_fired, detectors=list(t.get("detectors", [])),
            assessment=t.get("assessment", ""), logsources=logsources,
            sigmahq_known=len(t.get("sigmahq", []))))
    gaps = [Gap(ls, sorted(wants_by_ls[ls]), sorted(techs))
            for ls, techs in sorted(blind_by_ls.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    tele = {f"{c}|{e}": n for (c, e), n in sorted(telemetry.items(), key=str)}
    return Posture(states, gaps, tele)


@cache
def load_defence_layers() -> dict[str, Any]:
    """The bundled defence-layer model (seven layers of the mission; read-only)."""
    text = resources.files("tidehunt").joinpath(
        "data/coverage/defence_layers.yml").read_text("utf-8")
    doc: dict[str, Any] = load_bundled(text)
    return doc


def defence_layers(posture: Posture, model: dict[str, Any] | None = None
                   ) -> list[dict[str, Any]]:
    """Per defence layer: what this case shows, what it cannot show, and what to do.

    ``shows``: the layer's techniques that fired or that loaded rules could see here;
    ``missing``: those the case is blind to (no telemetry, or nothing loaded covers them),
    with the telemetry gaps behind them; ``mitigations`` and ``advice`` from the model.
    """
    doc = model or load_defence_layers()
    by = {t.id: t for t in posture.techniques}
    out = []
    for layer in doc["layers"]:
        techs = [by[t] for t in layer["techniques"] if t in by]
        fired = [t.id for t in techs if t.status == "fired"]
        seen = [t.id for t in techs if t.status == "covered"]
        blind = [t.id for t in techs if t.status == "no_telemetry"]
        uncovered = [t.id for t in techs if t.status == "not_covered"]
        gaps = [g.message() for g in posture.gaps if set(g.techniques) & set(blind)]
        out.append({
            "id": layer["id"], "name": layer["name"],
            "shows": {"fired": fired, "covered": seen},
            "missing": {"no_telemetry": blind, "not_covered": uncovered, "gaps": gaps},
            "mitigations": layer["mitigations"], "advice": layer["advice"],
        })
    return out


def navigator_layer(posture: Posture, name: str = "tidehunt APT40 posture") -> dict[str, Any]:
    """An ATT&CK Navigator 4.5 layer of the APT40 techniques, coloured by status."""
    techniques = []
    for t in posture.techniques:
        comment = LABELS[t.status]
        if t.findings:
            comment += f"; {t.findings} finding(s)"
        if t.assessment:
            comment += f"; {t.assessment}"
        if t.detectors:
            comment += "; also seen by: " + ", ".join(
                f"{d} ({DETECTORS[d]['state']})" for d in t.detectors)
        techniques.append({
            "techniqueID": t.id,
            "color": COLORS[t.status],
            "score": STATUSES[::-1].index(t.status),
            "comment": comment,
            "enabled": True,
            "showSubtechniques": False,
            "metadata": [{"name": "status", "value": t.status},
                         {"name": "rules", "value": str(len(t.rules))},
                         {"name": "rules with telemetry", "value": str(len(t.seen_rules))}],
        })
    return {
        "name": name,
        "versions": {"attack": "18", "navigator": "4.5", "layer": "4.5"},
        "domain": "enterprise-attack",
        "description": "APT40 (G0065) techniques: what fired in this case, what the loaded "
                       "rules could see, and what this case's telemetry cannot show.",
        "sorting": 3,
        "layout": {"layout": "side", "showID": True, "showName": True},
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {"colors": [COLORS["not_covered"], COLORS["fired"]],
                     "minValue": 0, "maxValue": len(STATUSES) - 1},
        "legendItems": [{"label": LABELS[s], "color": COLORS[s]} for s in STATUSES],
        "showTacticRowBackground": False,
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
    }


def case_telemetry(store: Any) -> dict[tuple[str, int], int]:
    """Events per (lower-case channel, event ID) in the case's ``windows`` table."""
    if not store.parts("windows"):
        return {}
    t = store.sql("SELECT lower(channel) AS c, event_id AS e, count(*) AS n FROM windows "
                  "WHERE channel IS NOT NULL AND event_id IS NOT NULL GROUP BY ALL")
    return {(c, int(e)): int(n) for c, e, n in zip(
        t.column("c").to_pylist(), t.column("e").to_pylist(), t.column("n").to_pylist(),
        strict=True)}


def fired_techniques(findings: Any) -> dict[str, int]:
    """Findings per ATT&CK technique in a findings table."""
    if findings is None or findings.num_rows == 0:
        return {}
    import pyarrow.compute as pc

    from tidehunt.model.finding import value_counts

    return {t: n for t, n in value_counts(pc.list_flatten(findings.column("techniques")))
            .items() if t is not None}
