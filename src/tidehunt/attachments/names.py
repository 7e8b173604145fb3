"""Name tricks: double extensions, right-to-left override, padded names, and lure themes."""

from __future__ import annotations

import re

from tidehunt.attachments.kinds import DOCUMENT_EXT, EXECUTABLE_EXT
from tidehunt.attachments.model import Indicator, Report

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_DOUBLE = re.compile(r"\.([A-Za-z0-9]{2,5})[\s_.]*\.([A-Za-z0-9-]{2,20})$")

#: Themes APT40's lures use (RESEARCH.md §2 and §3.3), as words in a name, subject or the
#: document's title, subject and keywords.
LURE_THEMES: dict[str, re.Pattern[str]] = {k: re.compile(v, re.I) for k, v in {
    "research": r"\b(research|paper|study|journal|white ?paper|policy brief|analysis|"
                r"report|thesis|academic|university|institute|think ?tank|draft|review)\b",
    "cv": r"\b(cv|resume|résumé|curriculum vitae|candidate|applicant|application|vacanc\w*|"
          r"recruit\w*|job|position|hiring|internship)\b",
    "interview": r"\b(interview|questions?|questionnaire|survey|media request|journalist|"
                 r"press)\b",
    "conference": r"\b(conference|invitation|invite|forum|symposium|seminar|summit|"
                  r"workshop|agenda|registration|speaker|panel|delegation|visit)\b",
    "shipping": r"\b(shipping|vessel|ship\w*|maritime|naval|navy|port|cargo|tanker|"
                r"freight|logistics|fleet|field ?log|south china sea|offshore|submarine|"
                r"coast ?guard|dock\w*|marine)\b",
}.items()}


def name_tricks(name: str, report: Report) -> None:
    """Right-to-left override characters and document-then-executable double extensions."""
    if _BIDI.search(name):
        shown = _BIDI.sub("", name)
        report.add(Indicator("rlo_name", "high",
                             f"file name {name!r} holds bidirectional override characters that "
                             f"reverse how it is shown (real name {shown!r})", "T1036.002"))
    clean = _BIDI.sub("", name)
    m = _DOUBLE.search(clean)
    if m and m.group(1).lower() in DOCUMENT_EXT and m.group(2).lower() in EXECUTABLE_EXT:
        report.add(Indicator("double_extension", "high",
                             f"file name {clean!r} shows .{m.group(1)} but is a "
                             f".{m.group(2)}", "T1036.007"))
    elif re.search(r"\s{8,}\.\w+$", clean):
        report.add(Indicator("padded_name", "medium",
                             f"file name {clean!r} pads spaces before its extension",
                             "T1036.007"))


def lure(texts: list[str]) -> tuple[list[str], int]:
    """Lure themes found in the texts and a score: one point per theme word, at most 10."""
    themes, score = [], 0
    joined = " ".join(t for t in texts if t).replace("_", " ")
    for theme, rx in LURE_THEMES.items():
        n = len(rx.findall(joined))
        if n:
            themes.append(theme)
            score += n
    return themes, min(score, 10)
