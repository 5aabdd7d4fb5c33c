"""B&W Tek BWSpec/BWRam text exports (the CHARISMA files).

``key;value`` header lines (decimal commas: ``laser_wavelength;784,9``), then a
``;``-separated table ``Pixel;Wavelength;Wavenumber;Raman Shift;Dark;Reference;Raw data #1;
Dark Subtracted #1;...`` whose first pixels have empty axis cells. The spectrum is
``Raman Shift`` against ``Dark Subtracted #1``; model, title (spectrometer), laser
wavelength, integration time and averages are kept as metadata.
"""

from __future__ import annotations

from pathlib import Path

from fol.errors import FormatError
from fol.io.formats.common import parse_number, stem, read_bytes
from fol.io.formats.text import choose_columns, decode, parse_table, table_spectrum
from fol.spectrum import Spectrum

_META = {"model": "model", "title": "spectrometer", "laser_wavelength": "laser_wavelength_nm",
         "intigration times(ms)": "integration_ms", "average number": "averages", "date": "date",
         "file version": "software", "laser_powerlevel": "laser_power_percent"}


def sniff(head: bytes, path: Path) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"File Version;BW")


def parse(raw: bytes, label: str, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    lines = decode(raw).splitlines()
    meta: dict = {"source": label, "file": label, "technique_from": "file", "vendor": "B&W Tek"}
    for line in lines:
        if line.startswith("Pixel;"):
            break
        key, _, value = line.partition(";")
        key = key.strip().lower()
        if key in _META and value.strip():
            v = value.strip()
            num = parse_number(v)
            meta[_META[key]] = num if num is not None and key not in ("date", "file version") else v
    table = parse_table(lines, label)
    if not table.columns:
        raise FormatError(f"{label}: B&W Tek file without its 'Pixel;...' column header")
    xcol, ycol = choose_columns(table, label, x_names=("raman shift",), y_names=("dark subtracted",))
    return [(stem(label), table_spectrum(label, table, xcol, ycol, "raman", "counts", meta))]


def read(path: Path, technique: str | None = None) -> list[tuple[str, Spectrum]]:
    return parse(read_bytes(path), str(path), technique)
