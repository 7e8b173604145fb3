"""Property tests: sign-in and cloud audit exports (entra_signin, okta_log, auth_csv,
m365_audit, gws_audit): random JSON objects carrying the keys each sniffer looks for, with
values of every JSON type where the reader expects one; random CSVs under sign-in headers.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz._contract import (
    examples,
    hostile_text,
    json_values,
    maybe_gzip,
    mutated,
    run_source,
)

TIMES = st.one_of(st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.1234567Z",
                                   "2024-13-45T99:00:00Z", "1704164645", "1704164645123",
                                   "01/02/2024 03:04:05", ""]),
                  st.integers(-2**70, 2**70), st.floats(allow_nan=False), json_values)

#: keys each reader reads, with the shapes a good export has
SHAPES: dict[str, dict[str, st.SearchStrategy]] = {
    "entra_signin": {
        "createdDateTime": TIMES, "userPrincipalName": json_values, "appDisplayName":
        json_values, "ipAddress": json_values, "status": st.one_of(st.fixed_dictionaries(
            {"errorCode": json_values, "failureReason": json_values}), json_values),
        "location": st.one_of(st.fixed_dictionaries({"city": json_values, "geoCoordinates":
                                                     json_values}), json_values),
        "deviceDetail": json_values, "mfaDetail": json_values,
        "authenticationDetails": st.one_of(st.lists(st.fixed_dictionaries({
            "authenticationMethod": json_values, "succeeded": json_values,
            "authenticationStepRequirement": json_values})), json_values),
        "authenticationRequirement": json_values, "isInteractive": json_values,
        "correlationId": json_values, "id": json_values},
    "okta_log": {
        "published": TIMES, "eventType": st.one_of(st.sampled_from(
            ["user.session.start", "system.push.send_factor_verify_push",
             "user.authentication.auth_via_mfa", "policy.evaluate_sign_on"]), json_values),
        "actor": st.one_of(st.fixed_dictionaries({"alternateId": json_values}), json_values),
        "client": st.one_of(st.fixed_dictionaries({
            "ipAddress": json_values, "geographicalContext": json_values,
            "userAgent": json_values, "device": json_values}), json_values),
        "outcome": json_values, "target": json_values, "debugContext": json_values,
        "authenticationContext": json_values, "uuid": json_values},
    "m365_audit": {
        "CreationTime": TIMES, "Operation": st.one_of(st.sampled_from(
            ["FileDownloaded", "New-InboxRule", "Consent to application."]), json_values),
        "Workload": json_values, "UserId": json_values, "ClientIP": json_values,
        "Parameters": st.one_of(st.lists(st.fixed_dictionaries({"Name": json_values,
                                                                "Value": json_values})),
                                json_values),
        "Target": json_values, "ModifiedProperties": json_values, "ObjectId": json_values,
        "SharingType": json_values, "Id": json_values},
    "gws_audit": {
        "kind": st.just("admin#reports#activity"), "id": st.one_of(st.fixed_dictionaries(
            {"time": TIMES, "applicationName": json_values}), json_values),
        "actor": json_values, "ipAddress": json_values,
        "events": st.one_of(st.lists(st.fixed_dictionaries({
            "name": json_values, "parameters": st.one_of(st.lists(st.fixed_dictionaries(
                {"name": json_values, "value": json_values})), json_values)})), json_values)},
}


@st.composite
def export(draw: st.DrawFn, name: str) -> bytes:
    shape = SHAPES[name]
    objs = []
    for _ in range(draw(st.integers(1, 5))):
        keys = draw(st.lists(st.sampled_from(sorted(shape)), unique=True, min_size=3))
        objs.append({k: draw(shape[k]) for k in keys} | (
            {"eventType": "x", "actor": {}, "published": "x"} if name == "okta_log" else {}))
    layout = draw(st.sampled_from(["array", "lines", "page", "one"]))
    if layout == "array":
        text = json.dumps(objs)
    elif layout == "lines":
        text = "\n".join(json.dumps(o) for o in objs)
    elif layout == "page":
        text = json.dumps({"value": objs, "items": objs})
    else:
        text = json.dumps(objs[0])
    if name == "gws_audit" and "admin#reports#activity" not in text:
        text = text + '\n{"kind": "admin#reports#activity"}'
    return draw(mutated(text.encode("utf-8", "replace"), max_ops=3))


@settings(max_examples=examples(1.5))
@given(st.sampled_from(sorted(SHAPES)).flatmap(lambda n: st.tuples(st.just(n), export(n))))
def test_json_exports(case):
    name, data = case
    run_source(name, data, filename="export.json", whole_sniff=True)


CSV_HEADERS = [["time", "user", "src_ip", "result", "mfa", "app", "session", "country"],
               ["Timestamp", "Username", "Client_IP", "Status", "Factor"],
               ["CreationDate", "UserIds", "Operations", "AuditData"],
               ["Event Time", "Login Name", "Client Address", "Outcome"]]


@st.composite
def sign_in_csv(draw: st.DrawFn) -> tuple[str, bytes]:
    header = draw(st.sampled_from(CSV_HEADERS))
    rows = [",".join(header)]
    for _ in range(draw(st.integers(0, 6))):
        cells = [draw(st.one_of(TIMES.map(str), hostile_text, st.just(
            '"{""CreationTime"": ""2024-01-01T00:00:00"", ""Operation"": ""x""}"')))
                 for _ in range(len(header) + draw(st.sampled_from([0, 0, -1, 2])))]
        rows.append(",".join(c.replace("\n", " ") for c in cells))
    name = "m365_audit" if "AuditData" in header else "auth_csv"
    return name, draw(maybe_gzip(draw(mutated("\n".join(rows).encode("utf-8", "replace")))))


@settings(max_examples=examples(1.5))
@given(sign_in_csv())
def test_csv_exports(case):
    name, data = case
    mapping = {"ts": "Event Time", "user": "Login Name", "src_ip": "Client Address",
               "result": "Outcome"}
    run_source(name, data, filename="export.csv", whole_sniff=True,
               options={"auth_mapping": mapping})


@settings(max_examples=examples(1))
@given(st.binary(max_size=2048), st.sampled_from(sorted([*SHAPES, "auth_csv"])))
def test_random_bytes(data, name):
    run_source(name, data)
