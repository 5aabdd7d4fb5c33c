"""Render harmonic stick spectra onto a wavenumber grid (numpy only; runtime code).

Frequency scaling
-----------------
:data:`SCALE_FACTOR` multiplies the unscaled GFN2-xTB harmonic wavenumbers
stored in :class:`~fol.chem.sticks.StickSpectrum`.  It was derived here, for
this project's GFN2-xTB pipeline (:mod:`fol.chem.xtb`, METHOD_VERSION 1), by a
least-squares fit through the origin, ``s = sum(v_calc v_exp) / sum(v_calc^2)``,
of the accepted Raman shifts of the six ASTM E1840-96(2022) Table 1 reference
materials (cyclohexane, toluene, acetonitrile, naphthalene, benzonitrile,
acetaminophen; 43 bands) against the computed bands.  Each accepted band is
matched to the nearest *strong* computed Raman band (785 nm Raman intensity,
see :func:`raman_intensity`, >= 2 % of that molecule's strongest band), the
matching being iterated with the current scale factor until it no longer
changes.  The fit is reproducible with ``python -m fol.chem.build --fit-scale``
(see :func:`fol.chem.build.fit_scale_factor`), which also prints every matched
pair.  Result: see the numbers next to :data:`SCALE_FACTOR`.

Line shapes
-----------
Every band is an area-normalised profile of full width at half maximum
``fwhm_cm1`` centred on the scaled wavenumber, multiplied by its intensity, so
the integral of a rendered (isolated, well-sampled) band equals its intensity:

* ``"gaussian"``   -- exp(-d^2 / 2 sigma^2) / (sigma sqrt(2 pi)), sigma = fwhm / 2.3548
* ``"lorentzian"`` -- (gamma / pi) / (d^2 + gamma^2), gamma = fwhm / 2
* ``"voigt"``      -- pseudo-Voigt 0.5 * lorentzian + 0.5 * gaussian with the
  same FWHM (so the FWHM of the mixture is exactly ``fwhm_cm1``); a cheap,
  closed-form stand-in for a Voigt profile, adequate for condensed-phase bands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from fol.chem.sticks import StickSpectrum

#: Frequency scaling factor for GFN2-xTB harmonic wavenumbers (see module docstring).
#: Fit on the 43 ASTM E1840 reference bands: MAE 32.0 cm-1 unscaled -> 27.4 cm-1
#: scaled (RMSE 35.7 cm-1).  Residuals by region with this factor: < 2000 cm-1
#: (34 bands) MAE 22.5 cm-1 (own best factor 0.979); C-H stretches (7) 30.9 cm-1
#: (own best 0.981); the two C#N stretches are GFN2-xTB outliers, still ~+4.5 %
#: high after scaling (own best factor 0.934).
SCALE_FACTOR = 0.9754

#: Default band FWHM, cm-1.
DEFAULT_FWHM_CM1 = {"raman": 8.0, "ftir": 4.0}

#: second radiation constant h c / k in cm K
_C2_CM_K = 1.438776877

_MAX_CHUNK_ELEMENTS = 1 << 22  # ~32 MB of float64 per profile block


def raman_intensity(
    freq_scaled,
    activity,
    excitation_nm: float = 785.0,
    temperature_k: float = 298.15,
) -> np.ndarray:
    """Relative Stokes Raman intensity from scattering activities.

    ``I ∝ (nu0 - nu)^4 / nu / (1 - exp(-h c nu / k T)) * S`` with ``nu0`` the
    laser wavenumber (1e7 / excitation_nm).  Returned as
    ``S * ((nu0 - nu)/nu0)^4 * (1000/nu) / (1 - exp(-c2 nu / T))`` -- i.e. the
    constant factor nu0^4/1000 is dropped so values are of the order of the
    activities.  Modes with nu <= 0 (imaginary/rigid) or nu >= nu0 get 0.
    """
    nu = np.asarray(freq_scaled, dtype=np.float64)
    S = np.asarray(activity, dtype=np.float64)
    nu, S = np.broadcast_arrays(nu, S)
    nu0 = 1.0e7 / float(excitation_nm)
    out = np.zeros(nu.shape, dtype=np.float64)
    ok = (nu > 0.0) & (nu < nu0) & np.isfinite(nu) & np.isfinite(S)
    v = nu[ok]
    bose = -np.expm1(-_C2_CM_K * v / float(temperature_k))  # 1 - exp(-hc nu/kT)
    out[ok] = S[ok] * ((nu0 - v) / nu0) ** 4 * (1000.0 / v) / bose
    return out


def _profile(d: np.ndarray, fwhm: np.ndarray, shape: str) -> np.ndarray:
    if shape == "gaussian":
        sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        return np.exp(-0.5 * (d / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
    gamma = 0.5 * fwhm
    lor = (gamma / np.pi) / (d * d + gamma * gamma)
    if shape == "lorentzian":
        return lor
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    gau = np.exp(-0.5 * (d / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
    return 0.5 * lor + 0.5 * gau


def render(
    freqs_scaled,
    intensities,
    grid,
    fwhm_cm1,
    shape: str = "voigt",
) -> np.ndarray:
    """Sum of area-normalised bands on ``grid`` (1-D float64, same length as grid).

    ``fwhm_cm1`` is a scalar or one value per band.  Vectorised: for each block
    of bands one (n_grid x n_block) profile matrix times the intensity vector.
    Bands with non-finite position/intensity or zero intensity are skipped.
    """
    if shape not in ("voigt", "lorentzian", "gaussian"):
        raise ValueError(f"shape must be 'voigt', 'lorentzian' or 'gaussian', not {shape!r}")
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    f = np.asarray(freqs_scaled, dtype=np.float64).reshape(-1)
    inten = np.asarray(intensities, dtype=np.float64).reshape(-1)
    if f.shape != inten.shape:
        raise ValueError("freqs_scaled and intensities differ in length")
    w = np.broadcast_to(np.asarray(fwhm_cm1, dtype=np.float64), f.shape).reshape(-1)
    if np.any(~(w > 0)):
        raise ValueError("fwhm_cm1 must be > 0")
    keep = np.isfinite(f) & np.isfinite(inten) & (inten != 0.0)
    f, inten, w = f[keep], inten[keep], w[keep]
    out = np.zeros(grid.size, dtype=np.float64)
    if grid.size == 0 or f.size == 0:
        return out
    chunk = max(1, _MAX_CHUNK_ELEMENTS // grid.size)
    for s in range(0, f.size, chunk):
        d = grid[:, None] - f[None, s : s + chunk]
        out += _profile(d, w[None, s : s + chunk], shape) @ inten[s : s + chunk]
    return out


def render_sticks(
    sticks: "StickSpectrum",
    grid,
    technique: str,
    fwhm_cm1: float | None = None,
    excitation_nm: float = 785.0,
    scale: float = SCALE_FACTOR,
    shape: str = "voigt",
    temperature_k: float = 298.15,
) -> np.ndarray:
    """Render a :class:`StickSpectrum` for ``technique`` ``"raman"`` or ``"ftir"``.

    Wavenumbers are multiplied by ``scale``; imaginary/zero modes are dropped.
    Raman: :func:`raman_intensity` at ``excitation_nm`` (default FWHM 8 cm-1).
    FTIR: absorbance-like, IR intensities in km/mol as band areas (default FWHM
    4 cm-1).  Returns float64 on ``grid``, not normalised.
    """
    technique = technique.lower()
    if technique not in DEFAULT_FWHM_CM1:
        raise ValueError(f"technique must be 'raman' or 'ftir', not {technique!r}")
    fwhm = DEFAULT_FWHM_CM1[technique] if fwhm_cm1 is None else float(fwhm_cm1)
    f = np.asarray(sticks.frequencies_cm1, dtype=np.float64) * float(scale)
    pos = f > 0.0
    if technique == "raman":
        inten = raman_intensity(
            f[pos], np.asarray(sticks.raman_activity_A4_amu)[pos], excitation_nm, temperature_k
        )
    else:
        inten = np.asarray(sticks.ir_intensity_km_mol, dtype=np.float64)[pos]
    return render(f[pos], inten, grid, fwhm, shape)


__all__ = [
    "SCALE_FACTOR",
    "DEFAULT_FWHM_CM1",
    "raman_intensity",
    "render",
    "render_sticks",
]
