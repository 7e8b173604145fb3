"""Exceptions: each says where, so the user can fix what is wrong."""

from __future__ import annotations


class TidehuntError(Exception):
    """Base of every error tidehunt raises on purpose."""


class ConfigError(TidehuntError):
    """Usage or configuration the user must fix (exit 2)."""


class RuleError(TidehuntError):
    """A rule that cannot be loaded or compiled (exit 4)."""

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location


class SourceError(TidehuntError):
    """An evidence file that cannot be read at all."""


class UnsupportedArtefact(SourceError):
    """Not this Source's format after all."""


class CaseError(TidehuntError):
    """The case directory is unusable (exit 3)."""


class NoUsableInput(TidehuntError):
    """Nothing in the evidence could be read (exit 3)."""


class MissingExtraError(TidehuntError):
    """An optional dependency is missing; the message names the extra to install (exit 5)."""
