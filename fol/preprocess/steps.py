"""Preprocessing steps: pure functions on a batch of spectra that share one axis::

    step(x: ndarray[n], Y: ndarray[m, n], **params) -> (new_x, new_Y)

Steps never modify their input and work on all rows at once where numpy/scipy can,
so that a stack of thousands of spectra is a handful of array operations. ``STEPS``
maps step names to the functions: add a step here (the step contract test in
``tests/preprocess`` runs over every entry). ``fol.preprocess.recipe.Recipe`` strings
them together.

Keyword-only parameters of a step (``grid`` of ``resample``, ``mask`` of
``normalize``) are run-time inputs that ``Recipe.apply`` supplies; a recipe cannot
set them. docs/preprocessing.md explains every default.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import numpy as np
from scipy import ndimage

from fol.preprocess import baselines
from fol.preprocess.rowstats import mad_rows
from fol.preprocess.savgol import savgol_filter  # scipy.signal's, bit for bit, without its ~0.6 s import

# --------------------------------------------------------------------------- steps


def fill_nan(x: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace NaN (dead pixels) by linear interpolation along each row; edges hold.

    Only rows holding NaN are touched (each has its own dead pixels, so there is no
    shared interpolation to vectorise). A row without any finite value becomes 0.
    """
    out = np.array(Y, dtype=np.float64, copy=True)
    bad = np.isnan(out)
    for i in np.flatnonzero(bad.any(axis=1)):
        good = ~bad[i]
        out[i] = np.interp(x, x[good], out[i, good]) if good.any() else 0.0
    return x, out


