"""What every format module shares: validated spectra, range checks, row merging."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fol.errors import FolError, FormatError
from fol.spectrum import Spectrum

#: the region each technique's library is searched in; a spectrum must cover at least
#: ``MIN_COVERAGE`` of it to be a mid-infrared/Raman spectrum of the library's range
FINGERPRINT = {"ftir": (650.0, 1800.0), "raman": (400.0, 1800.0)}
MIN_COVERAGE = 0.5


#: a spectrum file larger than this is refused before it is read (no spectrum format needs it)
MAX_FILE_BYTES = 256 << 20


def read_bytes(path: Path) -> bytes:
    """The bytes of a spectrum file, refused in one line if it cannot be read or is absurdly large."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FormatError(f"{path}: {size / 2**20:,.0f} MiB is too large for a spectrum file "
                              f"(limit {MAX_FILE_BYTES >> 20} MiB)")
        return path.read_bytes()
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None


def spectrum(label: str, x, y, technique: str, unit: str, metadata: dict) -> Spectrum:
    """A validated Spectrum in the library's range, or FormatError naming ``label`` (file, block)."""
    try:
        s = Spectrum(x, y, technique, unit, metadata)
    except FolError as e:
        raise FormatError(f"{label}: {e}") from None
    check_range(label, s)
    return s


def check_range(label: str, s: Spectrum) -> None:
    """Refuse what is not a mid-IR/Raman spectrum of the library's range (NIR, UV/visible, constant)."""
    lo, hi = FINGERPRINT[s.technique]
    x = s.wavenumber
    covered = max(0.0, min(hi, float(x[-1])) - max(lo, float(x[0]))) / (hi - lo)
    if covered < MIN_COVERAGE:
        span = f"{x[0]:.0f}-{x[-1]:.0f} cm-1"
        if s.technique == "ftir" and x[0] >= 3500:
            why = f"covers {span}: a near-infrared spectrum, not mid-infrared"
        elif x[0] >= 9000:
            why = f"covers {span}: a UV/visible or near-infrared spectrum"
        else:
            why = f"covers {span}, less than {MIN_COVERAGE:.0%} of the {lo:.0f}-{hi:.0f} cm-1 fingerprint region"
        raise FormatError(f"{label}: not a {'mid-infrared' if s.technique == 'ftir' else 'Raman'} spectrum "
                          f"of the library's range ({why})")
    y = s.intensity[np.isfinite(s.intensity)]
    if y.size and float(np.ptp(y)) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        raise FormatError(f"{label}: the intensities are constant ({y[0]:g}): not a spectrum")


def merge_sorted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows sorted by x, rows with equal x averaged; also returns how many rows were merged away."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if ux.size == x.size:
        return x, y, 0
    return ux, np.bincount(inverse, weights=y) / counts, int(x.size - ux.size)


def file_technique(given: str | None, said: str | None, label: str) -> tuple[str, str]:
    """(technique, where it came from): what the file says wins; ``given`` only where it does not say."""
    if said:
        return said, "file"
    if given:
        return given, "given"
    raise FormatError(f"{label}: the file does not say whether it holds a Raman or FTIR spectrum; "
                      "give the technique (--technique)")


def stem(path: str | Path) -> str:
    return Path(str(path)).stem


_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def parse_number(text: str) -> float | None:
    """A float from ``text`` with ``.`` or ``,`` as the decimal separator, or None."""
    t = text.strip()
    if not t or not _NUMBER.match(t):
        return None
    return float(t.replace(",", "."))
