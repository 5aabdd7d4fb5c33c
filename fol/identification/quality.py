"""Signal-quality checks on the raw spectrum, before the preprocessing recipe.

They tell the decision stage (and the operator) whether a spectrum is good enough to
trust a match: a weak, clipped, fluorescence-swamped or partly measured spectrum
gives an ``inconclusive`` verdict rather than a confident wrong one. Every check
works on a whole batch with array operations; ``assess`` returns a struct of arrays
whose ``row(i)`` is the ``quality`` object of the result format.

Definitions (docs/preprocessing.md gives the reasoning):

* noise ``sigma``: robust standard deviation of the white noise, from the second
  difference of the raw row, ``1.4826 * MAD(d2) / sqrt(6)`` (the second difference of
  white noise has variance ``6 sigma**2``; the median ignores bands and spikes);
* background: grey opening of the lightly smoothed row with a structuring element
  wider than any band (``BACKGROUND_WIDTH_CM``), then a moving average of the same
  width — the broad fluorescence/sloping baseline under the bands;
* ``snr``: tallest band above the background (smoothed row minus background) over
  ``sigma``, capped at ``SNR_CAP``;
* ``fluorescence`` (Raman): share of the signal above the dark level that is broad
  background, where the strongest band is: ``(background - floor) / (smoothed row -
  floor)`` at that band, in 0..1 (0.9: the background rises nine times the band's
  height above the floor); 0 for FTIR. ``floor`` is the row's dark/bias level,
  estimated as the lowest the background gets over the analysed range (but not below
  the smoothed row's own minimum, where the edge extension makes the background dip):
  a detector offset (a Horiba CCD's ~1,000-count bias, which CHARISMA's exports keep)
  is not fluorescence. The recordings carry no dark level to use instead. A
  fluorescence pedestal flat over the whole range looks the same as a dark offset and
  is not counted either; it costs what its shot noise costs, which ``snr`` measures.
  Summed over the whole spectrum the share would sit near 1 for any real Raman
  spectrum, as bands are narrow;
* ``saturated``: the device said so (error 202) or the row's maximum repeats over at
  least ``SATURATION_RUN`` neighbouring pixels (a clipped band has a flat top).

All checks look at the part of the axis inside the library grid, the part the
analysis uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import ndimage
from fol.preprocess.savgol import savgol_filter  # scipy.signal.savgol_filter, bit for bit, without its import cost

from fol.preprocess.steps import covered, fill_nan
from fol.preprocess.rowstats import mad_rows
from fol.spectrum import MIN_POINTS, SpectrumBatch

#: below this SNR a match is not trusted (``low_snr``)
SNR_LOW = 10.0
#: reported SNR never exceeds this (noise-free data would give infinity, which JSON cannot hold)
SNR_CAP = 1e4
#: Raman: above this share of the signal (above the dark level) at the strongest band in the broad background,
#: ``high_fluorescence``
FLUORESCENCE_HIGH = 0.9
#: below this fraction of the library grid covered by the axis, ``axis_out_of_range``
COVERAGE_MIN = 0.9
#: this many neighbouring pixels at the row maximum mean a clipped detector
SATURATION_RUN = 3
#: structuring-element width of the background estimate, cm-1: wider than any band
BACKGROUND_WIDTH_CM = {"raman": 200.0, "ftir": 400.0}
#: Savitzky-Golay window (points) and order for the band heights
SMOOTH_WINDOW, SMOOTH_ORDER = 7, 3
#: analyzer-protocol error codes that set a quality flag
DEVICE_ERROR_FLAGS = {202: "saturated", 203: "detector_warm"}
#: flags a driver may pass directly in ``metadata["flags"]``
DEVICE_FLAGS = ("saturated", "detector_warm")


def device_flags(metadata: Mapping[str, Any]) -> set[str]:
    """Quality flags the device reported, from ``metadata``.

    Read from ``metadata["device_errors"]`` (``[[code, message], ...]``, or that list
    as a JSON string, as stored in recordings; codes 202 and 203 of the analyzer
    protocol) and from ``metadata["flags"]`` (a list of flag names).
    """
    found = {f for f in metadata.get("flags", ()) or () if f in DEVICE_FLAGS}
    errors = metadata.get("device_errors") or []
    if isinstance(errors, (str, bytes)):
        try:
            errors = json.loads(errors)
        except json.JSONDecodeError:
            errors = []
    for entry in errors:
        code = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
        try:
            flag = DEVICE_ERROR_FLAGS.get(int(code))
        except (TypeError, ValueError):
            flag = None
        if flag:
            found.add(flag)
    return found


def noise_sigma(Y: np.ndarray) -> np.ndarray:
    """Robust white-noise standard deviation of each row from its second difference."""
    _, mad = mad_rows(np.diff(Y, n=2, axis=1))
    return 1.4826 * mad[:, 0] / np.sqrt(6.0)


def background(x: np.ndarray, Y: np.ndarray, width_cm: float) -> np.ndarray:
    """Broad background of each row: grey opening then moving average, both ``width_cm`` wide.

    Rows are extended at both ends by point reflection (continuing their edge trend),
    so the opening does not dip at an edge where the background is steep.
    """
    width = int(np.clip(round(width_cm / np.median(np.diff(x))), 3, x.size - 1))
    padded = np.pad(Y, ((0, 0), (width, width)), mode="reflect", reflect_type="odd")
    opened = ndimage.grey_opening(padded, size=(1, width))
    return ndimage.uniform_filter1d(opened, width, axis=1)[:, width:-width]


def flat_top(Y: np.ndarray, run: int = SATURATION_RUN) -> np.ndarray:
    """Rows whose maximum value repeats over ``run`` neighbouring pixels (constant rows excluded)."""
    top = Y.max(axis=1, keepdims=True)
    at_max = (Y == top) & (top > Y.min(axis=1, keepdims=True))
    window = np.ones((1, run), dtype=bool)
    return ndimage.binary_erosion(at_max, structure=window, border_value=0).any(axis=1)


@dataclass(frozen=True, eq=False)
class Quality:
    """Quality of ``m`` spectra as arrays; ``row(i)`` gives the result-format object."""

    snr: np.ndarray
    saturated: np.ndarray
    fluorescence: np.ndarray
    flags: list[list[str]]

    def __len__(self) -> int:
        return self.snr.shape[0]

    def row(self, i: int) -> dict:
        """``{"snr", "saturated", "fluorescence", "flags"}`` of row ``i``, plain Python types."""
        return {
            "snr": round(float(self.snr[i]), 2),
            "saturated": bool(self.saturated[i]),
            "fluorescence": round(float(self.fluorescence[i]), 3),
            "flags": list(self.flags[i]),
        }

    def rows(self) -> list[dict]:
        return [self.row(i) for i in range(len(self))]


def signal_levels(x: np.ndarray, Y: np.ndarray, technique: str) -> tuple[np.ndarray, np.ndarray]:
    """SNR and fluorescence share of each row (see the module docstring)."""
    sigma = noise_sigma(Y)
    smoothed = savgol_filter(Y, SMOOTH_WINDOW, SMOOTH_ORDER, axis=1, mode="mirror")
    bg = background(x, smoothed, BACKGROUND_WIDTH_CM[technique])
    bands = smoothed - bg
    height = np.maximum(bands.max(axis=1), 0.0)
    snr = np.minimum(np.divide(height, sigma, out=np.where(height > 0, SNR_CAP, 0.0), where=sigma > 0), SNR_CAP)
    if technique != "raman":
        return snr, np.zeros(Y.shape[0])
    floor = dark_level(smoothed, bg)
    peak = (np.arange(Y.shape[0]), bands.argmax(axis=1))
    level, total = bg[peak] - floor, smoothed[peak] - floor
    return snr, np.clip(np.divide(level, total, out=np.zeros_like(total), where=total > 0), 0.0, 1.0)


def dark_level(smoothed: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Dark/bias level of each row: the lowest its broad background gets, not below the row's own minimum.

    The background's minimum is the level nothing broad rises from over the range: a
    detector offset, or zero for a dark-corrected row. Where the edge extension of
    ``background`` makes it dip below the data (a band or a steep slope at an edge:
    up to 3,000 counts below a Wasatch row whose minimum is 0), the smoothed row's minimum bounds
    it; a single dead pixel lowers the row minimum but hardly the background's (the
    moving average spreads it), so the larger of the two is robust to both.
    """
    return np.maximum(bg.min(axis=1), smoothed.min(axis=1))


