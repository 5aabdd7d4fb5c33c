"""The measurement model of the simulated analyzer: pure numpy functions, seeded.

A simulated spectrum is built from clean reference spectra (a :class:`ReferenceSet`,
e.g. a section of the reference library) the way a handheld instrument would see them:

1. **Mixture.** Each reference is put through the instrument (step 2) and scaled to a
   unit strongest band, then weighted by its mass fraction times its relative
   cross-section (default 1: every substance scatters/absorbs equally per unit mass).
   Fractions may sum to less than 1: the rest is material without signal.
2. **Instrument.** The device axis is wider than a typical library grid: Raman
   150-2200 cm-1 on 1024 pixels that are linear in *wavelength* on the detector (so
   non-uniform in Raman shift, with a little dispersion curvature); FTIR 600-4000 cm-1
   at half the resolution. The axis the device reports is off from where the pixels
   really look by a small calibration error (offset and tilt, fixed per unit).
   Spectra are convolved with a Gaussian line shape whose FWHM is the resolution.
3. **Raman** (counts, per scan, dark-corrected): signal = 200 counts/(mW s) x laser
   power x integration time x detector response (quantum efficiency falling into the
   NIR) x (mixture + fluorescence background). The background is broad (a decaying
   exponential and a wide hump, random per spectrum). Shot noise (sqrt of the signal)
   and read noise (12 counts; x4 with a warm detector) shrink as 1/sqrt(averages).
   Cosmic-ray spikes arrive at 0.3 per second of exposure, one scan each. A scan
   that reaches 65535 counts clips (saturation: error 202).
4. **FTIR** (absorbance): mixture x 0.6 AU (x contact variation) + a baseline
   (offset, tilt, curvature) + water-vapour lines (1350-1950 and 3550-3950 cm-1) and
   CO2 bands (2338/2361 and 667 cm-1) of random sign and size, + noise of
   2e-3 AU / response / sqrt(scan time / 0.1 s) (x3 with a warm detector).
   Absorbance clips at 3 AU (error 202).

``snr`` (optional) overrides the noise level so that the strongest band of the
analyte (or of the whole signal, for a blank) is ``snr`` times the noise there.

Everything random comes from the ``numpy.random.Generator`` passed in, so a seed
reproduces a recording exactly. :func:`simulate_batch` is vectorised over spectra and
pixels (no Python loop per spectrum), for recordings of thousands of spectra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter1d

from fol.catalogue import load_catalogue, name_key
from fol.errors import FolError, ConfigError
from fol.spectrum import DEFAULT_UNIT, SpectrumBatch, check_technique

RAMAN_EXCITATION_NM = 785.0
RAMAN_RANGE_CM1 = (150.0, 2200.0)
RAMAN_PIXELS = 1024
RAMAN_RESOLUTION_CM1 = 8.0
FTIR_RANGE_CM1 = (600.0, 4000.0)
FTIR_RESOLUTION_CM1 = 4.0
FULL_SCALE_COUNTS = 65535.0
FULL_SCALE_ABSORBANCE = 3.0
COUNTS_PER_MW_S = 200.0
READ_NOISE_COUNTS = 12.0
COSMIC_RAYS_PER_S = 0.3
FTIR_PEAK_AU = 0.6
FTIR_NOISE_AU = 2e-3
NOMINAL_TEMPERATURE_C = -10.0
WARM_TEMPERATURE_C = 12.0
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

#: per-technique default settings of the simulated analyzer (CONF:INT, CONF:AVG, CONF:LAS)
DEFAULT_SETTINGS = {
    "raman": {"integration_ms": 100.0, "averages": 5, "laser_mw": 100.0},
    "ftir": {"integration_ms": 50.0, "averages": 16, "laser_mw": 0.0},
}


def _readonly(a, dtype=np.float64) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


# ----------------------------------------------------------------------------- references


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """Clean reference spectra on one increasing grid: ``raw[i]`` is substance ``names[i]``.

    ``cross_section`` (optional, one per substance) is the relative signal per unit mass.
    NaN in ``raw`` (grid points a reference does not cover) counts as no signal.
    Compared by identity, so instruments' projections of it can be cached.
    """

    grid: np.ndarray
    names: tuple[str, ...]
    raw: np.ndarray
    technique: str
    cross_section: np.ndarray | None = None
    _keys: dict = field(init=False, repr=False)

    def __post_init__(self):
        grid, raw = _readonly(self.grid), _readonly(np.nan_to_num(np.asarray(self.raw, dtype=np.float64)))
        if grid.ndim != 1 or grid.size < 2 or not np.all(np.diff(grid) > 0):
            raise ConfigError("reference grid must be 1-D and strictly increasing")
        if raw.ndim != 2 or raw.shape[1] != grid.size or raw.shape[0] != len(self.names):
            raise ConfigError(f"reference matrix {raw.shape} does not match {len(self.names)} names x {grid.size} points")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "technique", check_technique(self.technique))
        if self.cross_section is not None:
            cs = _readonly(self.cross_section)
            if cs.shape != (len(self.names),) or np.any(cs < 0):
                raise ConfigError("cross_section needs one non-negative value per reference")
            object.__setattr__(self, "cross_section", cs)
        object.__setattr__(self, "_keys", {name_key(n): i for i, n in enumerate(self.names)})

    @classmethod
    def from_library(cls, section, technique: str | None = None) -> "ReferenceSet":
        """The clean (``raw``) spectra of a library section (``fol.io.library.LibrarySection``)."""
        return cls(section.grid, tuple(section.names), section.raw, technique or section.technique)

    def index(self, name: str) -> int:
        """Row of a substance, by catalogue name, synonym or any spelling of a reference name."""
        candidates = [name]
        try:
            canonical = load_catalogue().resolve(name)
        except FolError:
            canonical = None
        if canonical:
            candidates.insert(0, canonical)
        for c in candidates:
            i = self._keys.get(name_key(c))
            if i is not None:
                return i
        raise ConfigError(f"{name!r} has no {self.technique} reference spectrum "
                         f"({len(self.names)} references, e.g. {', '.join(self.names[:5])})")


def parse_sample(spec: str, refset: ReferenceSet) -> dict[str, float]:
    """``{reference name: mass fraction}`` from ``"a:0.05,b:0.95"``, ``"blank"`` or ``"name"``."""
    text = str(spec).strip()
    if text.lower() == "blank":
        return {}
    if not text:
        raise ConfigError('empty sample spec (give "blank", a substance, or "name:fraction,...")')
    if "," not in text and ":" not in text:
        return {refset.names[refset.index(text)]: 1.0}
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, fraction = item.strip().rpartition(":")
        if not sep or not name.strip():
            raise ConfigError(f"sample item {item.strip()!r}: give name:fraction (mass fraction 0..1)")
        try:
            value = float(fraction)
        except ValueError:
            raise ConfigError(f"sample item {item.strip()!r}: {fraction!r} is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"sample item {item.strip()!r}: mass fraction must be within 0..1")
        canonical = refset.names[refset.index(name.strip())]
        if canonical in out:
            raise ConfigError(f"sample spec names {canonical!r} twice")
        out[canonical] = value
    if sum(out.values()) > 1.0 + 1e-9:
        raise ConfigError(f"sample mass fractions add up to {sum(out.values()):g}, more than 1")
    return out


# ----------------------------------------------------------------------------- the instrument


@dataclass(frozen=True, eq=False)
class Instrument:
    """One simulated unit: identity, reported and true axis, resolution, detector response."""

    technique: str
    serial: str
    axis: np.ndarray
    true_axis: np.ndarray
    resolution_cm1: float
    excitation_nm: float
    response: np.ndarray
    maker: str = "fol"
    firmware: str = "1.0.0"

    @property
    def model(self) -> str:
        return "SIM-RAMAN-785" if self.technique == "raman" else "SIM-FTIR-ATR"

    @property
    def unit(self) -> str:
        return DEFAULT_UNIT[self.technique]

    def metadata(self) -> dict:
        """Identity and optics, with the recording format's attribute names."""
        return {"maker": self.maker, "model": self.model, "serial": self.serial, "firmware": self.firmware,
                "technique": self.technique, "excitation_wavelength_nm": self.excitation_nm,
                "resolution_cm1": self.resolution_cm1}


