"""Sources turn evidence files into TableBatches; one module per format."""

from __future__ import annotations
