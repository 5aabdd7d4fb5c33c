"""Batched forms of pybaselines' iterative polynomial baselines (``modpoly``, ``imodpoly``).

pybaselines fits one spectrum per call. Its polynomial methods spend almost all of
their time in Python overhead around a handful of tiny products (a 6 x 901
pseudo-inverse times a vector, ten or so times per spectrum): ~0.5 ms a spectrum,
the largest single cost of replaying a recording. The functions here run the *same
algorithm* on a block of rows at once: same axis mapping onto [-1, 1], same
Vandermonde matrix, same ``numpy.linalg.pinv`` of the (masked) Vandermonde, same
update and the same per-row stopping rule (``pybaselines.utils.relative_difference``
against ``tol``), with each row leaving the iteration when *it* converges.

They are an implementation detail of ``fol.preprocess.steps.baseline``, not a new method:
recipes still name the pybaselines method and its pybaselines parameters, and
``tests/preprocess/test_baselines.py`` checks every supported parameter combination against
pybaselines row by row (agreement to ~1e-12 of the signal; the arithmetic is the
same but BLAS may sum in a different order). Parameters these functions do not
implement make ``fol.preprocess.steps.baseline`` fall back to pybaselines itself.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

#: rows fitted together: large enough to amortise Python overhead, small enough that
#: the per-row pseudo-inverses (rows x (order+1) x points floats) stay in cache
BLOCK = 64

#: pybaselines' floor on the denominator of relative_difference
_MIN_FLOAT = np.finfo(float).eps

_DEFAULTS = {
    "modpoly": {"poly_order": 2, "tol": 1e-3, "max_iter": 250, "use_original": False, "mask_initial_peaks": False},
    "imodpoly": {
        "poly_order": 2,
        "tol": 1e-3,
        "max_iter": 250,
        "use_original": False,
        "mask_initial_peaks": True,
        "num_std": 1.0,
    },
}


def supports(method: str, params: Mapping[str, Any]) -> bool:
    """True if ``method`` with ``params`` (pybaselines names) runs batched here.

    Weights and ``return_coef`` are left to pybaselines (recipes never set them).
    """
    return method in _DEFAULTS and set(params) <= set(_DEFAULTS[method])


def vandermonde(x: np.ndarray, poly_order: int) -> np.ndarray:
    """pybaselines' Vandermonde matrix: ``x`` mapped from its own range onto [-1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    mapped = np.polynomial.polyutils.mapdomain(x, np.polynomial.polyutils.getdomain(x), np.array([-1.0, 1.0]))
    return np.polynomial.polynomial.polyvander(mapped, poly_order)


def fit(x: np.ndarray, Y: np.ndarray, method: str, **params) -> np.ndarray:
    """The baseline ``method`` (``"modpoly"`` or ``"imodpoly"``) of every row of ``Y``.

    Same result as ``pybaselines.Baseline(x).<method>(row, **params)[0]`` for each
    row; ``x`` must be increasing (pybaselines sorts; the recipe's axes always are).
    """
    if not supports(method, params):
        raise ValueError(f"no batched form of {method!r} with parameters {sorted(params)}")
    p = {**_DEFAULTS[method], **params}
    if p.get("num_std", 1.0) < 0:
        raise ValueError("num_std must be greater than or equal to 0")
    Y = np.asarray(Y, dtype=np.float64)
    V = vandermonde(x, int(p["poly_order"]))
    pinv = np.linalg.pinv(V)
    out = np.empty_like(Y)
    for start in range(0, Y.shape[0], BLOCK):
        block = Y[start : start + BLOCK]
        out[start : start + BLOCK] = _fit_block(block, V, pinv, method == "imodpoly", p)
    return out


def _fit_block(Y: np.ndarray, V: np.ndarray, pinv: np.ndarray, improved: bool, p: dict) -> np.ndarray:
    """One block of rows through modpoly / imodpoly (pybaselines 1.2 polynomial.py)."""
    y0 = Y
    y = Y.copy()
    baseline = (y @ pinv.T) @ V.T
    mask = p["mask_initial_peaks"]
    deviation = np.std(y - baseline, axis=1) if improved else None
    if mask:
        spread = deviation if improved else np.std(y - baseline, axis=1)
        w = ~(baseline + spread[:, None] < y)
        # pybaselines takes pinv(A) of the row-masked Vandermonde A = sqrt(w) V for
        # each row (w is 0 or 1, so sqrt(w) = w). pinv(A) = pinv(A^T A) A^T holds for
        # any A, and A^T A is one small GEMM for the whole block (w @ outer products
        # of V's rows) plus an (order+1)^2 pseudo-inverse per row: ~10x cheaper than
        # an SVD of every (points x order+1) matrix, and V on [-1, 1] is well enough
        # conditioned (order 5 on 901 points: cond(V) 43) that squaring it costs
        # nothing. Only a mask leaving a nearly rank-deficient fit (cond > 3e7) would
        # see pinv's cut-off of small singular values act differently.
        sw = w.astype(np.float64)
        k = V.shape[1]
        gram = (sw @ (V[:, :, None] * V[:, None, :]).reshape(V.shape[0], k * k)).reshape(-1, k, k)
        P = np.linalg.pinv(gram, hermitian=True)
    else:
        P = None
        sw = None

    final = np.empty_like(y)
    active = np.arange(y.shape[0])
    for _ in range(int(p["max_iter"])):
        src = y0[active] if p["use_original"] else y
        if improved:
            y = np.minimum(src, baseline + p["num_std"] * deviation[:, None])
        else:
            old = baseline
            y = np.minimum(src, baseline)
        if P is None:
            baseline = (y @ pinv.T) @ V.T
        else:
            coef = np.einsum("mij,mj->mi", P, (sw * y) @ V)
            baseline = coef @ V.T
        if improved:
            new_deviation = np.std(y - baseline, axis=1)
            diff = np.abs(deviation - new_deviation) / np.maximum(np.abs(new_deviation), _MIN_FLOAT)
        else:
            diff = np.linalg.norm(baseline - old, axis=1) / np.maximum(np.linalg.norm(old, axis=1), _MIN_FLOAT)
        done = diff < p["tol"]
        if done.any():
            final[active[done]] = baseline[done]
            keep = ~done
            active, y, baseline = active[keep], y[keep], baseline[keep]
            if improved:
                deviation = new_deviation[keep]
            if P is not None:
                P, sw = P[keep], sw[keep]
            if active.size == 0:
                return final
        elif improved:
            deviation = new_deviation
    final[active] = baseline  # max_iter reached: pybaselines returns the last fit
    return final
