"""The case store: measurements with their case fields, results and a hash-chained audit log.

``CaseStore(path)`` opens (creating and migrating) one SQLite database in WAL mode;
``fol.cases.evidence`` writes and reads the per-acquisition evidence recordings
(HDF5) that the database indexes. See docs/station.md.
"""

from fol.cases.store import CASE_FIELDS, SCHEMA_VERSION, CaseStore, StoreError, spectrum_sha256

__all__ = ["CASE_FIELDS", "SCHEMA_VERSION", "CaseStore", "StoreError", "spectrum_sha256"]
