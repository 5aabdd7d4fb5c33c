"""Text tables (CSV/TXT) as instruments and spreadsheets write them.

* Encoding UTF-8 (a BOM is dropped), Latin-1 as a fallback; CRLF, LF or CR line ends.
* Delimiter: tab, ``;``, ``,`` or whitespace, sniffed on the first data row.
* Decimal commas (``1234,5``) where the delimiter is not a comma, as Europe writes them.
* Header rows before the data are skipped; the last one, when it has one name per
  column, names the columns. ``# key: value`` comment lines are kept as metadata
  (``fol library export`` writes ``# technique: ftir`` and the entry's name and class so
  that its files re-import without options).
* Two columns: wavenumber and intensity. More than two: the columns are chosen by their
  header names (``Raman Shift``/``Wavenumber`` for the axis; ``Dark Subtracted``,
  ``Processed``, ``Intensity``, ``Absorbance``, ``Transmittance``, ... for the
  intensity). A wider table whose columns cannot be told apart by name is refused,
  never guessed.
* Empty cells (``0;   ;   ;867,6``) are missing values; rows without an axis value or
  intensity are dropped. Rows are sorted by x, rows with the same x averaged.
* Technique: from the header (``Raman``; ``absorbance``, ``transmittance``, ``FTIR``,
  ``ATR``, ...); the given one only for files that do not say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fol.errors import FormatError
from fol.io.formats.common import (
    file_technique,
    merge_sorted,
    parse_number,
    spectrum,
    stem, read_bytes)
from fol.spectrum import MIN_POINTS, Spectrum

SUFFIXES = (".csv", ".txt", ".tsv", ".dat", ".prn", ".asc")

#: axis column names, best first (normalised: lower case, units and ``#n`` dropped)
X_NAMES = ("raman shift", "ramanshift", "raman_shift", "shift", "wavenumber", "wavenumbers", "wave number",
           "wavenumber_cm-1", "raman_shift_cm-1", "cm-1", "x")
#: intensity column names, best first
Y_NAMES = ("dark subtracted", "processed", "intensity", "raman intensity", "absorbance", "transmittance",
           "%t", "counts", "signal", "y", "reflectance")
_COMMENT = re.compile(r"^\s*#\s*([A-Za-z_][\w ]*?)\s*[:=]\s*(.*?)\s*$")


def sniff(head: bytes, path: Path) -> bool:
    return True  # the fallback: anything textual that no other format claimed


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sniff_delimiter(line: str) -> str | None:
    """Tab, ``;`` or ``,`` if the line uses it, else None (whitespace), in that order of preference."""
    for d in ("\t", ";", ","):
        if d in line:
            return d
    return None


def _split(line: str, delimiter: str | None) -> list[str]:
    fields = line.strip().split(delimiter) if delimiter else line.split()
    if delimiter and fields and fields[-1].strip() == "":  # a trailing delimiter (BWSpec rows end with ';')
        fields = fields[:-1]
    return [f.strip().strip('"') for f in fields]


def _numeric_row(fields: list[str], decimal_comma: bool) -> list[float] | None:
    """The row's values (NaN for empty cells) if every non-empty cell is a number and the first is one."""
    if len(fields) < 2 or not fields[0]:
        return None
    out = []
    for f in fields:
        if not f:
            out.append(np.nan)
            continue
        if not decimal_comma and "," in f:
            return None
        v = parse_number(f)
        if v is None:
            return None
        out.append(v)
    return out


@dataclass
class Table:
    header: list[str]
    columns: list[str] | None
    data: np.ndarray  # float64 [rows, cols], NaN for empty cells
    delimiter: str | None
    decimal_comma: bool
    comments: dict = field(default_factory=dict)


def parse_table(lines: list[str], label: str) -> Table:
    """The numeric block of a text table, with its header lines and column names."""
    start = delimiter = None
    decimal_comma = False
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        d = sniff_delimiter(line)
        tries = [(d, d != ",")]
        if d == "," and len(line.split()) >= 2:  # "1234,5 0,25": whitespace-separated decimal commas
            tries.insert(0, (None, True))
        found = next(((dd, dc) for dd, dc in tries if _numeric_row(_split(line, dd), dc) is not None), None)
        if found is not None:
            start, (delimiter, decimal_comma) = i, found
            break
    if start is None:
        raise FormatError(f"{label}: unsupported format (no numeric table found)")
    rows = []
    for line in lines[start:]:
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            continue
        values = _numeric_row(_split(line, delimiter), decimal_comma)
        if values is None:
            break  # trailing text after the table
        rows.append(values)
    width = max(len(r) for r in rows)
    data = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        data[i, :len(r)] = r
    header = lines[:start]
    comments = {}
    for line in header:
        m = _COMMENT.match(line)
        if m:
            comments[m.group(1).strip().lower()] = m.group(2)
    columns = None
    for line in reversed(header):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        names = _split(line, delimiter)
        if len(names) >= width and all(parse_number(n) is None for n in names if n):
            columns = names[:width]
        break
    return Table(header, columns, data, delimiter, decimal_comma, comments)


