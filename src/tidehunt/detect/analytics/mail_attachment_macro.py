"""Attachments with macros that run on open (VBA, Excel 4.0) or DDE fields."""

from __future__ import annotations

from typing import ClassVar

from tidehunt.detect.analytics._attachment import AttachmentIndicators
from tidehunt.detect.analytics.base import meta
from tidehunt.model.rule import RuleMeta


class MailAttachmentMacro(AttachmentIndicators):
    """olevba's auto-exec triggers and XLM macro sheets, msodde's DDE links."""

    NAME: ClassVar[str] = "mail_attachment_macro"
    IDS: ClassVar[str] = r"vba_autoexec|vba_macro|xlm_macro|vba_stomping|dde"
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0025", "Mail attachment with macros or DDE", "high",
        ["T1566.001", "T1204.002", "T1559.002", "T1564.007"],
        ["initial-access", "execution", "defense-evasion"],
        "An attached document holds VBA macros (high with an auto-exec trigger such as "
        "AutoOpen or Document_Open and a call that runs or downloads something), an Excel "
        "4.0 macro sheet, VBA stomping, or a DDE field that runs a command when the "
        "document opens (oletools olevba and msodde).",
        ["https://attack.mitre.org/techniques/T1204/002/",
         "https://attack.mitre.org/techniques/T1559/002/"], __name__)
