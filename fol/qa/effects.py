"""Physically parameterised instrument effects, applied to real spectra (the instrument-variation suite).

Every function takes an absorbance (FTIR) or counts (Raman) row on a fine, uniform
axis ``x`` (cm-1) and returns the row as another instrument would have measured it.
They are written from the physics of the measurement, not from the project's own
simulated analyzer (``drivers.simulator.model``), so that the suite checks the
identification against differences it was not built around. Ranges (``MODERATE`` /
``HARSH``) and their justification are in docs/identification.md ("Instrument-variation
suite"); the short reason is beside each parameter here.

FTIR (the ENFSI library is diamond ATR, ~4 cm-1 resolution, max-normalised absorbance):

* ``atr_response``: ATR absorbance scales with the penetration depth
  ``d_p = lambda / (2 pi n1 sqrt(sin^2 theta - (n2/n1)^2))``, i.e. as ``nu^-1``; a
  transmission spectrum against an ATR library, or an "ATR-corrected" export, differs by
  ``nu^+-1``; crystals and angles (diamond/ZnSe n1 = 2.4, Ge 4.0, 45-60 deg) change the
  depth's scale and, through ``n2`` near strong bands, its wavenumber dependence: ``nu^-p``;
* ``atr_dispersion``: near a strong band the sample's refractive index follows the
  Kramers-Kronig transform of its absorption, so ``d_p`` rises on the low-wavenumber side
  and bands shift down and turn asymmetric, more for strong bands (Ge less than diamond);
* ``resolution``: the instrument line shape (Gaussian of FWHM ``R``; the library's own
  ``R0`` is removed in quadrature);
* ``calibration``: the axis reports ``nu`` where the instrument looks at ``nu (1 + e) + d``;
* ``resample``: the exported sampling step;
* ``vapour``: water-vapour lines (bending band around 1595 cm-1, stretches around 3750) and
  CO2 (2349 and 667 cm-1) left by a background taken at another humidity: either sign;
* ``liquid_water``: moisture in the sample: O-H stretch 3400 cm-1 (broad), bend 1640, libration ~700;
* ``scatter``: contact/packing gain, additive offset and a scattering slope ``nu^2``;
* ``baseline``: a smooth curved baseline (random cubic B-spline);
* ``noise``: white noise at a given SNR (strongest band over sigma).

Raman:

* ``raman_excitation``: relative band intensities ~ ``(nu_L - nu)^4`` times the detector's
  quantum efficiency: a library measured at 785 nm against a query at 532 or 1064 nm
  differs by a smooth multiplicative response;
* ``fluorescence``: a broad background (exponential, hump, or sloped) many times the bands;
* ``etalon``: fringes of a back-thinned CCD in the NIR (a few % modulation, period 5-40 cm-1);
* ``cosmic``: spikes of 1-3 pixels (CCD cosmic-ray events);
* ``vendor_processed``: the instrument's own baseline removal and intensity correction
  (the export is already baseline-subtracted with a rolling minimum, and scaled).

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline
from scipy.ndimage import gaussian_filter1d
from scipy.signal import hilbert

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: the library's own resolution (ENFSI ATR-FTIR spectra: 4 cm-1, the usual library setting)
LIBRARY_RESOLUTION_CM1 = 4.0


def fine_axis(lo: float, hi: float, step: float = 0.5) -> np.ndarray:
    return np.arange(lo, hi + step / 2, step)


def atr_response(x, y, p: float, ref: float = 1000.0):
    """``y * (x / ref)^-p``: penetration depth (p = 1: ATR vs transmission; p < 0: ATR-corrected)."""
    return y * (x / ref) ** (-p)


def atr_dispersion(x, y, beta: float):
    """Band distortion by anomalous dispersion: ``y * (1 + beta * n'(x))`` with ``n'`` the
    Kramers-Kronig (Hilbert) partner of the band system, scaled to the strongest band.

    ``beta`` ~ relative change of penetration depth across the strongest band (diamond,
    45 deg, an organic solid: ~0.1-0.3). The sign puts the rise of ``n`` on the
    low-wavenumber side of each band (bands shift down, as measured in ATR).
    """
    peak = float(np.max(np.abs(y))) or 1.0
    # scipy: imag(hilbert) is positive on the high-index (high-wavenumber) side of a band; n rises on the low side
    n_prime = -np.imag(hilbert(y - np.median(y))) / peak
    return y * (1.0 + beta * n_prime)


def resolution(x, y, fwhm: float, own: float = LIBRARY_RESOLUTION_CM1):
    """Convolve to a line shape of ``fwhm`` (Gaussian; the spectrum's own ``own`` FWHM removed in quadrature)."""
    extra = np.sqrt(max(fwhm * fwhm - own * own, 0.0))
    if extra <= 0:
        return y
    step = float(np.median(np.diff(x)))
    return gaussian_filter1d(y, extra / FWHM_PER_SIGMA / step, mode="nearest")


def calibration(x, y, offset: float, stretch: float):
    """What an instrument whose axis says ``x`` but looks at ``x (1 + stretch) + offset`` reports."""
    return np.interp(x * (1.0 + stretch) + offset, x, y)


def resample(x, y, lo: float, hi: float, step: float):
    """The export on ``lo..hi`` every ``step`` cm-1 (linear interpolation of the fine row)."""
    xo = np.arange(lo, hi + step / 2, step)
    return xo, np.interp(xo, x, y)


def _lines(centres, strengths, x, width):
    out = np.zeros_like(x)
    for c, s in zip(centres, strengths):
        sel = np.abs(x - c) < 6 * width
        out[sel] += s * np.exp(-0.5 * ((x[sel] - c) / (width / FWHM_PER_SIGMA)) ** 2)
    return out


def vapour_spectra(x) -> tuple[np.ndarray, np.ndarray]:
    """(water vapour, CO2) absorbance on ``x`` at 0.5 cm-1 line width, each scaled to max 1.

    Water: ro-vibrational lines of the bending band (P and R branches either side of
    1595 cm-1, 1300-1950) and of the stretches (3500-3950), ~1.5-3 cm-1 apart, strengths
    under a two-lobed envelope (a fixed, seeded line list: positions are realistic in
    density, not HITRAN-exact). CO2: the antisymmetric stretch (P/R branches 2300-2340 and
    2350-2390, 1.6 cm-1 spacing) and the bend (Q branch at 667.4, P/R 640-700).
    """
    rng = np.random.default_rng(1595)
    water = np.zeros_like(x)
    for centre, lo, hi, gap in ((1595.0, 1300.0, 1950.0, 2.2), (3755.0, 3450.0, 3990.0, 2.5)):
        c = np.arange(lo, hi, gap) + rng.uniform(-0.8, 0.8, int(np.ceil((hi - lo) / gap)))[: len(np.arange(lo, hi, gap))]
        d = np.abs(c - centre)
        env = (d / 60.0) * np.exp(-d / 110.0)
        s = env * rng.lognormal(0.0, 0.6, c.size)
        water += _lines(c, s, x, 0.6)
    co2 = np.zeros_like(x)
    j = np.arange(1, 40)
    env = j * np.exp(-j * (j + 1) / 300.0)
    co2 += _lines(2349.0 + 1.6 * (j + 2), env, x, 0.6) + _lines(2349.0 - 1.6 * (j + 1), env, x, 0.6)
    env2 = j * np.exp(-j * (j + 1) / 300.0) * 0.15
    co2 += _lines(667.4 + 1.6 * j, env2, x, 0.6) + _lines(667.4 - 1.6 * j, env2, x, 0.6) + _lines([667.4], [3.0], x, 0.8)
    return water / water.max(), co2 / co2.max()


def liquid_water(x) -> np.ndarray:
    """Liquid water (ATR absorbance shape, max 1): O-H stretch 3400 (FWHM ~350), bend 1640 (FWHM ~80, 0.3x),
    libration ~700 (broad, 0.25x)."""
    g = lambda c, w, h: h * np.exp(-0.5 * ((x - c) / (w / FWHM_PER_SIGMA)) ** 2)
    y = g(3390.0, 350.0, 1.0) + g(3220.0, 200.0, 0.45) + g(1640.0, 80.0, 0.3) + g(700.0, 300.0, 0.25)
    return y / y.max()


def smooth_curve(x, rng, segments: int = 4) -> np.ndarray:
    """A random smooth curve on ``x``, cubic B-spline, scaled to max |.| 1."""
    inner = np.linspace(x[0], x[-1], segments + 1)
    t = np.concatenate([[x[0]] * 3, inner, [x[-1]] * 3])
    c = rng.standard_normal(segments + 3)
    y = BSpline(t, c, 3)(x)
    return y / (np.max(np.abs(y)) or 1.0)


def scatter(x, y, gain: float, offset: float, slope: float):
    """``gain * y + offset + slope (x / x_max)^2`` (offset and slope in units of the strongest band)."""
    peak = float(np.max(y)) or 1.0
    return gain * y + peak * (offset + slope * (x / x[-1]) ** 2)


def noise(y, snr: float, rng, peak: float | None = None):
    """White noise of sigma = strongest band / snr."""
    peak = float(np.max(y) - np.median(y)) if peak is None else peak
    return y + rng.normal(0.0, peak / snr, y.shape)


# ---------------------------------------------------------------------------------------------- Raman


def raman_excitation(x, y, lib_nm: float, query_nm: float):
    """Relative response of a query excited at ``query_nm`` against a library at ``lib_nm``.

    Scattering ~ (nu_L - nu)^4 per photon-count detector ~ (nu_L - nu)^3, times the
    detector's quantum efficiency at the scattered wavelength (silicon CCD falling
    beyond ~900 nm, InGaAs for 1064 nm flat to ~1600 nm), as a ratio query/library,
    normalised to 1 at 1000 cm-1.
    """
    def resp(nm):
        nu_l = 1e7 / nm
        lam = 1e7 / (nu_l - x)  # scattered wavelength, nm
        if nm > 1000:  # InGaAs
            qe = np.clip(1.0 - ((lam - 1300.0) / 500.0) ** 2, 0.05, 1.0)
        else:  # silicon, deep-depletion
            qe = np.clip(1.0 / (1.0 + np.exp((lam - 950.0) / 45.0)), 0.02, 1.0)
        return (nu_l - x) ** 3 * qe
    r = resp(query_nm) / resp(lib_nm)
    i = int(np.argmin(np.abs(x - 1000.0)))
    return y * r / r[i]


def fluorescence(x, y, strength: float, kind: str, rng):
    """Broad fluorescence ``strength`` times the strongest band: ``exp`` decay, ``hump`` or ``slope``."""
    peak = float(np.max(y)) or 1.0
    u = (x - x[0]) / (x[-1] - x[0])
    if kind == "exp":
        b = np.exp(-u * rng.uniform(1.0, 4.0))
    elif kind == "hump":
        c, w = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.5)
        b = np.exp(-0.5 * ((u - c) / w) ** 2)
    else:
        b = 0.3 + u * rng.uniform(0.5, 1.0)
    return y + strength * peak * b / b.max()


def etalon(x, y, depth: float, period: float, rng):
    """Multiplicative fringes ``1 + depth sin(2 pi x / period + phase)``."""
    return y * (1.0 + depth * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi)))


