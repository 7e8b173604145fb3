"""TAXII 2.1 feeds: a medallion server on 127.0.0.1 serves a collection; 'intel update'
polls it with taxii2-client, and the second poll brings only the new objects."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tidehunt.intel import feeds
from tidehunt.intel.readers import read

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


def _indicator(value: str, when: datetime) -> dict:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": stamp, "modified": stamp, "valid_from": stamp, "pattern_type": "stix",
            "pattern": f"[domain-name:value = '{value}']", "name": value}


@pytest.fixture
def server(tmp_path):
    import medallion
    from medallion import application_instance
    from werkzeug.serving import make_server

    data = {"/discovery": {"title": "test", "api_roots": []},
            "api1": {"information": {"title": "api1", "versions": [
                "application/taxii+json;version=2.1"], "max_content_length": 10485760},
                     "status": [], "collections": [{
                         "id": COLLECTION, "title": "feed", "can_read": True,
                         "can_write": True, "media_types": [
                             "application/stix+json;version=2.1"],
                         "objects": [], "manifest": []}]}}
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    app = application_instance
    medallion.set_config(app, "users", {"users": {"analyst": "s3cret"}})
    medallion.set_config(app, "taxii", {"taxii": {"max_page_size": 2}})
    medallion.set_config(app, "backend", {"backend": {
        "module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
        "filename": str(path)}})
    if not app.blueprints:  # the app is medallion's module-level one: register once
        medallion.register_blueprints(app)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    backend = app.medallion_backend

    def publish(*values: str) -> None:
        now = datetime.now(UTC)
        backend.add_objects("api1", COLLECTION, {"objects": [
            _indicator(v, now - timedelta(days=1)) for v in values]}, now)
        time.sleep(0.01)

    yield f"http://127.0.0.1:{srv.server_port}/api1/collections/{COLLECTION}/", publish
    srv.shutdown()


def test_incremental_polls(server, tmp_path, monkeypatch):
    url, publish = server
    monkeypatch.setenv("FEED_PW", "s3cret")
    cfg = tmp_path / "feeds.yml"
    cfg.write_text(f"feeds:\n  - name: partner\n    taxii: {url}\n    user: analyst\n"
                   "    password_env: FEED_PW\n")
    store = tmp_path / "store"
    publish("one.example", "two.example", "three.example")
    (r1,) = feeds.update(feeds.load_config(cfg), store)
    assert r1.error is None and r1.objects == 3  # three pages of at most two: all of them
    publish("four.example")
    (r2,) = feeds.update(feeds.load_config(cfg), store)
    assert r2.error is None and r2.objects == 1 and r2.since == r1.newest
    (r3,) = feeds.update(feeds.load_config(cfg), store)
    assert r3.objects == 0 and r3.notes == ["nothing new"]
    files = feeds.fetched_files(store)
    assert len(files) == 2
    values = sorted(i.value for f in files for i in read(f).indicators)
    assert values == ["four.example", "one.example", "three.example", "two.example"]


def test_wrong_password_is_a_feed_error(server, tmp_path):
    url, publish = server
    publish("one.example")
    cfg = tmp_path / "feeds.yml"
    cfg.write_text(f"feeds:\n  - name: p\n    taxii: {url}\n    user: analyst\n"
                   "    password: wrong\n")
    (r,) = feeds.update(feeds.load_config(cfg), tmp_path / "store")
    assert r.error and ("401" in r.error or "UNAUTHORIZED" in r.error.upper())


def test_config_errors(tmp_path, monkeypatch):
    from tidehunt.errors import ConfigError

    cfg = tmp_path / "feeds.yml"
    cfg.write_text("feeds:\n  - name: x\n")
    with pytest.raises(ConfigError, match="one of taxii or url"):
        feeds.load_config(cfg)
    cfg.write_text("feeds:\n  - name: x\n    url: http://h/x\n    token_env: NOPE_UNSET\n")
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    with pytest.raises(ConfigError, match="NOPE_UNSET"):
        feeds.load_config(cfg)
