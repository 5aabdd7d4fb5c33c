"""Importers for measured spectra files: JCAMP-DX, two-column text/CSV, spectral-synth JSON.

``read_spectra_file(path, technique=None)`` returns ``(name hint, Spectrum)`` pairs, one
per spectrum in the file, and raises ``FormatError`` naming the file for anything it
cannot read as a Raman or infrared spectrum. The format is recognised by content
(``##`` opens JCAMP-DX, ``{``/``[`` opens JSON, otherwise numeric text) and by suffix
for binary vendor formats, which are refused (export them as JCAMP-DX or CSV).

* **JCAMP-DX** is parsed by the ``jcamp`` package (AFFN and the compressed
  DIF/DUP/SQZ/PAC/FIX forms; compound ``LINK`` files come back as ``children``, one
  per block). Technique from ``DATA TYPE`` (INFRARED -> ftir, RAMAN -> raman) unless
  given; other data types (mass spectra, NMR, UV/VIS, chromatograms, peak tables,
  interferograms) are refused. A decoded length that differs from ``NPOINTS``, or a
  failed Y-check (the file's own line checksum), means the decompression did not
  reproduce the data, and the file is refused rather than imported wrong.
* **Text tables**: leading header lines are skipped; the delimiter (tab, ``;``, ``,``
  or whitespace) is sniffed on the first data line; ``numpy.loadtxt`` reads the first
  two columns with ``.`` as the decimal separator. Rows are sorted by x and rows with
  the same x are averaged (step-scan instruments repeat points where windows join).
* **spectral-synth JSON**: the ENFSI IR records (one record or an array of them).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import jcamp
import numpy as np

from fol.errors import FolError, FormatError
from fol.spectrum import MIN_POINTS, Spectrum, check_technique

JCAMP_SUFFIXES = (".jdx", ".dx", ".jcamp", ".jcm")
#: binary (or vendor-specific) formats we do not parse, by suffix, for the error message
VENDOR_FORMATS = {".spc": "Galactic/Thermo SPC", ".spa": "Thermo OMNIC SPA", ".asp": "Agilent ASP",
                  ".wdf": "Renishaw WDF", ".zip": "ZIP archive", ".opus": "Bruker OPUS"}
_OPUS_SUFFIX = re.compile(r"\.\d+$")  # Bruker OPUS files are named sample.0, sample.1, ...

_PERCENT_T = ("%T", "PERCENT TRANSMITTANCE", "%TRANSMITTANCE")
_TRANSMITTANCE = ("TRANSMITTANCE", "TRANSMISSION", "T", *_PERCENT_T)
_ABSORBANCE = ("ABSORBANCE", "A", "ABS", "ABSORBANCE UNITS", "AU", "(MICROMOL/MOL)-1M-1 (BASE 10)")
_RAMAN_Y = ("", "ARBITRARY UNITS", "ARBITRARY", "COUNTS", "INTENSITY", "RAMAN INTENSITY", "A.U.", "RELATIVE INTENSITY")
_CM1 = ("1/CM", "CM-1", "CM^-1", "WAVENUMBERS", "WAVENUMBER", "1/CM (WAVENUMBER)")
_MICROMETRES = ("MICROMETERS", "MICROMETRES", "MICRONS", "UM", "µM")
_NANOMETRES = ("NANOMETERS", "NANOMETRES", "NM")
#: at or below this maximum a TRANSMITTANCE block is a 0..1 fraction, above it percent
_FRACTION_MAX = 2.0


def read_spectra_file(path: str | Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    """Every spectrum in a JCAMP-DX, text/CSV or spectral-synth JSON file, with a name hint.

    ``technique`` ("raman"/"ftir") overrides what the file says and is required for
    text tables that do not say it. Raises FormatError naming the file otherwise.
    """
    path = Path(path)
    technique = check_technique(technique) if technique else None
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None
    suffix = path.suffix.lower()
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"\x00" in head or suffix in VENDOR_FORMATS or _OPUS_SUFFIX.search(suffix):
        kind = VENDOR_FORMATS.get(suffix, "Bruker OPUS" if _OPUS_SUFFIX.search(suffix) else "binary")
        raise FormatError(f"{path}: unsupported format ({kind}); export the spectrum as JCAMP-DX or CSV")
    if start.startswith(b"##"):
        return _read_jcamp(path, technique)
    if suffix in JCAMP_SUFFIXES:
        raise FormatError(f"{path}: not JCAMP-DX (a JCAMP-DX file starts with '##TITLE=')")
    if start[:1] in (b"{", b"["):
        return _read_json(path, technique)
    return _read_table(path, technique)


def _spectrum(path: Path, where: str, x, y, technique: str, unit: str, metadata: dict) -> Spectrum:
    """A validated Spectrum, or FormatError naming the file and block."""
    try:
        return Spectrum(x, y, technique, unit, metadata)
    except FolError as e:
        raise FormatError(f"{path}{where}: {e}") from None


# ----------------------------------------------------------------------------- JCAMP-DX


def _jcamp_blocks(d: dict) -> list[dict]:
    """The data blocks of a parsed JCAMP-DX file (compound LINK files hold them as children)."""
    if d.get("children"):
        return [b for c in d["children"] for b in _jcamp_blocks(c)]
    return [d]


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


def _jcamp_x(path: Path, where: str, x: np.ndarray, xunits: str, technique: str) -> np.ndarray:
    """The abscissa in cm-1 (infrared micrometre/nanometre axes converted; Raman must be a shift in 1/CM)."""
    u = xunits.upper()
    if u in _CM1:
        return x
    if technique == "ftir" and u in _MICROMETRES:
        return 1e4 / x
    if technique == "ftir" and u in _NANOMETRES:
        return 1e7 / x
    raise FormatError(f"{path}{where}: XUNITS {xunits!r} not supported for {technique} (expected 1/CM)")


def _jcamp_y(path: Path, where: str, y: np.ndarray, yunits: str, technique: str) -> tuple[np.ndarray, str]:
    """Intensities and unit: transmittance in percent (0..1 fractions scaled), absorbance, or Raman counts."""
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
    raise FormatError(f"{path}{where}: YUNITS {yunits!r} not supported for {technique}")


def jcamp_lines(raw: bytes) -> list[str]:
    """JCAMP-DX text as lines, normalised for the ``jcamp`` parser.

    Three things found in real JCAMP-DX files that ``jcamp`` does not handle are
    undone here: classic Mac line ends (CR only), a DOS end-of-file mark (Ctrl-Z) and
    inline ``$$`` comments (``##YFACTOR= 2.4e-09 $$ comment``, or after data), which
    it would parse as part of the value.
    """
    text = raw.decode("utf-8", "replace").split("\x1a", 1)[0].replace("\r\n", "\n").replace("\r", "\n")
    return [line.split("$$", 1)[0].rstrip() + "\n" for line in text.split("\n")]


def _read_jcamp(path: Path, technique: str | None) -> list[tuple[str, Spectrum]]:
    messages = io.StringIO()
    try:
        with contextlib.redirect_stdout(messages):  # jcamp prints its integrity checks
            parsed = jcamp.read(jcamp_lines(path.read_bytes()))
    except Exception as e:  # noqa: BLE001 - jcamp raises bare Exception, IndexError, numpy errors on bad data
        raise FormatError(f"{path}: cannot parse JCAMP-DX ({type(e).__name__}: {e})") from None
    ycheck = [line for line in messages.getvalue().splitlines() if line.startswith("Y-Check failed")]
    if ycheck:
        raise FormatError(f"{path}: JCAMP-DX data do not decompress consistently ({ycheck[0]})")
    blocks = _jcamp_blocks(parsed)
    out: list[tuple[str, Spectrum]] = []
    refused: list[str] = []
    for k, block in enumerate(blocks, start=1):
        where = f", block {k}" if len(blocks) > 1 else ""
        data_type = _clean_label(block.get("data type", block.get("datatype")))
        detected = jcamp_technique(data_type) if data_type else None
        if data_type and detected is None:
            refused.append(f"DATA TYPE {data_type!r}")
            continue
        tech = technique or detected
        if tech is None:
            refused.append("no DATA TYPE; give the technique")
            continue
        spectrum = _jcamp_block(path, where, block, tech, data_type)
        title = _clean_label(block.get("title")) or (path.stem + (f" #{k}" if len(blocks) > 1 else ""))
        out.append((title, spectrum))
    if not out:
        found = "; ".join(sorted(set(refused)))
        raise FormatError(f"{path}: not a Raman or infrared spectrum ({found})")
    return out


def _jcamp_block(path: Path, where: str, block: dict, technique: str, data_type: str) -> Spectrum:
    """One JCAMP block that claims to be a spectrum, checked and converted."""
    if "peak table" in block or "ntuples" in block:
        form = "a peak table" if "peak table" in block else "NTUPLES data (not supported)"
        raise FormatError(f"{path}{where}: {data_type or 'block'} holds {form}, not a continuous spectrum")
    x = np.asarray(block.get("x", []), dtype=np.float64)
    y = np.asarray(block.get("y", []), dtype=np.float64)
    if y.size == 0:
        raise FormatError(f"{path}{where}: no XYDATA in the block")
    npoints = block.get("npoints")
    if x.size != y.size or (isinstance(npoints, (int, float)) and int(npoints) != y.size):
        raise FormatError(f"{path}{where}: decoded {y.size} values but NPOINTS is {npoints} "
                          f"(corrupt or unsupported compression)")
    x = _jcamp_x(path, where, x, _clean_label(block.get("xunits")), technique)
    y, unit = _jcamp_y(path, where, y, _clean_label(block.get("yunits")), technique)
    metadata = {"source": str(path), "file": str(path), "title": _clean_label(block.get("title"))}
    for key in ("origin", "owner"):
        if block.get(key):
            metadata[key] = _clean_label(block[key])
    return _spectrum(path, where, x, y, technique, unit, metadata)


# ----------------------------------------------------------------------------- text tables


_FIELD_SPLIT = re.compile(r"[,;\t ]+")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_data_line(lines: list[str]) -> int | None:
    """Index of the first line whose first two fields are numbers (everything before is header)."""
    for i, line in enumerate(lines):
        fields = _FIELD_SPLIT.split(line.strip())
        if len(fields) >= 2 and _is_number(fields[0]) and _is_number(fields[1]):
            return i
    return None


def sniff_delimiter(line: str) -> str | None:
    """Tab, ``;`` or ``,`` if the line uses it, else None (whitespace), in that order of preference."""
    for d in ("\t", ";", ","):
        if d in line:
            return d
    return None


def _header_technique_unit(header: str) -> tuple[str | None, str | None]:
    """What header lines say about technique and unit (lower-cased text), if anything."""
    h = header.lower()
    technique = unit = None
    if "raman" in h:
        technique = "raman"
    elif re.search(r"absorb|transmit|%t\b|\bft-?ir\b|infrared|\batr\b", h):
        technique = "ftir"
    if re.search(r"transmit|%t\b", h):
        unit = "transmittance"
    elif "absorb" in h:
        unit = "absorbance"
    return technique, unit


def merge_sorted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows sorted by x, rows with equal x averaged; also returns how many rows were merged away."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if ux.size == x.size:
        return x, y, 0
    return ux, np.bincount(inverse, weights=y) / counts, int(x.size - ux.size)


def _read_table(path: Path, technique: str | None) -> list[tuple[str, Spectrum]]:
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None
    start = _first_data_line(lines)
    if start is None:
        raise FormatError(f"{path}: unsupported format (no two-column numeric data found)")
    said_technique, said_unit = _header_technique_unit("\n".join(lines[:start]))
    technique = technique or said_technique
    if technique is None:
        raise FormatError(f"{path}: the file does not say whether it holds a Raman or FTIR spectrum; "
                          "give the technique")
    delimiter = sniff_delimiter(lines[start])
    try:
        table = np.loadtxt(lines[start:], delimiter=delimiter, usecols=(0, 1), ndmin=2, comments="#")
    except ValueError as e:
        hint = " (decimal commas are not supported)" if delimiter != "," and "," in lines[start] else ""
        raise FormatError(f"{path}: cannot read two numeric columns after {start} header lines{hint}: {e}") from None
    if table.shape[0] < MIN_POINTS:
        raise FormatError(f"{path}: unsupported format ({table.shape[0]} data rows; expected two columns, "
                          f"wavenumber and intensity, of at least {MIN_POINTS} rows)")
    x, y, merged = merge_sorted(table[:, 0], table[:, 1])
    metadata = {"source": str(path), "file": str(path)}
    if merged:
        metadata["import_note"] = f"rows sorted by x; {merged} rows with a repeated x averaged"
    unit = said_unit if (said_unit and technique == "ftir") else ("counts" if technique == "raman" else "absorbance")
    return [(path.stem, _spectrum(path, "", x, y, technique, unit, metadata))]


# ----------------------------------------------------------------------------- spectral-synth JSON


def _is_spectral_synth(record) -> bool:
    spectrum = record.get("spectrum") if isinstance(record, dict) else None
    return isinstance(spectrum, dict) and {"firstX", "lastX", "y"} <= spectrum.keys()


def _read_json(path: Path, technique: str | None) -> list[tuple[str, Spectrum]]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: malformed JSON ({e})") from None
    records = obj if isinstance(obj, list) else [obj]
    if not records or not all(_is_spectral_synth(r) for r in records):
        raise FormatError(f"{path}: unsupported format (JSON that is not a spectral-synth record)")
    if technique not in (None, "ftir"):
        raise FormatError(f"{path}: spectral-synth records are infrared spectra, not {technique}")
    return [_spectral_synth(path, f", record {i}" if len(records) > 1 else "", r) for i, r in enumerate(records)]


def spectral_synth_absorbance(y: np.ndarray) -> np.ndarray:
    """Absorbance (scaled to a maximum of 1) from spectral-synth pseudo-transmittance.

    The records store ``y = 100 * (1 - A / Amax)``: a *linear* rescaling of absorbance
    drawn the way transmittance is plotted, not a measured transmittance. Its exact
    inverse is ``A / Amax = 1 - y / 100``. Treating y as real transmittance
    (``-log10(y/100)``) would push the strongest band towards infinity (y = 0.01 gives
    A = 4) and compress the weak ones, distorting every band ratio.
    """
    return 1.0 - np.asarray(y, dtype=np.float64) / 100.0


def _spectral_synth(path: Path, where: str, record: dict) -> tuple[str, Spectrum]:
    s = record["spectrum"]
    try:
        y = np.array([np.nan if v is None else float(v) for v in s["y"]], dtype=np.float64)
        first, last = float(s["firstX"]), float(s["lastX"])
    except (TypeError, ValueError):
        raise FormatError(f"{path}{where}: spectrum firstX, lastX and y must be numbers") from None
    if y.size < 2:
        raise FormatError(f"{path}{where}: spectrum has {y.size} values")
    x = first + (last - first) * np.arange(y.size) / (y.size - 1)
    name = str(record.get("name") or record.get("id") or path.stem).strip()
    aliases = [str(a).strip() for a in (record.get("aliases") or []) if str(a).strip()]
    enfsi_id = record.get("enfsiId")
    source = str(record.get("source") or "spectral-synth")
    metadata = {"source": source + (f", enfsiId {enfsi_id}" if enfsi_id is not None else ""),
                "file": str(path), "aliases": aliases, "validated": bool(record.get("validated", False)),
                "enfsi_id": enfsi_id, "measurement": str(record.get("measurement") or "")}
    return name, _spectrum(path, where, x, spectral_synth_absorbance(y), "ftir", "absorbance", metadata)
