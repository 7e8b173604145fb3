"""The declared tables of a case store. Adding a table or column bumps SCHEMA_VERSION."""

from __future__ import annotations

from tidehunt.model.fields import FieldSpec, FieldType, TableSchema

SCHEMA_VERSION = 1

F = FieldType

#: Provenance columns every table starts with.
COMMON: tuple[FieldSpec, ...] = (
    FieldSpec("ts", F.DATETIME, "Event time in UTC"),
    FieldSpec("host", F.STRING, "Host the event was recorded on"),
    FieldSpec("_source", F.STRING, "NAME of the Source that read the row"),
    FieldSpec("_artefact", F.STRING, "Manifest id of the evidence file"),
    FieldSpec("_locator", F.STRING, "Where in the evidence: record id, line or offset"),
)

WINDOWS = TableSchema(
    name="windows",
    doc=(
        "Windows event log records (EVTX and JSON exports). Keeps Sigma/Sysmon field names "
        "(Image, CommandLine, ...) as extra string columns so SigmaHQ rules run unmapped."
    ),
    fields=(
        *COMMON,
        FieldSpec("channel", F.STRING, "Event log channel, e.g. Security"),
        FieldSpec("provider", F.STRING, "Provider name, e.g. Microsoft-Windows-Sysmon"),
        FieldSpec("event_id", F.INT, "Event ID"),
        FieldSpec("record_id", F.INT, "EventRecordID in the log"),
        FieldSpec("source_file", F.PATH, "Evidence path as given on the command line"),
    ),
    open_columns=True,
    extra_types=(
        ("Image", F.PATH),
        ("ParentImage", F.PATH),
        ("TargetFilename", F.PATH),
        ("ImageLoaded", F.PATH),
        ("CommandLine", F.COMMAND_LINE),
        ("ParentCommandLine", F.COMMAND_LINE),
        ("User", F.USER),
        ("SubjectUserName", F.USER),
        ("TargetUserName", F.USER),
        ("SourceIp", F.IP),
        ("DestinationIp", F.IP),
        ("IpAddress", F.IP),
        ("DestinationHostname", F.DOMAIN),
        ("QueryName", F.DOMAIN),
    ),
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (WINDOWS,)}

#: Sigma field names that map onto a declared column of the windows table.
WINDOWS_ALIASES: dict[str, str] = {
    "EventID": "event_id",
    "Channel": "channel",
    "Provider_Name": "provider",
    "Computer": "host",
    "EventRecordID": "record_id",
}