@lru_cache(maxsize=16)
def make_instrument(technique: str, seed: int = 0) -> Instrument:
    """The simulated unit number ``seed`` of a technique (same seed, same unit)."""
    technique = check_technique(technique)
    rng = np.random.default_rng([seed, 0 if technique == "raman" else 1])
    if technique == "raman":
        wn0 = 1e7 / RAMAN_EXCITATION_NM
        lam_lo, lam_hi = (1e7 / (wn0 - s) for s in RAMAN_RANGE_CM1)
        p = np.linspace(0.0, 1.0, RAMAN_PIXELS)
        lam = lam_lo + (lam_hi - lam_lo) * (p + rng.uniform(-0.03, 0.03) * p * (1 - p))
        axis = (wn0 - 1e7 / lam).astype(np.float32).astype(np.float64)
        response = 0.35 + 0.65 * np.exp(-(((lam - 830.0) / 110.0) ** 2))
        resolution, excitation, offset_sd = RAMAN_RESOLUTION_CM1, RAMAN_EXCITATION_NM, 0.8
    else:
        lo, hi = FTIR_RANGE_CM1
        axis = np.arange(lo, hi + 1e-9, FTIR_RESOLUTION_CM1 / 2).astype(np.float32).astype(np.float64)
        response = np.clip(np.exp(-(((axis - 1800.0) / 1600.0) ** 2)), 0.1, None)
        resolution, excitation, offset_sd = FTIR_RESOLUTION_CM1, 0.0, 0.1
    centre, span = axis.mean(), axis[-1] - axis[0]
    true_axis = axis + rng.normal(0.0, offset_sd) + rng.normal(0.0, offset_sd / 3) * (axis - centre) / span
    return Instrument(technique, f"SIM{seed:05d}", _readonly(axis), _readonly(true_axis), resolution, excitation,
                      _readonly(response / response.max()))


