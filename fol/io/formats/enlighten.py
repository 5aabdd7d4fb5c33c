"""Wasatch Photonics ENLIGHTEN CSV exports.

``key,value`` header lines (``ENLIGHTEN Version,4.1.44``, ``Model``, ``Serial Number``,
``Laser Wavelength``, ``Integration Time``, ...), then a table with a
``Pixel,Wavelength,Wavenumber,Processed,Raw,Dark`` header (columns vary with the
export settings). The spectrum is ``Wavenumber`` (the Raman shift, cm-1) against
``Processed`` (dark-corrected counts), chosen by name; a file without both is refused.
Model, serial number, laser wavelength, integration time, measurement id and timestamp
are kept as metadata.
"""

from __future__ import annotations

from pathlib import Path

from fol.errors import FormatError
from fol.io.formats.common import parse_number, stem, read_bytes
from fol.io.formats.text import choose_columns, decode, parse_table, table_spectrum
from fol.spectrum import Spectrum

_META = {"model": "model", "serial number": "serial", "laser wavelength": "laser_wavelength_nm",
         "integration time": "integration_ms", "measurement id": "measurement_id", "timestamp": "acquired",
         "enlighten version": "software", "scan averaging": "averages", "detector": "detector",
         "laser power mw": "laser_mw", "label": "label"}
_TEXT = {"serial number", "measurement id", "timestamp", "enlighten version", "model", "label", "detector"}


def sniff(head: bytes, path: Path) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"ENLIGHTEN Version,")


def parse(raw: bytes, label: str, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    lines = decode(raw).splitlines()
    meta: dict = {"source": label, "file": label, "technique_from": "file", "vendor": "Wasatch Photonics"}
    for line in lines:
        if line.startswith(("Pixel,", "Wavenumber,")):
            break
        key, _, value = line.partition(",")
        key = key.strip().lower()
        if key in _META and value.strip():
            v = value.strip()
            num = None if key in _TEXT else parse_number(v)
            meta[_META[key]] = num if num is not None else v
    table = parse_table(lines, label)
    if not table.columns:
        raise FormatError(f"{label}: ENLIGHTEN file without its column header")
    xcol, ycol = choose_columns(table, label, x_names=("wavenumber",), y_names=("processed",))
    return [(stem(label), table_spectrum(label, table, xcol, ycol, "raman", "counts", meta))]


def read(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    return parse(read_bytes(path), str(path), technique)
