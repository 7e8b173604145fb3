"""Attachment analysis: every file a mail carries, and every file inside those, examined
with oletools, LnkParse3, the archive libraries and YARA-X. Nothing is ever executed;
unpacking stays in memory within :class:`Limits` and only content-addressed copies are
written (into the case, by the caller).

:func:`analyse_tree` is the entry point: one attachment in, one :class:`Node` per file of
its tree out (the attachment first, then what came out of it, depth first).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidehunt.attachments.archive import Budget, Limits, odf_objects, unpack
from tidehunt.attachments.kinds import ARCHIVE_KINDS, OFFICE_KINDS, SCRIPT_KINDS, kind
from tidehunt.attachments.lnk import analyse_lnk
from tidehunt.attachments.model import LEVELS, Child, Indicator, Report
from tidehunt.attachments.names import lure, name_tricks
from tidehunt.attachments.office import analyse_office
from tidehunt.attachments.scripts import analyse_script

__all__ = ["LEVELS", "Budget", "Child", "Indicator", "Limits", "Node", "Report",
           "analyse_tree", "passwords_in"]

#: Passwords tried on every encrypted archive after the mail's own: the ones samples are
#: shared with between analysts (so a zipped sample handed to the case still opens).
ARCHIVE_PASSWORDS = ("infected", "malware", "virus")
_PASSWORD = re.compile(
    r"(?i)(?:\b(?:password|passwort|passcode|pass ?word|pwd|pw|kennwort|contraseña|"
    r"mot de passe|пароль)\b|密码|密碼|パスワード|비밀번호)"
    r"\s*(?:(?:(?:is|lautet|est|es|ist)\b|:|\uff1a|=|-)\s*)+[\"'“«]?([^\s\"'”»<>]{3,64})")


def passwords_in(*texts: str) -> list[str]:
    """Archive passwords a mail gives its reader ("password: 2026", "pwd = x1y2")."""
    out: dict[str, None] = {}
    for t in texts:
        for m in _PASSWORD.finditer(t or ""):
            out[m.group(1).rstrip(".,;)")] = None
    return list(out)


@dataclass
class Node:
    """One file of an attachment's tree with what was found in it."""

    name: str
    data: bytes
    depth: int
    parent: str | None
    how: str
    report: Report
    sha256: str
    md5: str

    @property
    def note(self) -> str | None:
        """Why it is not fully analysed, if so."""
        return "; ".join(self.report.notes) or None


def analyse_tree(data: bytes, name: str, *, passwords: list[str] | None = None,
                 limits: Limits | None = None, scanner: Any = None,
                 work: Path | None = None, context: list[str] | None = None) -> list[Node]:
    """Analyse an attachment and everything inside it, within ``limits``.

    ``passwords`` are tried on encrypted archives and documents; ``scanner`` is a YARA-X
    scanner run over every file; ``work`` is where path-based tools get a private copy
    (a temporary folder if None); ``context`` (subject, ...) feeds the lure score.
    """
    budget = Budget(limits or Limits())
    out: list[Node] = []
    with tempfile.TemporaryDirectory(prefix="tidehunt-attach-",
                                     dir=str(work) if work else None) as tmp:
        _visit(Child(name, data, "attachment"), 0, None, out, budget, passwords or [],
               scanner, Path(tmp), context or [])
    return out


def _visit(child: Child, depth: int, parent: str | None, out: list[Node], budget: Budget,
           passwords: list[str], scanner: Any, work: Path, context: list[str],
           seen: frozenset[tuple[str, str | None]] = frozenset()) -> None:
    rep = analyse_one(child.data, child.name, budget, passwords, scanner, work, context)
    if seen:  # the same object seen again inside its parent (an RTF's OLE object) is one
        rep.indicators = [i for i in rep.indicators if (i.id, i.cve) not in seen]
    if child.note:
        rep.notes.insert(0, child.note)
    node = Node(child.name, child.data, depth, parent, child.how, rep,
                hashlib.sha256(child.data).hexdigest(),
                hashlib.md5(child.data, usedforsecurity=False).hexdigest())
    out.append(node)
    if not rep.children:
        return
    if depth + 1 > budget.limits.max_depth:
        rep.add(Indicator("archive_too_deep", "medium",
                          f"nested more than {budget.limits.max_depth} levels deep: "
                          f"{len(rep.children)} inner file(s) not analysed", "T1027"))
        rep.children.clear()
        return
    here = child.name if parent is None else f"{parent}>{child.name}"
    mine = frozenset((i.id, i.cve) for i in rep.indicators
                     if i.id in ("equation_editor", "ole2link", "activex_exploit", "ole_object"))
    for c in rep.children:
        _visit(c, depth + 1, here, out, budget, passwords, scanner, work, context,
               mine if c.how.startswith("OLE object") else frozenset())
    rep.children.clear()


def analyse_one(data: bytes, name: str, budget: Budget, passwords: list[str],
                scanner: Any, work: Path, context: list[str]) -> Report:
    """Every analyser that applies to one file (not its children)."""
    rep = Report(name, kind(data, name))
    k = rep.kind
    name_tricks(name, rep)
    try:
        if k in OFFICE_KINDS or k == "csv":
            analyse_office(data, k, name, work, rep, passwords)
        elif k == "lnk":
            analyse_lnk(data, rep)
        elif k in SCRIPT_KINDS:
            analyse_script(data, k, rep)
        elif k in ARCHIVE_KINDS:
            unpack(data, k, rep, budget, [*passwords, *ARCHIVE_PASSWORDS])
        elif k == "odf":
            odf_objects(data, rep)
        elif k in ("pe", "elf"):
            rep.add(Indicator("executable_attachment", "high",
                              f"{'Windows' if k == 'pe' else 'Linux'} executable", "T1204.002"))
    except Exception as exc:  # noqa: BLE001 - hostile input; reported, the tree goes on
        rep.notes.append(f"{k} analysis failed: {type(exc).__name__}: {str(exc)[:200]}")
    if scanner is not None and data:
        _yara(scanner, data, name, k, rep)
    m = rep.meta
    rep.lure_themes, rep.lure_score = lure(
        [name, *context, m.get("title", ""), m.get("subject", ""), m.get("keywords", "")])
    return rep


def _yara(scanner: Any, data: bytes, name: str, k: str, rep: Report) -> None:
    from tidehunt.webroot import yara_matches

    try:
        hits = yara_matches(scanner, data, name, k)
    except Exception as exc:  # noqa: BLE001 - a scan timeout or engine error is a note
        rep.notes.append(f"YARA scan failed: {exc}")
        return
    rep.yara = hits
    for h in hits:
        sev = h["severity"] if h["severity"] in LEVELS else "high"
        rep.add(Indicator(f"yara:{h['rule']}", sev, f"YARA {h['id']}: {h['description']}",
                          (h.get("techniques") or "").split(",")[0] or None))


def iter_indicators(nodes: list[Node]) -> Iterator[tuple[Node, Indicator]]:
    """Every (node, indicator) pair of a tree."""
    for n in nodes:
        for i in n.report.indicators:
            yield n, i
