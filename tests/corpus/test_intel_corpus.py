"""Every file of ../shared/corpus/intel loads with the expected indicator counts, or gives a
clear per-file reason; the bundled APT40 pack loads every matchable row."""

from __future__ import annotations

import pytest

from tidehunt.intel.readers import read
from tidehunt.intel.store import bundled_pack

#: file -> (format, indicators, {type: count}) for the files that hold indicators.
EXPECTED = {
    "apt40/maltrail-apt_mudcarp.txt": ("list", 74, {"domain": 66, "url": 8}),
    "apt40/maltrail-apt_tempperiscope.txt": ("list", 5, {"domain": 5}),
    "signature-base-iocs/c2-iocs.txt": ("list", 1844, {"domain": 1709, "ip": 135}),
    "signature-base-iocs/hash-iocs.txt": ("list", 3224, {"sha256": 1259, "md5": 1039,
                                                         "sha1": 926}),
    "signature-base-iocs/filename-iocs.txt": ("list", 0, {}),
    "stix2.1/oasis-examples/indicator-for-c2-ip-address.json": ("stix", 1, {"ip": 1}),
    "stix2.1/oasis-examples/indicators-for-C2-with-COA.json": ("stix", 2, {"ip": 1,
                                                                           "sha256": 1}),
    # APT1's four address indicators are /15 networks: cidr, matched by containment
    "stix2.1/oasis-examples/threat-reports/apt1.json": ("stix", 10, {"cidr": 4, "domain": 3,
                                                                     "md5": 3}),
    "attack/enterprise-attack-apt40-subset.json": ("stix", 0, {}),
    "misp/pymisp-existing_event.json": ("misp", 84, {"url": 1, "domain": 19, "filename": 15,
                                                     "sha1": 37, "ip": 12}),
    "misp/pymisp-valid_fieldnames.csv": ("csv", 9, {"md5": 3, "sha1": 3, "sha256": 3}),
    "misp/pymisp-to_delete3.json": ("misp", 68, {"url": 6, "sha256": 5, "filename": 4,
                                                 "ip": 43, "sha1": 5, "md5": 5}),
}
REASONS = {
    "cisa-kev/known_exploited_vulnerabilities.csv": "KEV catalogue",
    "cisa-kev/known_exploited_vulnerabilities.json": "KEV catalogue",
    "cisa-kev/known_exploited_vulnerabilities_schema.json": "JSON schema",
    "misp-galaxy/clusters/threat-actor.json": "galaxy cluster",
    "misp-galaxy/galaxies/threat-actor.json": "galaxy definition",
}


def test_every_intel_file_loads_or_says_why():
    from tests.conftest import corpus_path

    root = corpus_path("intel")
    seen = 0
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(f.relative_to(root))
        if f.name in ("README.md", "README.txt"):
            continue
        r = read(f)
        seen += 1
        if rel in EXPECTED:
            fmt, n, types = EXPECTED[rel]
            got = {}
            for i in r.indicators:
                got[i.type] = got.get(i.type, 0) + 1
            assert (r.format, len(r.indicators), got) == (fmt, n, types), rel
            assert not r.errors, rel
        elif rel in REASONS:
            assert r.errors and REASONS[rel] in r.errors[0], (rel, r.errors)
        else:  # any other file: it loads, or it says why not
            assert r.indicators or r.errors or r.skipped or r.format == "stix", rel
    assert seen >= 30


def test_filename_regexes_are_counted_not_matched():
    from tests.conftest import corpus_path

    r = read(corpus_path("intel") / "signature-base-iocs" / "filename-iocs.txt")
    assert r.patterns > 3000 and r.indicators == []


@pytest.mark.parametrize("kind", ["sha256", "md5", "domain", "ip", "email", "filename"])
def test_bundled_pack(kind):
    r = read(bundled_pack(), "apt40-pack")
    assert not r.errors and len(r.indicators) == 136
    of = [i for i in r.indicators if i.type == kind]
    assert of and all(i.first_seen and i.first_seen.year >= 2017 for i in of)
    assert all(i.source in ("PP-17", "FE-18a", "FE-18b", "RF-18", "EL-20", "MS-20", "PP-22",
                            "ASD-24", "SIGMA-APT40-UA") for i in r.indicators)