@lru_cache(maxsize=8)
def project(refset: ReferenceSet, instrument: Instrument) -> np.ndarray:
    """References as the instrument sees them: ``[N, pixels]``, line-shape convolved, unit peak.

    Rows are scaled so their strongest band is 1, then by the cross-section.
    """
    if refset.technique != instrument.technique:
        raise ConfigError(f"{refset.technique} references cannot be measured with a {instrument.technique} instrument")
    x, res = instrument.true_axis, instrument.resolution_cm1
    step = max(min(res / 6.0, float(np.min(np.diff(refset.grid)))), res / 20.0)
    fine = np.arange(x[0] - 4 * res, x[-1] + 4 * res, step)
    on_fine = interp1d(refset.grid, refset.raw, axis=1, bounds_error=False, fill_value=0.0, assume_sorted=True)(fine)
    smooth = gaussian_filter1d(on_fine, sigma=res / FWHM_PER_SIGMA / step, axis=1, mode="nearest")
    seen = interp1d(fine, smooth, axis=1, assume_sorted=True)(x)
    peak = seen.max(axis=1, keepdims=True)
    seen = np.divide(seen, peak, out=np.zeros_like(seen), where=peak > 0)
    if refset.cross_section is not None:
        seen *= refset.cross_section[:, None]
    return _readonly(seen)


def mixture(refset: ReferenceSet, instrument: Instrument, fractions: dict[str, float]) -> np.ndarray:
    """The clean signal of a sample on the instrument's pixels (zeros for a blank)."""
    weights = np.zeros(len(refset.names))
    for name, fraction in fractions.items():
        weights[refset.index(name)] = fraction
    return weights @ project(refset, instrument)


