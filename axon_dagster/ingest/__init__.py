"""MCAP recordings (Axon's output) -> Lance recordings with decoded columns.

Cloud-side only (pyarrow, lance, rosbags): the edge agent never imports this package. Importing
the package itself is light; the heavy libraries load when a function runs.
"""

from __future__ import annotations

_LAZY = {
    "IngestError": "mcap_to_lance", "IngestResult": "mcap_to_lance", "ingest_mcap": "mcap_to_lance",
    "ingested_schema": "mcap_to_lance", "iter_mcap_rows": "mcap_to_lance", "axon_facts": "mcap_to_lance",
    "RosDecoderFactory": "decode", "DECODED_COLUMNS": "decode", "NUMERIC_LIST_COLUMNS": "decode",
    "decoded_columns": "decode", "PAYLOAD_HASH_COLUMNS": "payload_hash",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
