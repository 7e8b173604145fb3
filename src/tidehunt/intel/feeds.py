"""Configured intel feeds, pulled by ``tidehunt intel update`` into the intel store
(``TIDEHUNT_DATA_DIR/intel/<feed>/``; every hunt loads what is there).

A feed is a TAXII 2.1 collection (taxii2-client; polled incrementally with
``added_after``, the newest ``date_added`` of the last poll kept in ``state.json``) or a
plain URL of a file any intel reader understands. The configuration is YAML::

    feeds:
      - name: partner-cert
        taxii: https://taxii.example/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/
        user: analyst
        password_env: PARTNER_TAXII_PASSWORD     # or token_env for a bearer token
      - name: c2-list
        url: https://intel.example/c2.txt
"""

from __future__ import annotations

import os
import re
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from tidehunt.errors import ConfigError
from tidehunt.rulepacks import data_dir

MAX_FETCH = 256 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def intel_dir() -> Path:
    """Where fetched feeds live."""
    return data_dir() / "intel"


def default_config() -> Path:
    """``TIDEHUNT_FEEDS`` or the user's config folder's ``feeds.yml``."""
    env = os.environ.get("TIDEHUNT_FEEDS")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("tidehunt")) / "feeds.yml"


@dataclass
class Feed:
    """One configured feed."""

    name: str
    taxii: str | None = None
    url: str | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    verify: bool = True


def load_config(path: str | Path | None = None) -> list[Feed]:
    """The feeds of a configuration file (ConfigError naming the problem)."""
    p = Path(path) if path else default_config()
    if not p.is_file():
        raise ConfigError(f"{p}: no feed configuration (see 'tidehunt intel update --help')")
    raw = p.read_bytes()
    if len(raw) > 1 << 20:
        raise ConfigError(f"{p}: feed configuration larger than 1 MiB")
    try:
        doc = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    feeds = []
    for i, f in enumerate(doc.get("feeds") or []):
        if not isinstance(f, dict) or not _NAME.match(str(f.get("name", ""))):
            raise ConfigError(f"{p}: feed {i + 1} needs a name of letters, digits, . _ -")
        if bool(f.get("taxii")) == bool(f.get("url")):
            raise ConfigError(f"{p}: feed {f['name']!r} needs one of taxii or url")

        def secret(key: str, feed: dict[str, Any] = f) -> str | None:
            env = feed.get(f"{key}_env")
            if env:
                val = os.environ.get(str(env))
                if val is None:
                    raise ConfigError(f"{p}: feed {feed['name']!r}: ${env} is not set")
                return val
            v = feed.get(key)
            return str(v) if v is not None else None

        feeds.append(Feed(str(f["name"]), f.get("taxii"), f.get("url"), f.get("user"),
                          secret("password"), secret("token"), bool(f.get("verify", True))))
    return feeds


@dataclass
class FeedResult:
    """What one update of one feed brought."""

    name: str
    objects: int = 0
    file: str | None = None
    error: str | None = None
    since: str | None = None
    newest: str | None = None
    notes: list[str] = field(default_factory=list)


def update(feeds: list[Feed], store: Path | None = None) -> list[FeedResult]:
    """Pull every feed; a failing one is reported, the others go on."""
    base = store or intel_dir()
    out = []
    for f in feeds:
        d = base / f.name
        d.mkdir(parents=True, exist_ok=True)
        try:
            out.append(_taxii(f, d) if f.taxii else _url(f, d))
        except Exception as exc:  # noqa: BLE001 - a feed's failure is its result
            out.append(FeedResult(f.name, error=f"{type(exc).__name__}: {str(exc)[:300]}"))
    return out


def _state(d: Path) -> dict[str, Any]:
    p = d / "state.json"
    return orjson.loads(p.read_bytes()) if p.is_file() else {}


def _save(d: Path, name: str, data: bytes, state: dict[str, Any]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = d / name.format(stamp=stamp)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    (d / "state.json").write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    return str(path)


def _taxii(f: Feed, d: Path) -> FeedResult:
    from taxii2client.v21 import Collection, as_pages

    st = _state(d)
    since = st.get("added_after")
    kw: dict[str, Any] = {"user": f.user, "password": f.password, "verify": f.verify}
    if f.token:
        kw = {"verify": f.verify}
    col = Collection(f.taxii, **kw)
    if f.token:
        col._conn.session.headers["Authorization"] = f"Bearer {f.token}"
    filt = {"added_after": since} if since else {}
    newest = since
    for page in as_pages(col.get_manifest, per_request=500, **filt):
        for m in page.get("objects", []) or []:
            da = m.get("date_added")
            if da and (newest is None or da > newest):
                newest = da
    objs: list[Any] = []
    for page in as_pages(col.get_objects, per_request=500, **filt):
        objs += page.get("objects", []) or []
    res = FeedResult(f.name, len(objs), since=since, newest=newest)
    if not objs:
        res.notes.append("nothing new")
        return res
    bundle = {"type": "bundle", "id": f"bundle--{_uuid(f.name, newest or '')}", "objects": objs}
    res.file = _save(d, "taxii-{stamp}.json", orjson.dumps(bundle),
                     {"added_after": newest, "url": f.taxii, "updated": datetime.now(UTC)
                      .isoformat()})
    return res


def _uuid(a: str, b: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tidehunt-feed|{a}|{b}"))


def _url(f: Feed, d: Path) -> FeedResult:
    assert f.url
    if not f.url.lower().startswith(("https://", "http://")):
        raise ConfigError(f"feed {f.name!r}: only http(s) URLs are fetched")
    req = urllib.request.Request(f.url, headers={"User-Agent": "tidehunt-intel-update"})
    if f.token:
        req.add_header("Authorization", f"Bearer {f.token}")
    st = _state(d)
    if st.get("etag"):
        req.add_header("If-None-Match", st["etag"])
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = resp.read(MAX_FETCH + 1)
            etag = resp.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return FeedResult(f.name, notes=["not modified"])
        raise
    if len(data) > MAX_FETCH:
        raise ConfigError(f"feed {f.name!r}: larger than {MAX_FETCH >> 20} MiB")
    ext = re.sub(r"[^a-z0-9]", "", f.url.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower())[:8]
    path = _save(d, "fetch-{stamp}." + (ext or "txt"), data,
                 {"etag": etag, "url": f.url, "updated": datetime.now(UTC).isoformat()})
    return FeedResult(f.name, 1, path)


def fetched_files(store: Path | None = None) -> list[str]:
    """Every file the feeds brought (loaded by each hunt)."""
    base = store or intel_dir()
    if not base.is_dir():
        return []
    return sorted(str(p) for p in base.glob("*/*") if p.is_file() and p.name != "state.json"
                  and not p.name.startswith("."))
