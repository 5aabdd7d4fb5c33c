"""The spectrum types every stage passes along.

``Spectrum`` is one measured spectrum; ``SpectrumBatch`` is many spectra on one shared
axis (a stacked recording, a library matrix), so that processing is a matrix
operation instead of a Python loop over spectra.

Both validate on construction and normalise what the formats allow to vary:

* the axis must be 1-D, finite and strictly monotonic; a decreasing axis (common in
  FTIR files) is flipped together with the intensities, so downstream code only
  ever sees increasing wavenumbers;
* at least ``MIN_POINTS`` points;
* intensities may hold NaN only for dead pixels: a spectrum that is all NaN or all
  zero is rejected;
* percent transmittance is converted to absorbance, ``A = -log10(T / 100)``;
  non-positive transmittance values cannot be converted and become NaN (dead).

Arrays are stored read-only, so the pure processing functions can never modify
their input by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from fol.errors import SpectrumError

TECHNIQUES = ("raman", "ftir")
UNITS = ("counts", "absorbance", "transmittance")
MIN_POINTS = 64

#: the intensity unit to use when a source does not say
DEFAULT_UNIT = {"raman": "counts", "ftir": "absorbance"}


def check_technique(technique: str) -> str:
    t = str(technique).strip().lower()
    if t not in TECHNIQUES:
        raise SpectrumError(f"unknown technique {technique!r} (expected one of {', '.join(TECHNIQUES)})")
    return t


def check_unit(unit: str) -> str:
    u = str(unit).strip().lower()
    if u in ("%t", "percent transmittance", "transmission"):
        u = "transmittance"
    if u in ("arbitrary", "a.u.", "au", "intensity", "arb"):
        u = "counts"
    if u not in UNITS:
        raise SpectrumError(f"unknown intensity unit {unit!r} (expected one of {', '.join(UNITS)})")
    return u


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _check_axis(wavenumber) -> tuple[np.ndarray, bool]:
    """Return the axis as float64 and whether it was decreasing (and so flipped)."""
    x = np.asarray(wavenumber, dtype=np.float64)
    if x.ndim != 1:
        raise SpectrumError(f"wavenumber axis must be 1-D, got shape {x.shape}")
    if x.size < MIN_POINTS:
        raise SpectrumError(f"spectrum has {x.size} points; at least {MIN_POINTS} are needed")
    if not np.all(np.isfinite(x)):
        raise SpectrumError("wavenumber axis contains NaN or infinite values")
    d = np.diff(x)
    if np.all(d > 0):
        return x, False
    if np.all(d < 0):
        return x[::-1], True
    raise SpectrumError("wavenumber axis is not strictly monotonic (repeated or out-of-order values)")


def to_absorbance(transmittance_percent: np.ndarray) -> np.ndarray:
    """``A = -log10(T/100)``; T <= 0 cannot be converted and becomes NaN."""
    t = np.asarray(transmittance_percent, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = -np.log10(t / 100.0)
    a[~(t > 0)] = np.nan
    return a


def row_problem(y: np.ndarray) -> str | None:
    """Why one intensity row cannot be analysed, or None if it can."""
    finite = np.isfinite(y)
    if not finite.any():
        return "intensities are all NaN"
    if np.isinf(y).any():
        return "intensities contain infinite values"
    if not np.any(y[finite] != 0):
        return "intensities are all zero"
    if finite.sum() < MIN_POINTS:
        return f"only {int(finite.sum())} valid points; at least {MIN_POINTS} are needed"
    return None


@dataclass(frozen=True, eq=False)
class Spectrum:
    """One spectrum: increasing wavenumber axis (cm-1), intensities, technique, unit, metadata.

    ``unit`` is ``counts`` or ``absorbance`` after construction (transmittance is converted).
    ``metadata`` holds device and sample information (see the recording format).
    """

    wavenumber: np.ndarray
    intensity: np.ndarray
    technique: str
    unit: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        technique = check_technique(self.technique)
        unit = check_unit(self.unit or DEFAULT_UNIT[technique])
        x, flipped = _check_axis(self.wavenumber)
        y = np.asarray(self.intensity, dtype=np.float64)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise SpectrumError(f"intensity shape {y.shape} does not match axis length {x.shape[0]}")
        if flipped:
            y = y[::-1]
        if unit == "transmittance":
            y, unit = to_absorbance(y), "absorbance"
        problem = row_problem(y)
        if problem:
            raise SpectrumError(problem)
        object.__setattr__(self, "technique", technique)
        object.__setattr__(self, "unit", unit)
        object.__setattr__(self, "wavenumber", _frozen(x))
        object.__setattr__(self, "intensity", _frozen(y))
        object.__setattr__(self, "metadata", dict(self.metadata))

    def __len__(self) -> int:
        return self.wavenumber.shape[0]

    def as_batch(self) -> "SpectrumBatch":
        return SpectrumBatch(self.wavenumber, self.intensity[None, :], self.technique, self.unit, self.metadata)


@dataclass(frozen=True, eq=False)
class SpectrumBatch:
    """``m`` spectra on one shared increasing axis: ``intensity`` has shape ``[m, n]``.

    The axis is validated as for ``Spectrum``. Rows are checked individually and
    rows that cannot be analysed are *not* rejected (one dead row must not lose a
    whole stack): ``invalid`` maps their row index to the reason, and consumers
    report them as errors.
    """

    wavenumber: np.ndarray
    intensity: np.ndarray
    technique: str
    unit: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    invalid: Mapping[int, str] = field(init=False, default_factory=dict)

    def __post_init__(self):
        technique = check_technique(self.technique)
        unit = check_unit(self.unit or DEFAULT_UNIT[technique])
        x, flipped = _check_axis(self.wavenumber)
        y = np.asarray(self.intensity, dtype=np.float64)
        if y.ndim == 1:
            y = y[None, :]
        if y.ndim != 2 or y.shape[1] != x.shape[0]:
            raise SpectrumError(f"intensity shape {y.shape} does not match axis length {x.shape[0]}")
        if flipped:
            y = y[:, ::-1]
        if unit == "transmittance":
            y, unit = to_absorbance(y), "absorbance"
        invalid = {}
        for i in np.flatnonzero(~np.all(np.isfinite(y), axis=1) | ~np.any(y != 0, axis=1)):
            problem = row_problem(y[i])
            if problem:
                invalid[int(i)] = problem
        object.__setattr__(self, "technique", technique)
        object.__setattr__(self, "unit", unit)
        object.__setattr__(self, "wavenumber", _frozen(x))
        object.__setattr__(self, "intensity", _frozen(y))
        object.__setattr__(self, "metadata", dict(self.metadata))
        object.__setattr__(self, "invalid", invalid)

    def __len__(self) -> int:
        return self.intensity.shape[0]

    def __getitem__(self, i: int) -> Spectrum:
        return Spectrum(self.wavenumber, self.intensity[i], self.technique, self.unit, self.metadata)

    @classmethod
    def stack(cls, spectra: "list[Spectrum]") -> "SpectrumBatch":
        """Stack spectra that share one axis (raises if they do not)."""
        if not spectra:
            raise SpectrumError("cannot stack an empty list of spectra")
        first = spectra[0]
        for s in spectra[1:]:
            if s.technique != first.technique or s.unit != first.unit:
                raise SpectrumError("cannot stack spectra of different technique or unit")
            if s.wavenumber.shape != first.wavenumber.shape or not np.array_equal(s.wavenumber, first.wavenumber):
                raise SpectrumError("cannot stack spectra on different axes: resample them first")
        return cls(first.wavenumber, np.stack([s.intensity for s in spectra]), first.technique, first.unit, first.metadata)
