"""ENFSI IR records as JSON (the spectral-synth re-packaging: one record or an array).

``{"id", "name", "aliases", "formula", "mw", "form", "measurement", "validated",
"enfsiId", "category", "source", "spectrum": {"firstX", "lastX", "y": [...]}}``; the
axis is ``firstX + (lastX - firstX) * i / (n - 1)`` cm-1 and ``y = 100 * (1 - A / Amax)``
(see ``spectral_synth_absorbance``). Always infrared. ``category`` (``opioids``,
``stimulants``, ``cutting-agents``, ...) is kept as ``category``: the class hint the
importer uses for names the catalogue does not know.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fol.errors import FormatError
from fol.io.formats.common import spectrum, read_bytes
from fol.spectrum import Spectrum


def sniff(head: bytes, path: Path) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def is_record(record) -> bool:
    s = record.get("spectrum") if isinstance(record, dict) else None
    return isinstance(s, dict) and {"firstX", "lastX", "y"} <= s.keys()


def spectral_synth_absorbance(y: np.ndarray) -> np.ndarray:
    """Absorbance (scaled to a maximum of 1) from spectral-synth pseudo-transmittance.

    The records store ``y = 100 * (1 - A / Amax)``: a *linear* rescaling of absorbance
    drawn the way transmittance is plotted, not a measured transmittance; its exact
    inverse is ``A / Amax = 1 - y / 100``. Treating y as transmittance (``-log10(y/100)``)
    would distort every band ratio.
    """
    return 1.0 - np.asarray(y, dtype=np.float64) / 100.0


def parse(raw: bytes, label: str, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    try:
        obj = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{label}: malformed JSON ({e})") from None
    records = obj if isinstance(obj, list) else [obj]
    if not records or not all(is_record(r) for r in records):
        raise FormatError(f"{label}: unsupported format (JSON that is not an ENFSI/spectral-synth record)")
    return [_record(f"{label}, record {i}" if len(records) > 1 else label, label, r) for i, r in enumerate(records)]


def _record(where: str, label: str, record: dict) -> tuple[str, Spectrum]:
    s = record["spectrum"]
    try:
        y = np.array([np.nan if v is None else float(v) for v in s["y"]], dtype=np.float64)
        first, last = float(s["firstX"]), float(s["lastX"])
    except (TypeError, ValueError):
        raise FormatError(f"{where}: spectrum firstX, lastX and y must be numbers") from None
    if y.size < 2:
        raise FormatError(f"{where}: spectrum has {y.size} values")
    x = first + (last - first) * np.arange(y.size) / (y.size - 1)
    name = str(record.get("name") or record.get("id") or Path(label).stem).strip()
    aliases = [str(a).strip() for a in (record.get("aliases") or []) if str(a).strip()]
    enfsi_id = record.get("enfsiId")
    source = str(record.get("source") or "spectral-synth")
    meta = {"source": source + (f", enfsiId {enfsi_id}" if enfsi_id is not None else ""),
            "file": label, "aliases": aliases, "validated": bool(record.get("validated", False)),
            "enfsi_id": enfsi_id, "measurement": str(record.get("measurement") or ""), "technique_from": "file"}
    for key in ("category", "form", "formula", "mw", "inchikey", "iupac"):
        if record.get(key) not in (None, ""):
            meta[key] = record[key]
    return name, spectrum(where, x, spectral_synth_absorbance(y), "ftir", "absorbance", meta)


def read(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    return parse(read_bytes(path), str(path), technique)