def cosmic(y, count: int, rng, height: float = 3.0, max_width: int = 1):
    """``count`` cosmic-ray spikes, each (0.5 .. ``height``) times the strongest band on its peak pixel.

    ``max_width`` > 1: each spike is 1 .. ``max_width`` (at most 3) pixels wide: a CCD event spreads its
    charge from the hit pixel into its neighbours, each 10-60 % of the pixel nearer the hit (a peaked,
    contiguous profile: a neighbour on either side, or two on one side). ``max_width`` 1 draws nothing
    more than the one-pixel spikes of earlier versions (same random stream).
    """
    y = y.copy()
    peak = float(np.max(y)) or 1.0
    for _ in range(count):
        i = int(rng.integers(0, y.size - 1))
        h = peak * rng.uniform(0.5, height)
        y[i] += h
        if max_width > 1:
            w = int(rng.integers(1, min(max_width, 3) + 1))
            side = int(rng.choice([-1, 1]))
            if w == 2:
                spread = [(side, rng.uniform(0.1, 0.6))]
            elif w == 3 and rng.uniform() < 0.5:
                spread = [(-1, rng.uniform(0.1, 0.6)), (1, rng.uniform(0.1, 0.6))]
            elif w == 3:
                a = rng.uniform(0.1, 0.6)
                spread = [(side, a), (2 * side, a * rng.uniform(0.1, 0.6))]
            else:
                spread = []
            for o, f in spread:
                if 0 <= i + o < y.size:
                    y[i + o] += h * f
    return y


def vendor_processed(x, y, window_cm: float = 150.0):
    """An export with the instrument's own baseline removed (rolling-minimum + smoothing) and scaled to max 1."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    step = float(np.median(np.diff(x)))
    w = max(int(window_cm / step), 3)
    base = uniform_filter1d(minimum_filter1d(y, w, mode="nearest"), w, mode="nearest")
    out = y - base
    return out / (np.max(out) or 1.0)
