"""Rule files and bundled data are parsed by libyaml (``yamlconf.safe_loader``) instead of
PyYAML's pure-Python loader, for speed: the documents must be the very same, and what the
pure-Python loader refuses must still be refused (reported, not loaded)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from tests.conftest import corpus_path
from tidehunt.detect.sigma.compile import compile_text, yaml_docs
from tidehunt.yamlconf import load_bundled, safe_loader

TRICKY = [
    "a: 1\n---\nb: [1, 2]\n...\n---\n",  # several documents, an end marker, an empty one
    "x: &a [1, 2]\ny: *a\n",  # an alias shares its value
    "when: 2024-03-01\nn: 0x1f\nf: .inf\nb: yes\nnul: ~\n",  # YAML 1.1 scalars
    "s: 'it''s'\nq: \"t\\u00e9st\\n\"\nblock: |\n  two\n  lines\n",
    "bin: !!binary aGVsbG8=\nset: !!set {a, b}\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_libyaml_gives_the_pure_python_documents(text):
    assert safe_loader() is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    assert yaml_docs(text) == list(yaml.safe_load_all(text))


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a: b: c\n", "x: !!python/object:os.system {}\n",
                                  "\tkey: tab\n"])
def test_what_the_safe_loader_refuses_is_still_refused(text):
    with pytest.raises(yaml.YAMLError):
        list(yaml.safe_load_all(text))
    with pytest.raises(yaml.YAMLError):
        yaml_docs(text)
    rules, errors = compile_text(text, "bad.yml")
    assert not rules and errors and errors[0]["reason"].startswith("invalid YAML")


def test_bundled_data_files_parse_the_same():
    root = Path(str(resources.files("tidehunt") / "data"))
    files = sorted(root.rglob("*.yml")) + sorted(root.rglob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        text = f.read_text("utf-8")
        assert list(yaml.load_all(text, Loader=safe_loader())) == list(yaml.safe_load_all(text))
    cov = (root / "coverage" / "apt40.yml").read_text("utf-8")
    assert load_bundled(cov) == yaml.safe_load(cov)


def test_sigmahq_rule_files_parse_the_same():
    files = sorted(corpus_path("sigma/rules/windows").rglob("*.yml"))
    assert len(files) > 1000
    for f in files[::7]:  # a seventh of them: the pure-Python side takes ~1.3 ms a file
        text = f.read_text("utf-8")
        assert yaml_docs(text) == list(yaml.safe_load_all(text)), f
