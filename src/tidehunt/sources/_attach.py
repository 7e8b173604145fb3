"""Attachment analysis inside a mail source: options, the YARA scanner, copies in the case."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from tidehunt.attachments import Limits, Node, analyse_tree, passwords_in
from tidehunt.context import RunContext
from tidehunt.sources.base import Artefact, Source

#: Compiled YARA rules per extra-rule set, once per worker process.
_RULES: dict[tuple[str, ...], Any] = {}
EXTRACTED = "extracted"


class AttachmentAnalyser:
    """What one ingest run does with attachments (``hunt`` / ``ingest`` options)."""

    def __init__(self, options: dict[str, Any] | None = None,
                 case_root: str | Path | None = None) -> None:
        opt = options or {}
        self.limits = Limits(**opt.get("unpack_limits", {}))
        self.passwords = [str(p) for p in opt.get("attachment_passwords", ())]
        self.extract = bool(opt.get("extract_attachments", True))
        self.yara = tuple(str(p) for p in opt.get("yara", ()))
        self.case_root = Path(case_root) if case_root else None
        self._scanner: Any = None

    def scanner(self) -> Any:
        """A YARA-X scanner over the bundled pack (and ``--yara`` rules), built once."""
        if self._scanner is None:
            import yara_x

            from tidehunt.webroot import compile_yara

            if self.yara not in _RULES:
                _RULES[self.yara] = compile_yara(self.yara)[0]
            self._scanner = yara_x.Scanner(_RULES[self.yara])
            self._scanner.set_timeout(20)
        return self._scanner

    def analyse(self, data: bytes, name: str, body: str, subject: str | None) -> list[Node]:
        """The attachment's tree, passwords from the mail body tried first."""
        work = self.case_root / EXTRACTED / ".work" if self.case_root else None
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
        return analyse_tree(data, name, passwords=[*passwords_in(body), *self.passwords],
                            limits=self.limits, scanner=self.scanner(), work=work,
                            context=[subject or ""])

    def keep(self, node: Node) -> str | None:
        """Write a read-only, content-addressed copy into the case; its relative path."""
        if self.case_root is None or not self.extract or not node.data:
            return None
        rel = f"{EXTRACTED}/{node.sha256[:2]}/{node.sha256}"
        path = self.case_root / rel
        if path.exists():
            return rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{node.sha256}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(node.data)
        tmp.chmod(0o400)
        try:
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return rel


class MailSource(Source):
    """A Source of mail: attachments analysed with the run's options, problems warned."""

    _analyser: AttachmentAnalyser | None = None

    def _mail_args(self, artefact: Artefact, ctx: RunContext) -> dict[str, Any]:
        if self._analyser is None:
            self._analyser = AttachmentAnalyser(self.options, self.case_root)

        def warn(message: str, locator: str) -> None:
            ctx.warn(artefact.id, self.NAME, message, [locator], path=artefact.display)

        return {"analyser": self._analyser, "warn": warn}
