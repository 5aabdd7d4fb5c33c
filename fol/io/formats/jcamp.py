"""JCAMP-DX (``.jdx``, ``.dx``, ``.jcamp``, ...), through the maintained ``jcamp`` package.

AFFN and the compressed DIF/DUP/SQZ/PAC/FIX forms; compound ``LINK`` files come back as
one spectrum per block. The technique comes from ``DATA TYPE`` (INFRARED -> ftir, RAMAN
-> raman); a given technique is used only for blocks without one. Other data types (mass
spectra, NMR, UV/VIS, chromatograms, peak tables, interferograms) are refused. A decoded
length that differs from ``NPOINTS``, or a failed Y-check (the file's own line
checksum), means the decompression did not reproduce the data: refused, not imported wrong.

Names: the ``TITLE``, except

* ENFSI DWG library files, ``##TITLE=#0128v - Fentanyl`` (``v`` validated, ``n`` not):
  the name after the dash, with ``enfsi_id``, ``validated``, and ``CAS NAME``,
  ``MOLFORM``, ``MW``, ``SAMPLE DESCRIPTION`` kept as metadata;
* PerkinElmer exports (``ORIGIN`` names PerkinElmer or "PE Spectrum"), whose TITLE is the
  operator's name: the file name, with the title kept as ``operator``.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np

from fol.errors import FormatError
from fol.io.formats.common import file_technique, spectrum, stem, read_bytes
from fol.spectrum import Spectrum

SUFFIXES = (".jdx", ".dx", ".jcamp", ".jcm")

_PERCENT_T = ("%T", "PERCENT TRANSMITTANCE", "%TRANSMITTANCE")
_TRANSMITTANCE = ("TRANSMITTANCE", "TRANSMISSION", "T", *_PERCENT_T)
_ABSORBANCE = ("ABSORBANCE", "A", "ABS", "ABSORBANCE UNITS", "AU", "(MICROMOL/MOL)-1M-1 (BASE 10)")
_RAMAN_Y = ("", "ARBITRARY UNITS", "ARBITRARY", "COUNTS", "INTENSITY", "RAMAN INTENSITY", "A.U.", "RELATIVE INTENSITY")
_CM1 = ("1/CM", "CM-1", "CM^-1", "WAVENUMBERS", "WAVENUMBER", "1/CM (WAVENUMBER)")
_MICROMETRES = ("MICROMETERS", "MICROMETRES", "MICRONS", "UM", "µM")
_NANOMETRES = ("NANOMETERS", "NANOMETRES", "NM")
#: at or below this maximum a TRANSMITTANCE block is a 0..1 fraction, above it percent
_FRACTION_MAX = 2.0
#: ``#0128v - Fentanyl`` (ENFSI DWG IR library titles)
ENFSI_TITLE = re.compile(r"^#\s*(\d+)\s*([vVnN]?)\s*[-–]\s*(.+?)\s*$")
_PERKINELMER = re.compile(r"perkin\s*elmer|\bPE Spectrum\b", re.IGNORECASE)
#: JCAMP labels kept as metadata (jcamp lower-cases label names)
_KEEP = {"origin": "origin", "owner": "owner", "cas name": "cas_name", "cas registry no": "cas",
         "molform": "formula", "mw": "mw", "sample description": "sample_description",
         "spectrometer/data system": "instrument", "date": "date", "state": "state",
         "$fol class": "export_class", "$fol alarm": "export_alarm"}


def sniff(head: bytes, path: Path) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"##")


def jcamp_technique(data_type: str) -> str | None:
    """ftir/raman for a JCAMP ``DATA TYPE`` that is a continuous vibrational spectrum, else None."""
    t = data_type.upper()
    if "PEAK" in t or "INTERFEROGRAM" in t:
        return None
    if "RAMAN" in t:
        return "raman"
    if "INFRARED" in t or re.search(r"\b(FT-?IR|IR|NIR|MIR)\b", t):
        return "ftir"
    return None


def _clean_label(value) -> str:
    """A JCAMP label value without an inline ``$$`` comment."""
    return str(value if value is not None else "").split("$$")[0].strip()


def jcamp_lines(raw: bytes) -> list[str]:
    """JCAMP-DX text as lines, normalised for the ``jcamp`` parser.

    Undone here: classic Mac line ends (CR only), a DOS end-of-file mark (Ctrl-Z) and
    inline ``$$`` comments, which ``jcamp`` would parse as part of the value.
    """
    text = raw.decode("utf-8", "replace").lstrip("\ufeff").split("\x1a", 1)[0]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [line.split("$$", 1)[0].rstrip() + "\n" for line in text.split("\n")]


def _blocks(d: dict) -> list[dict]:
    if d.get("children"):
        return [b for c in d["children"] for b in _blocks(c)]
    return [d]


def _x_cm1(label: str, x: np.ndarray, xunits: str, technique: str) -> np.ndarray:
    u = xunits.upper()
    if u in _CM1:
        return x
    if technique == "ftir" and u in _MICROMETRES:
        return 1e4 / x
    if technique == "ftir" and u in _NANOMETRES:
        return 1e7 / x
    raise FormatError(f"{label}: XUNITS {xunits!r} not supported for {technique} (expected 1/CM)")


def _y_unit(label: str, y: np.ndarray, yunits: str, technique: str) -> tuple[np.ndarray, str]:
    u = yunits.upper()
    if technique == "ftir" and u in _TRANSMITTANCE:
        finite = y[np.isfinite(y)]
        if u not in _PERCENT_T and finite.size and finite.max() <= _FRACTION_MAX:
            y = y * 100.0
        return y, "transmittance"
    if technique == "ftir" and u in _ABSORBANCE:
        return y, "absorbance"
    if technique == "raman" and u in _RAMAN_Y:
        return y, "counts"
    raise FormatError(f"{label}: YUNITS {yunits!r} not supported for {technique}")


def name_and_metadata(block: dict, file_label: str, fallback: str) -> tuple[str, dict]:
    """The name hint and descriptive metadata of one block (ENFSI and PerkinElmer titles handled)."""
    title = _clean_label(block.get("title"))
    meta: dict = {"title": title}
    for key, out in _KEEP.items():
        value = _clean_label(block.get(key))
        if value:
            meta[out] = value
    m = ENFSI_TITLE.match(title)
    if m:
        meta.update(enfsi_id=int(m.group(1)), validated=m.group(2).lower() == "v")
        if meta.get("sample_description"):
            meta["form"] = meta["sample_description"]
        return m.group(3), meta
    if _PERKINELMER.search(meta.get("origin", "")):
        if title:
            meta["operator"] = title
        return fallback, meta
    return title or fallback, meta


def parse(raw: bytes, label: str, technique: str | None = None, fallback_name: str | None = None
          ) -> list[tuple[str, Spectrum]]:
    """Every spectrum block of JCAMP-DX bytes; ``label`` names the file (or zip member) in errors."""
    import jcamp

    messages = io.StringIO()
    try:
        with contextlib.redirect_stdout(messages):  # jcamp prints its integrity checks
            parsed = jcamp.read(jcamp_lines(raw))
    except Exception as e:  # noqa: BLE001 - jcamp raises bare Exception, IndexError, numpy errors on bad data
        raise FormatError(f"{label}: cannot parse JCAMP-DX ({type(e).__name__}: {e})") from None
    ycheck = [line for line in messages.getvalue().splitlines() if line.startswith("Y-Check failed")]
    if ycheck:
        raise FormatError(f"{label}: JCAMP-DX data do not decompress consistently ({ycheck[0]})")
    blocks = _blocks(parsed)
    fallback_name = fallback_name or stem(label)
    out: list[tuple[str, Spectrum]] = []
    refused: list[str] = []
    for k, block in enumerate(blocks, start=1):
        where = f"{label}, block {k}" if len(blocks) > 1 else label
        data_type = _clean_label(block.get("data type", block.get("datatype")))
        detected = jcamp_technique(data_type) if data_type else None
        if data_type and detected is None:
            refused.append(f"DATA TYPE {data_type!r}")
            continue
        if detected is None and technique is None:
            refused.append("no DATA TYPE; give the technique")
            continue
        tech, said = file_technique(technique, detected, where)
        fallback = fallback_name + (f" #{k}" if len(blocks) > 1 else "")
        name, meta = name_and_metadata(block, label, fallback)
        try:
            out.append((name, _block(where, block, tech, data_type, {"source": label, "file": label, **meta,
                                                                     "technique_from": said})))
        except FormatError as e:
            if len(blocks) == 1:
                raise
            refused.append(str(e).removeprefix(label + ", "))  # one bad block of a compound file: the others stay
    if out and refused:
        for _, s in out:
            s.metadata["import_note"] = f"{len(refused)} other block(s) refused: " + "; ".join(refused)
    if not out:
        raise FormatError(f"{label}: not a Raman or infrared spectrum ({'; '.join(sorted(set(refused)))})")
    return out


def _block(label: str, block: dict, technique: str, data_type: str, meta: dict) -> Spectrum:
    if "peak table" in block or "ntuples" in block:
        form = "a peak table" if "peak table" in block else "NTUPLES data (not supported)"
        raise FormatError(f"{label}: {data_type or 'block'} holds {form}, not a continuous spectrum")
    x = np.asarray(block.get("x", []), dtype=np.float64)
    y = np.asarray(block.get("y", []), dtype=np.float64)
    if y.size == 0:
        raise FormatError(f"{label}: no XYDATA in the block")
    npoints = block.get("npoints")
    if x.size != y.size or (isinstance(npoints, (int, float)) and int(npoints) != y.size):
        raise FormatError(f"{label}: decoded {y.size} values but NPOINTS is {npoints} "
                          f"(corrupt or unsupported compression)")
    x = _x_cm1(label, x, _clean_label(block.get("xunits")), technique)
    y, unit = _y_unit(label, y, _clean_label(block.get("yunits")), technique)
    return spectrum(label, x, y, technique, unit, meta)


def read(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    return parse(read_bytes(path), str(path), technique)