def _norm(name: str) -> str:
    n = name.lower().strip()
    n = re.sub(r"\(.*?\)|\[.*?\]|#\s*\d+", "", n)
    return re.sub(r"\s+", " ", n).strip(" _")


def _find(columns: list[str], wanted: tuple[str, ...], exclude: set[int]) -> list[int]:
    """Indices of the columns that match the best-ranked name in ``wanted``."""
    norm = [_norm(c) for c in columns]
    for w in wanted:
        hits = [i for i, n in enumerate(norm) if i not in exclude and (n == w or n.startswith(w + " ")
                                                                       or n.replace(" ", "_") == w)]
        if hits:
            return hits
    return []


def choose_columns(table: Table, label: str, x_names=X_NAMES, y_names=Y_NAMES) -> tuple[int, int]:
    """(axis column, intensity column): the only two, or by header names; refused when unclear."""
    used = [j for j in range(table.data.shape[1]) if np.isfinite(table.data[:, j]).any()]
    if len(used) < 2:
        raise FormatError(f"{label}: unsupported format (one numeric column; expected wavenumber and intensity)")
    cols = table.columns
    if cols is not None:
        xs = _find(cols, x_names, set())
        ys = _find(cols, y_names, set(xs[:1]))
        if xs and ys and len(ys) == 1:
            return xs[0], ys[0]
        if len(used) > 2:
            named = ", ".join(repr(c) for c in cols)
            why = (f"several intensity columns ({', '.join(repr(cols[j]) for j in ys)})" if len(ys) > 1 else
                   "no column named as the axis (wavenumber, Raman shift)" if not xs else
                   "no column named as the intensity (intensity, absorbance, processed, ...)")
            raise FormatError(f"{label}: a table of {len(used)} columns ({named}) with {why}: "
                              "which columns are the spectrum is not guessed; export wavenumber and intensity only")
    if len(used) > 2:
        raise FormatError(f"{label}: a table of {len(used)} numeric columns without a header naming them: "
                          "which columns are the spectrum is not guessed; export wavenumber and intensity only")
    return used[0], used[1]


def header_technique_unit(text: str) -> tuple[str | None, str | None]:
    """What header text says about technique and unit, if anything."""
    h = text.lower()
    technique = unit = None
    m = re.search(r"#\s*technique\s*[:=]\s*(raman|ftir)", h)
    if m:
        technique = m.group(1)
    elif "raman" in h:
        technique = "raman"
    elif re.search(r"absorb|transmit|%t\b|\bft-?ir\b|infrared|\batr\b", h):
        technique = "ftir"
    if re.search(r"transmit|%t\b", h):
        unit = "transmittance"
    elif "absorb" in h:
        unit = "absorbance"
    return technique, unit


def table_spectrum(label: str, table: Table, xcol: int, ycol: int, technique: str, unit: str,
                   metadata: dict) -> Spectrum:
    d = table.data
    ok = np.isfinite(d[:, xcol]) & np.isfinite(d[:, ycol])
    if ok.sum() < MIN_POINTS:
        raise FormatError(f"{label}: unsupported format ({int(ok.sum())} data rows; expected two columns, "
                          f"wavenumber and intensity, of at least {MIN_POINTS} rows)")
    x, y, merged = merge_sorted(d[ok, xcol], d[ok, ycol])
    metadata = dict(metadata)
    if merged:
        metadata["import_note"] = f"rows sorted by x; {merged} rows with a repeated x averaged"
    return spectrum(label, x, y, technique, unit, metadata)


def parse(raw: bytes, label: str, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    lines = decode(raw).splitlines()
    table = parse_table(lines, label)
    xcol, ycol = choose_columns(table, label)
    said_text = "\n".join(table.header)
    said, said_unit = header_technique_unit(said_text)
    tech, source = file_technique(technique, said, label)
    if table.columns:
        ycol_unit = header_technique_unit(table.columns[ycol])[1]
        said_unit = ycol_unit or said_unit
    unit = said_unit if (said_unit and tech == "ftir") else ("counts" if tech == "raman" else "absorbance")
    meta = {"source": label, "file": label, "technique_from": source}
    if table.columns:
        meta["columns"] = f"{table.columns[xcol]}, {table.columns[ycol]}"
    c = table.comments
    name = c.get("name") or stem(label)
    for key in ("class", "alarm", "class_source", "provenance", "library"):
        if c.get(key):
            meta[f"export_{key}"] = c[key]
    return [(name, table_spectrum(label, table, xcol, ycol, tech, unit, meta))]


def read(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    return parse(read_bytes(path), str(path), technique)
