"""The oletools and LnkParse3 samples of ../shared/corpus/email/attachments: each oletools
file is classified as its folder says, each LNK's target and arguments match the JSON that
LnkParse3's own tests expect."""

from __future__ import annotations

import base64
import json

import pytest

from tidehunt.attachments import analyse_tree
from tidehunt.attachments.lnk import parse_lnk

#: oletools' test archives are zipped with this password (their test suite's convention).
SAMPLE_PASSWORD = "infected-test"
#: Folder -> indicator IDs of which at least one must be found in the file's tree.
EXPECTED = {
    "olevba": {"vba_autoexec", "vba_macro"},
    "oleform": {"vba_autoexec", "vba_macro"},
    "excel4-macros": {"xlm_macro"},
    "msodde": {"dde"},
    "ooxml": {"dde"},
    "oleobj": {"ole_object", "ole_package", "ole_package_link"},
    "external_link": {"external_relationship", "remote_template"},
    "encrypted": {"encrypted_document"},
    "basic": {"encrypted_document"},
    "rtfobj": {"rtf_objupdate", "rtf_raw_object", "ole_object", "ole_package"},
}


def _samples():
    from tests.conftest import CORPUS

    root = CORPUS / "email" / "attachments" / "oletools"
    if not root.is_dir():
        return [pytest.param(None, id="corpus-absent")]
    return [pytest.param(p, id=str(p.relative_to(root))) for p in sorted(root.rglob("*"))
            if p.is_file()]


@pytest.mark.parametrize("path", _samples())
def test_oletools_sample_is_classified_as_its_folder(path):
    from tests.conftest import corpus_path

    corpus_path("email/attachments/oletools")
    nodes = analyse_tree(path.read_bytes(), path.name, passwords=[SAMPLE_PASSWORD])
    found = {i.id for n in nodes for i in n.report.indicators}
    if path.name.startswith("harmless-clean"):
        assert not found - {"archive_encrypted"}, found
        return
    folder = path.parent.name
    assert found & EXPECTED[folder], (folder, found, [n.report.notes for n in nodes])
    if path.suffix == ".zip":  # opened with the password, the document inside analysed
        assert len(nodes) == 2 and nodes[0].report.password == SAMPLE_PASSWORD
    if "autostart" in path.name:  # encrypted with the default password: macros still seen
        assert "vba_autoexec" in found and nodes[0].report.password == "VelvetSweatshop"


def test_lnk_samples_match_lnkparse3_expectations():
    from tests.conftest import corpus_path

    root = corpus_path("email/attachments/lnk")
    checked = 0
    for js in sorted((root / "json").glob("*.json")):
        sample = root / "samples" / js.stem
        if not sample.is_file():
            continue  # raw/ blobs are not shortcuts
        exp = json.loads(js.read_text(encoding="utf-8"))
        got = parse_lnk(base64.b64decode(sample.read_bytes()))
        data = exp.get("data") or {}
        assert got["arguments"] == data.get("command_line_arguments"), js.name
        assert got["working_directory"] == data.get("working_directory"), js.name
        assert got["icon_location"] == data.get("icon_location"), js.name
        li = exp.get("link_info") or {}
        if li.get("local_base_path"):
            assert got["target"] == li["local_base_path"] + (li.get("common_path_suffix")
                                                             or ""), js.name
        checked += 1
    assert checked >= 30
