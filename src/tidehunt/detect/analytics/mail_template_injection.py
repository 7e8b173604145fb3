"""Attachments that fetch a remote template or object when opened (template injection)."""

from __future__ import annotations

from typing import ClassVar

from tidehunt.detect.analytics._attachment import AttachmentIndicators
from tidehunt.detect.analytics.base import meta
from tidehunt.model.rule import RuleMeta


class MailTemplateInjection(AttachmentIndicators):
    """OOXML attachedTemplate and other external relationships, RTF ``\\*\\template``."""

    NAME: ClassVar[str] = "mail_template_injection"
    IDS: ClassVar[str] = r"remote_template|rtf_template|external_relationship|customui_onload"
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0026", "Mail attachment with a remote template (template injection)",
        "high", ["T1566.001", "T1221"], ["initial-access", "defense-evasion"],
        "An attached .docx (or other OOXML file) names an external template or object in its "
        "relationships, or an RTF has a \\*\\template destination: Word fetches it on open, "
        "so the attachment itself carries no macro for a gateway to find.",
        ["https://attack.mitre.org/techniques/T1221/"], __name__)