@lru_cache(maxsize=8)
def vapour_bands(instrument: Instrument) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic water-vapour lines and CO2 bands on the instrument's pixels, each max 1.

    The line list is fixed (its own seed), as the real ones are: only their strength
    varies between spectra.
    """
    x = instrument.true_axis[:, None]
    width = max(instrument.resolution_cm1, 2.0) / FWHM_PER_SIGMA
    rng = np.random.default_rng(20240601)
    centres = np.concatenate([rng.uniform(1350, 1950, 80), rng.uniform(3550, 3950, 80)])
    strengths = rng.lognormal(0.0, 1.0, centres.size)
    water = (strengths * np.exp(-0.5 * ((x - centres) / width) ** 2)).sum(axis=1)
    co2_c = np.array([2338.0, 2361.0, 667.4, 650.0, 685.0])
    co2_w = np.array([14.0, 14.0, max(instrument.resolution_cm1, 2.0), 12.0, 12.0]) / FWHM_PER_SIGMA
    co2_h = np.array([1.0, 0.9, 0.8, 0.3, 0.3])
    co2 = (co2_h * np.exp(-0.5 * ((x - co2_c) / co2_w) ** 2)).sum(axis=1)
    return _readonly(water / water.max()), _readonly(co2 / co2.max())


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Conditions:
    """Acquisition settings and detector state for one batch."""

    integration_ms: float
    averages: int
    laser_mw: float
    warm: bool = False
    snr: float | None = None

    @classmethod
    def for_technique(cls, technique: str, integration_ms=None, averages=None, laser_mw=None, warm=False,
                      snr=None) -> "Conditions":
        d = DEFAULT_SETTINGS[check_technique(technique)]
        if snr is not None and not snr > 0:
            raise ConfigError(f"snr must be positive, got {snr!r}")
        return cls(float(d["integration_ms"] if integration_ms is None else integration_ms),
                   int(d["averages"] if averages is None else averages),
                   float(d["laser_mw"] if laser_mw is None else laser_mw), bool(warm), snr)


def _match_snr(sigma: np.ndarray, reference: np.ndarray, snr: float) -> np.ndarray:
    """Noise rescaled per row so the strongest point of ``reference`` is ``snr`` x its noise."""
    j = np.argmax(reference, axis=1)[:, None]
    peak = np.take_along_axis(reference, j, axis=1)
    at = np.take_along_axis(sigma, j, axis=1)
    return sigma * np.divide(peak, snr * at, out=np.ones_like(peak), where=(at > 0) & (peak > 0))


def _raman(instrument: Instrument, clean: np.ndarray, n: int, rng: np.random.Generator, c: Conditions):
    x = instrument.true_axis
    u = (x - x[0]) / (x[-1] - x[0])
    seconds, scans = c.integration_ms / 1000.0, c.averages
    rate = COUNTS_PER_MW_S * c.laser_mw * seconds * rng.lognormal(0.0, 0.1, n)
    decay, hump, centre = rng.uniform(0.3, 1.5, n), rng.uniform(0.0, 1.0, n), rng.uniform(0.2, 0.8, n)
    shape = ((1 - hump)[:, None] * np.exp(-u / decay[:, None])
             + hump[:, None] * np.exp(-(((u - centre[:, None]) / 0.6) ** 2)))
    fluorescence = rng.lognormal(np.log(0.3), 0.8, n)[:, None] * shape
    gain = rate[:, None] * instrument.response
    signal = gain * (clean + fluorescence)
    saturated = (signal >= FULL_SCALE_COUNTS).any(axis=1)
    signal = np.minimum(signal, FULL_SCALE_COUNTS)
    read = READ_NOISE_COUNTS * (4.0 if c.warm else 1.0)
    sigma = np.sqrt(signal + read**2) / np.sqrt(scans)
    if c.snr is not None:
        sigma = _match_snr(sigma, gain * clean if np.any(clean > 0) else signal, c.snr)
    y = signal + sigma * rng.standard_normal(signal.shape)
    hits = rng.poisson(COSMIC_RAYS_PER_S * seconds * scans, n)
    rows = np.repeat(np.arange(n), hits)
    cols = rng.integers(0, x.size - 1, rows.size)
    energy = rng.uniform(500.0, 8000.0, rows.size) / scans
    np.add.at(y, (rows, cols), energy)
    np.add.at(y, (rows, cols + 1), 0.3 * energy)
    return np.minimum(y, FULL_SCALE_COUNTS), saturated


def _ftir(instrument: Instrument, clean: np.ndarray, n: int, rng: np.random.Generator, c: Conditions):
    x = instrument.true_axis
    u = (x - x[0]) / (x[-1] - x[0])
    water, co2 = vapour_bands(instrument)
    contact = FTIR_PEAK_AU * rng.lognormal(0.0, 0.15, n)
    a, b, q = rng.normal(0, 0.02, n), rng.normal(0, 0.05, n), rng.normal(0, 0.02, n)
    absorbance = (contact[:, None] * clean + a[:, None] + b[:, None] * u + q[:, None] * u**2
                  + rng.uniform(-0.005, 0.02, n)[:, None] * water + rng.uniform(-0.005, 0.03, n)[:, None] * co2)
    saturated = (absorbance >= FULL_SCALE_ABSORBANCE).any(axis=1)
    absorbance = np.minimum(absorbance, FULL_SCALE_ABSORBANCE)
    scan_s = c.integration_ms * c.averages / 1000.0
    sigma = np.broadcast_to(FTIR_NOISE_AU * (3.0 if c.warm else 1.0) / instrument.response
                            / np.sqrt(scan_s / 0.1), absorbance.shape)
    if c.snr is not None:
        signal = contact[:, None] * clean if np.any(clean > 0) else np.abs(absorbance)
        sigma = _match_snr(sigma, signal, c.snr)
    return absorbance + sigma * rng.standard_normal(absorbance.shape), saturated


def render(instrument: Instrument, clean: np.ndarray, n: int, rng: np.random.Generator,
           conditions: Conditions) -> tuple[np.ndarray, np.ndarray]:
    """``n`` measured spectra of one clean signal: intensities ``[n, pixels]`` and saturated ``[n]``."""
    if n < 1:
        raise ConfigError(f"number of spectra must be at least 1, got {n}")
    make = _raman if instrument.technique == "raman" else _ftir
    return make(instrument, np.asarray(clean, dtype=np.float64)[None, :], int(n), rng, conditions)


def simulate_batch(refset: ReferenceSet, sample: str, n: int, rng: np.random.Generator, *,
                   instrument: Instrument | None = None, integration_ms=None, averages=None, laser_mw=None,
                   snr: float | None = None, warm: bool = False) -> SpectrumBatch:
    """``n`` simulated spectra of ``sample`` (a sample spec) as one SpectrumBatch.

    ``instrument`` defaults to unit 0 of the references' technique. The metadata holds
    the instrument attributes of the recording format, ``sample`` (the canonical
    fractions), ``saturated_rows`` (indices of rows that clipped) and ``device_errors``
    for the batch as a whole: 202 if any row saturated, 203 if ``warm``.
    """
    instrument = instrument or make_instrument(refset.technique)
    fractions = parse_sample(sample, refset)
    conditions = Conditions.for_technique(instrument.technique, integration_ms, averages, laser_mw, warm, snr)
    y, saturated = render(instrument, mixture(refset, instrument, fractions), n, rng, conditions)
    errors = ([[202, "Detector saturated"]] if saturated.any() else []) + ([[203, "Detector not at temperature"]]
                                                                             if warm else [])
    metadata = {**instrument.metadata(), "integration_time_ms": conditions.integration_ms,
                "averages": conditions.averages, "laser_power_mw": conditions.laser_mw,
                "detector_temperature_c": WARM_TEMPERATURE_C if warm else NOMINAL_TEMPERATURE_C,
                "sample": fractions, "saturated_rows": np.flatnonzero(saturated).tolist(), "device_errors": errors}
    return SpectrumBatch(instrument.axis, y, instrument.technique, instrument.unit, metadata)