def assess(batch: SpectrumBatch, grid: np.ndarray) -> Quality:
    """Check every raw spectrum of ``batch`` against the library ``grid``."""
    grid = np.asarray(grid, dtype=np.float64)
    x = batch.wavenumber
    _, Y = fill_nan(x, batch.intensity)
    first, stop = np.searchsorted(x, grid[0], side="left"), np.searchsorted(x, grid[-1], side="right")
    if stop - first >= MIN_POINTS:  # a slice of the increasing axis: row-major view, not a copy
        x, Y = x[first:stop], Y[:, first:stop]
    snr, fluorescence = signal_levels(x, Y, batch.technique)
    invalid = np.isin(np.arange(len(batch)), list(batch.invalid))
    snr[invalid] = fluorescence[invalid] = 0.0

    from_device = device_flags(batch.metadata)
    saturated = (flat_top(Y) & ~invalid) | ("saturated" in from_device)
    common = []
    if covered(batch.wavenumber, grid).mean() < COVERAGE_MIN:
        common.append("axis_out_of_range")
    if "detector_warm" in from_device:
        common.append("detector_warm")
    flags = []
    for i in range(len(batch)):
        checks = (
            ("low_snr", snr[i] < SNR_LOW),
            ("saturated", saturated[i]),
            ("high_fluorescence", fluorescence[i] > FLUORESCENCE_HIGH),
        )
        flags.append([name for name, fires in checks if fires] + common)
    return Quality(snr, saturated, fluorescence, flags)
