"""Evidence recordings: one write-once fol recording (HDF5) per acquisition.

Each acquisition's raw spectrum, with the instrument metadata and the case fields, is
written to a temporary file beside its final name, flushed and ``fsync``-ed, then renamed
into place (``os.replace`` is atomic) and the directory ``fsync``-ed: a process killed at
any moment leaves either no file or a complete one, and a file once complete is never
opened for writing again (so a later crash cannot damage an earlier acquisition, as it
could if many acquisitions shared one HDF5 file). Files are named
``YYYY-MM-DD/YYYYMMDDTHHMMSSffffffZ-<8 hex>.h5`` under the evidence directory. The sample
group carries ``case_id`` (case number), ``sample_id`` (item number), ``operator`` and
``description`` (the recording format's keys) plus ``item_no`` and ``notes``.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

from fol.cases.store import file_sha256, fsync_dir, spectrum_sha256


def sample_attrs(case: dict) -> dict:
    return {"case_id": case.get("case_no", ""), "sample_id": case.get("item_no", ""),
            "item_no": case.get("item_no", ""), "operator": case.get("operator", ""),
            "description": case.get("description", ""), "notes": case.get("notes", "")}


def case_of(sample: dict) -> dict:
    """Case fields back from an entry's sample attributes."""
    return {"case_no": str(sample.get("case_id", "")), "item_no": str(sample.get("item_no", sample.get("sample_id", ""))),
            "operator": str(sample.get("operator", "")), "description": str(sample.get("description", "")),
            "notes": str(sample.get("notes", ""))}


def write_evidence(evidence_dir: str | Path, spectrum, case: dict) -> dict:
    """Write ``spectrum`` as a new evidence file; returns ``recording`` (relative path), ``entry``,
    ``path``, ``spectrum_sha256`` and ``recording_sha256``. Durable on return."""
    from fol.io.recording import RecordingWriter

    now = datetime.now(timezone.utc)
    root = Path(evidence_dir)
    day = root / now.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    name = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(4)}.h5"
    final = day / name
    tmp = day / f".{name}.tmp"
    try:
        with RecordingWriter(tmp, mode="w") as w:
            entry = w.add_spectrum(spectrum, sample=sample_attrs(case))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_dir(day)
    return {"recording": final.relative_to(root).as_posix(), "entry": entry, "path": str(final),
            "spectrum_sha256": spectrum_sha256(spectrum.wavenumber, spectrum.intensity),
            "recording_sha256": file_sha256(final)}


def read_evidence(path: str | Path):
    """(spectrum, EntryInfo) of an evidence file's one entry."""
    from fol.io.recording import read_spectrum

    return read_spectrum(path)


def clean_temporaries(evidence_dir: str | Path) -> list[Path]:
    """Remove temporary files left by a process killed mid-write (never complete acquisitions)."""
    root = Path(evidence_dir)
    gone = []
    if root.is_dir():
        for p in root.rglob(".*.h5.tmp"):
            try:
                p.unlink()
                gone.append(p)
            except OSError:
                pass
    return gone
