"""SQL shared by the cloud audit analytics."""
from __future__ import annotations

CLOUD_EV = ("{'table': 'cloud_audit', 'artefact': _artefact, 'locator': _locator, "
            "'source_file': source_file, 'line': NULL::BIGINT, 'ts': ts}")
CLOUD_EVIDENCE = f"list({CLOUD_EV} ORDER BY ts, _locator)[1:200]"
