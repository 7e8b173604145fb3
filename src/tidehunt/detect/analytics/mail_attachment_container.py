"""Attachments that hide their content: encrypted archives and documents, disk images,
decompression bombs, traversal names and deep nesting."""

from __future__ import annotations

from typing import ClassVar

from tidehunt.detect.analytics._attachment import AttachmentIndicators
from tidehunt.detect.analytics.base import meta
from tidehunt.model.rule import RuleMeta


class MailAttachmentContainer(AttachmentIndicators):
    """Containers that defeat a mail gateway's scan."""

    NAME: ClassVar[str] = "mail_attachment_container"
    IDS: ClassVar[str] = (r"archive_encrypted|encrypted_document|disk_image|archive_bomb|"
                          r"archive_traversal|archive_too_deep|archive_too_many")
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0028", "Mail attachment that hides its content from scanning", "medium",
        ["T1566.001", "T1027", "T1027.013", "T1553.005"],
        ["initial-access", "defense-evasion"],
        "A password-protected archive or document (high when the password is in the mail "
        "and opens it: the reader is meant to open it, the gateway is not), a disk image "
        "whose files escape Mark-of-the-Web, or an archive that is a decompression bomb, "
        "nests too deep or names paths outside its folder.",
        ["https://attack.mitre.org/techniques/T1027/013/",
         "https://attack.mitre.org/techniques/T1553/005/"], __name__)
