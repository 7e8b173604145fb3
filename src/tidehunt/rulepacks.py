"""Rule packs: the bundled tidehunt pack and versioned packs fetched by ``rules update``.

Fetched packs are kept as archives under the user data directory
(``TIDEHUNT_DATA_DIR`` overrides), one folder per pack name, with ``index.json``
recording each version's source, fetch time, SHA-256, rule counts and content date (the
newest rule date inside). A hunt without ``--rules`` uses the bundled pack plus the
newest version of every fetched pack.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from tidehunt.errors import ConfigError, RuleError

DEFAULT_SIGMAHQ_URL = (
    "https://github.com/SigmaHQ/sigma/releases/latest/download/sigma_all_rules.zip"
)
MAX_DOWNLOAD = 512 << 20
DEFAULT_MAX_AGE_DAYS = 90


def bundled_pack() -> Path:
    """The tidehunt Sigma pack shipped inside the package."""
    return Path(str(resources.files("tidehunt") / "data" / "rules" / "sigma" / "tidehunt"))


def data_dir() -> Path:
    """Where fetched rule packs live."""
    env = os.environ.get("TIDEHUNT_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("tidehunt"))


def _index_path() -> Path:
    return data_dir() / "rules" / "index.json"


def load_index() -> dict[str, Any]:
    """The index of fetched packs."""
    p = _index_path()
    if not p.exists():
        return {"packs": {}}
    doc: dict[str, Any] = orjson.loads(p.read_bytes())
    return doc


def _save_index(doc: dict[str, Any]) -> None:
    p = _index_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    Path(tmp).replace(p)


def latest_packs() -> list[dict[str, Any]]:
    """The newest version of every fetched pack."""
    out = []
    for _name, versions in sorted(load_index().get("packs", {}).items()):
        if versions:
            v = versions[-1]
            if Path(v["path"]).exists():
                out.append(v)
    return out


def default_rule_paths() -> list[tuple[str, str]]:
    """(path, display name) of the packs a hunt uses when ``--rules`` is not given."""
    paths = [(str(bundled_pack()), "tidehunt (bundled)")]
    for v in latest_packs():
        paths.append((v["path"], f"{v['name']} {v['version']}"))
    return paths


def _fetch(source: str, dest: Path) -> str:
    """Copy or download a rule archive/folder to ``dest``; returns a description."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        req = urllib.request.Request(source, headers={"User-Agent": "tidehunt"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp, open(dest, "wb") as fh:
                total = 0
                while chunk := resp.read(1 << 20):
                    total += len(chunk)
                    if total > MAX_DOWNLOAD:
                        raise ConfigError(f"{source}: larger than {MAX_DOWNLOAD} bytes")
                    fh.write(chunk)
        except OSError as exc:
            raise ConfigError(f"cannot fetch {source}: {exc}") from exc
        return source
    if parsed.scheme not in ("", "file"):
        raise ConfigError(f"{source}: only http(s) URLs and local paths are supported")
    path = Path(parsed.path if parsed.scheme == "file" else source)
    if path.is_dir():
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in (".yml", ".yaml"):
                    zf.write(f, f.relative_to(path).as_posix())
        return str(path.absolute())
    if path.is_file():
        shutil.copyfile(path, dest)
        return str(path.absolute())
    raise ConfigError(f"{source}: no such file, folder or URL")


def update(source: str | None = None, name: str = "sigmahq") -> dict[str, Any]:
    """Fetch a rule pack, check that it loads, and keep it as a new version.

    Raises:
        ConfigError: cannot fetch. RuleError: the pack does not load any rule.
    """
    from tidehunt.detect.sigma.loader import load_plan

    source = source or DEFAULT_SIGMAHQ_URL
    pack_dir = data_dir() / "rules" / name
    pack_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=pack_dir, prefix=".tmp-", suffix=".zip")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        origin = _fetch(source, tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        plan = load_plan([tmp])
        if not plan.rules:
            raise RuleError(f"{source}: no Sigma rule could be loaded "
                            f"({len(plan.errors)} errors)")
        index = load_index()
        versions = index.setdefault("packs", {}).setdefault(name, [])
        if versions and versions[-1]["sha256"] == digest:
            tmp.unlink()
            return dict(versions[-1], unchanged=True)
        fetched = datetime.now(UTC)
        version = fetched.strftime("%Y%m%dT%H%M%SZ") + "-" + digest[:12]
        final = pack_dir / f"{version}.zip"
        Path(tmp).replace(final)
        content_date = plan.sources[0].get("content_date", "") if plan.sources else ""
        rec = {
            "name": name, "version": version, "path": str(final), "source": origin,
            "fetched": fetched.isoformat(timespec="seconds"), "sha256": digest,
            "rules": len(plan.rules), "errors": len(plan.errors),
            "not_applicable": len(plan.skipped), "content_date": content_date,
        }
        versions.append(rec)
        _save_index(index)
        return rec
    finally:
        if tmp.exists():
            tmp.unlink()


def age_days(content_date: str, today: date | None = None) -> int | None:
    """Days since a pack's content date (None if unknown)."""
    if not content_date:
        return None
    try:
        d = date.fromisoformat(content_date[:10])
    except ValueError:
        return None
    return ((today or datetime.now(UTC).date()) - d).days