def crop(x: np.ndarray, Y: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points with ``lo <= x <= hi``."""
    # the axis is increasing, so the kept points are one slice (a view: boolean column
    # indexing would return a Fortran-ordered copy, slow for every row-wise step after)
    first, stop = np.searchsorted(x, lo, side="left"), np.searchsorted(x, hi, side="right")
    if stop - first < 2:
        raise ValueError(f"crop({lo}, {hi}) leaves {max(stop - first, 0)} points of an axis spanning {x[0]:g}..{x[-1]:g}")
    return x[first:stop], Y[:, first:stop]


def resample(x: np.ndarray, Y: np.ndarray, *, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of every row onto ``grid`` (what ``np.interp`` does per row).

    The two neighbours and weights of each grid point are computed once and applied
    to all rows as two column gathers (``np.take``: row-major output, where
    ``Y[:, j]`` would give a Fortran-ordered one). Grid points outside the axis hold
    the edge value; ``covered`` tells which ones they are.
    """
    grid = np.asarray(grid, dtype=np.float64)
    j = np.clip(np.searchsorted(x, grid, side="right") - 1, 0, x.size - 2)
    t = np.clip((grid - x[j]) / (x[j + 1] - x[j]), 0.0, 1.0)
    return grid, np.take(Y, j, axis=1) * (1.0 - t) + np.take(Y, j + 1, axis=1) * t


def covered(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Boolean mask of the grid points that lie within the axis ``x``."""
    return (grid >= x[0]) & (grid <= x[-1])


DESPIKE_METHODS = ("whitaker-hayes", "edges")


def despike(
    x: np.ndarray, Y: np.ndarray, threshold: float = 6.0, half_window: int = 3, max_width: int = 3,
    method: str = "whitaker-hayes", ratio: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Remove cosmic-ray spikes, all rows at once: ``method`` "whitaker-hayes" (below; a recipe
    without ``method`` means this one) or "edges" (``_despike_edges``: ``threshold``, ``max_width``
    and ``ratio``; ``half_window`` unused).

    "whitaker-hayes" (Whitaker & Hayes 2018):

    A step between neighbouring pixels is suspicious when the modified z-score of the
    first difference, ``0.6745 (d - median d) / MAD d``, exceeds ``threshold``.
    Plain Whitaker-Hayes also flags the flanks of strong narrow Raman bands (and every
    band of a nearly noise-free spectrum), so a run of suspicious steps only counts as
    a spike when it goes both up and down and encloses at most ``max_width`` pixels;
    a real band rises over several pixels and falls again only after its top. The
    enclosed pixels are replaced by the mean of the unflagged pixels within
    ``half_window`` on either side.
    """
    if method not in DESPIKE_METHODS:
        raise ValueError(f"despike: unknown method {method!r} (known: {', '.join(DESPIKE_METHODS)})")
    if method == "edges":
        return x, _despike_edges(Y, threshold, max_width, ratio)
    if half_window < (max_width + 1) // 2:
        raise ValueError(f"despike: half_window={half_window} cannot bridge a spike of max_width={max_width}")
    d = np.diff(Y, axis=1)
    med, mad = mad_rows(d)
    z = np.divide(0.6745 * (d - med), mad, out=np.zeros_like(d), where=mad > 0)
    up, down = z > threshold, z < -threshold

    def touched(steps: np.ndarray) -> np.ndarray:
        """Pixels at either end of a flagged step."""
        p = np.zeros(Y.shape, dtype=bool)
        p[:, :-1] |= steps
        p[:, 1:] |= steps
        return p

    run = touched(up | down)
    labels, count = ndimage.label(run, structure=[[0, 0, 0], [1, 1, 1], [0, 0, 0]])
    out = np.array(Y, dtype=np.float64, copy=True)
    if count == 0:
        return x, out
    # runs are sparse: count their pixels, and whether they go up and down, from the
    # labelled pixels only
    at = np.flatnonzero(run)
    lab = labels.ravel()[at]
    size = np.bincount(lab, minlength=count + 1)
    goes_up = np.bincount(lab[touched(up).ravel()[at]], minlength=count + 1) > 0
    goes_down = np.bincount(lab[touched(down).ravel()[at]], minlength=count + 1) > 0
    is_spike = goes_up & goes_down & (size <= max_width + 2)
    is_spike[0] = False
    # the first and last pixel of a run are the good pixels the spike jumped from/to
    inner = run.copy()
    inner[:, 1:] &= run[:, :-1]
    inner[:, :-1] &= run[:, 1:]
    spike = is_spike[labels] & inner
    rows, cols = np.nonzero(spike)
    if rows.size == 0:
        return x, out
    # each spike pixel becomes the mean of the good pixels within half_window
    window = cols[:, None] + np.arange(-half_window, half_window + 1)
    inside = (window >= 0) & (window < Y.shape[1])
    window = np.clip(window, 0, Y.shape[1] - 1)
    use = inside & ~spike[rows[:, None], window]
    total = np.where(use, out[rows[:, None], window], 0.0).sum(axis=1)
    out[rows, cols] = total / np.maximum(use.sum(axis=1), 1)
    return x, out


def _despike_edges(Y: np.ndarray, threshold: float, max_width: int, ratio: float) -> np.ndarray:
    """Cosmic-ray spikes by the steepness of their edges; spike pixels linearly interpolated.

    A run of ``w <= max_width`` pixels is a spike when every pixel of it stands above both
    pixels flanking it by ``J`` such that (1) ``J`` is a jump the noise does not make: its
    modified z-score against the first differences, ``0.6745 J / MAD d``, exceeds
    ``threshold``; and (2) ``J`` exceeds ``ratio`` times every step of the two pixels beyond
    each flank times ``w``. A band sampled by the instrument's line shape rises over several pixels:
    a Gaussian of FWHM ``F`` pixels climbs at most ``1.43 A / F`` per pixel, and the step
    before its steepest one is of the same order (ratio ~1.1 at ``F = 2``, the narrowest band
    a spectrometer resolves), whereas a cosmic ray (1-3 pixels on a CCD) jumps by its whole
    height from a flank whose neighbours differ by noise or by the slope of a band beneath.
    Condition (2) is what the global MAD of plain Whitaker-Hayes cannot give on a nearly
    noise-free spectrum, where every band flank is many MADs steep. The factor ``w``: a wider
    run is closer to a band's own width, whose flanks climb ~1/F of its height per pixel
    (a polyethylene 1295 cm-1 band of ~3 pixels at 2.5 cm-1 per pixel passes ``ratio`` 3 at
    ``w = 3`` without it). Rows are reflected at
    the ends, so a spike on the first or last pixel is found too.
    """
    if max_width < 1:
        raise ValueError(f"despike: max_width={max_width} must be at least 1")
    if not ratio > 1:
        raise ValueError(f"despike: ratio={ratio} must exceed 1")
    Y = np.asarray(Y, dtype=np.float64)
    out = Y.copy()
    m, n = Y.shape
    if n < max_width + 6:
        return out
    pad = max_width + 3
    P = np.pad(Y, ((0, 0), (pad, pad)), mode="reflect")
    _, mad = mad_rows(np.diff(Y, axis=1))
    floor = threshold * mad / 0.6745  # a jump the noise does not make
    step = np.abs(np.diff(P, axis=1))  # step[:, k] = |P[k+1] - P[k]|
    spike = np.zeros((m, n), dtype=bool)
    i = np.arange(n)
    for w in range(1, max_width + 1):
        runs = n - w + 1

        def at(c: int, a: np.ndarray = P) -> np.ndarray:
            """``a`` at offset ``c`` from the first pixel of every run of ``w`` pixels (a view)."""
            return a[:, pad + c: pad + c + runs]

        low = at(0)
        for k in range(1, w):
            low = np.minimum(low, at(k))
        jump = low - np.maximum(at(-1), at(w))
        beyond = np.maximum(np.maximum(at(-2, step), at(-3, step)), np.maximum(at(w, step), at(w + 1, step)))
        hit = (jump > floor) & (jump > ratio * w * beyond)
        for k in range(w):
            spike[:, k : n - w + 1 + k] |= hit
    for r in np.flatnonzero(spike.any(axis=1)):
        good = ~spike[r]
        out[r, ~good] = np.interp(i[~good], i[good], Y[r, good])
    return out


def _baseline_methods() -> tuple[str, ...]:
    """Names of the fitting methods of ``pybaselines.Baseline``."""
    from pybaselines import Baseline

    return tuple(
        name
        for name, member in inspect.getmembers(Baseline, inspect.isfunction)
        if not name.startswith("_") and "data" in inspect.signature(member).parameters
    )


_METHODS: list = []


def __getattr__(name: str):
    # pybaselines (~0.15 s of imports beyond scipy) is imported only when a recipe needs it:
    # the default recipes' baselines run batched here (fol.preprocess.baselines)
    if name == "BASELINE_METHODS":
        if not _METHODS:
            _METHODS.append(_baseline_methods())
        return _METHODS[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_baseline(method: str, params: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``method`` is a pybaselines method accepting ``params``."""
    if baselines.supports(method, params):  # a pybaselines method with parameters the batched form takes
        return
    from pybaselines import Baseline

    BASELINE_METHODS = __getattr__("BASELINE_METHODS")
    if method not in BASELINE_METHODS:
        examples = [m for m in ("arpls", "asls", "imodpoly", "modpoly", "snip") if m in BASELINE_METHODS]
        raise ValueError(
            f"unknown baseline method {method!r}; pybaselines offers e.g. {', '.join(examples)}"
            f" ({len(BASELINE_METHODS)} in all)"
        )
    try:
        inspect.signature(getattr(Baseline, method)).bind(None, None, **params)
    except TypeError as exc:
        raise ValueError(f"baseline method {method!r}: {exc}") from None


def baseline(x: np.ndarray, Y: np.ndarray, method: str = "arpls", **params) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the baseline that pybaselines' ``method`` fits to each row.

    ``modpoly`` and ``imodpoly`` (the default recipes' method) run the same algorithm
    on blocks of rows at once (``fol.preprocess.baselines``, checked against pybaselines row by
    row). Every other method, or parameters the batched form does not cover, goes
    through pybaselines one row at a time; one ``Baseline`` object serves all rows,
    so whatever it precomputes for the axis (penalty matrix, ...) is built once.
    """
    check_baseline(method, params)
    if baselines.supports(method, params):
        return x, Y - baselines.fit(x, Y, method, **params)
    from pybaselines import Baseline

    fit = getattr(Baseline(x_data=x, check_finite=False, assume_sorted=True), method)
    out = np.empty(Y.shape, dtype=np.float64)
    for i, row in enumerate(Y):
        out[i] = row - fit(row, **params)[0]
    return x, out


def smooth(x: np.ndarray, Y: np.ndarray, window: int = 7, polyorder: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Savitzky-Golay smoothing of every row (``window`` in points, odd).

    Edges are mirrored: scipy's polynomial edge fit ("interp") costs ~0.3 ms per
    call, which dominates when spectra come one at a time.
    """
    return x, savgol_filter(Y, window, polyorder, axis=1, mode="mirror")


def derivative(
    x: np.ndarray, Y: np.ndarray, order: int = 1, window: int = 9, polyorder: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Savitzky-Golay derivative of every row, per cm-1; needs an evenly spaced axis."""
    step = np.diff(x)
    if not np.allclose(step, step[0], rtol=1e-6):
        raise ValueError("derivative needs an evenly spaced axis: put it after resample")
    return x, savgol_filter(Y, window, polyorder, deriv=order, delta=float(step[0]), axis=1, mode="mirror")


def in_ranges(x: np.ndarray, ranges) -> np.ndarray:
    """Boolean mask of the points of ``x`` inside any ``[lo, hi]`` of ``ranges``."""
    hit = np.zeros(x.shape, dtype=bool)
    for pair in ranges:
        lo, hi = pair
        if not lo < hi:
            raise ValueError(f"exclude range [{lo}, {hi}] is empty (need lo < hi)")
        hit |= (x >= lo) & (x <= hi)
    return hit


def exclude(x: np.ndarray, Y: np.ndarray, ranges) -> tuple[np.ndarray, np.ndarray]:
    """Set the points inside ``ranges`` (``[[lo, hi], ...]`` in cm-1) to 0."""
    return x, np.where(in_ranges(x, ranges), 0.0, Y)


def normalize(x: np.ndarray, Y: np.ndarray, *, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean-centre then scale each row to unit L2 norm, over the ``mask``ed points.

    Afterwards the dot product of two rows is their Pearson correlation (over the
    points both measured). Points outside ``mask`` become 0; a row with nothing left
    after centring stays 0.
    """
    keep = np.ones(x.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n = max(int(keep.sum()), 1)
    mean = np.where(keep, Y, 0.0).sum(axis=1, keepdims=True) / n
    centred = np.where(keep, Y - mean, 0.0)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return x, np.divide(centred, norm, out=np.zeros_like(centred), where=norm != 0)


STEPS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "fill_nan": fill_nan,
    "crop": crop,
    "resample": resample,
    "despike": despike,
    "baseline": baseline,
    "smooth": smooth,
    "derivative": derivative,
    "exclude": exclude,
    "normalize": normalize,
}
