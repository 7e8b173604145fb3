"""SQL shared by the identity analytics."""
from __future__ import annotations

AUTH_EV = ("{'table': 'auth', 'artefact': _artefact, 'locator': _locator, "
           "'source_file': source_file, 'line': NULL::BIGINT, 'ts': ts}")
#: Evidence list of a group of auth rows, in time order.
AUTH_EVIDENCE = f"list({AUTH_EV} ORDER BY ts, _locator)[1:200]"
