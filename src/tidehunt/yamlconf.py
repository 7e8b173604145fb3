"""Reading a small YAML file the analyst gives on the command line (a profile, a column
mapping, a list of networks): size and alias limits, and every problem a ConfigError
that names the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tidehunt.errors import ConfigError

MAX_BYTES = 1 << 20


def load_yaml(path: str | Path, what: str) -> Any:
    """The document in ``path``; ``what`` names it in errors ("net mapping").

    Raises:
        ConfigError: unreadable, larger than 1 MiB, alias-heavy (a YAML bomb) or not YAML.
    """
    import yaml

    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: {what} not readable: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{p}: {what} larger than 1 MiB")
    if raw.count(b"*") > 100 and raw.count(b"&") > 10:
        raise ConfigError(f"{p}: too many YAML aliases (a YAML bomb?)")
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: {what} is not valid YAML: {exc}") from exc
