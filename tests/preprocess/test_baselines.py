"""The batched polynomial baselines give pybaselines' answer, row by row.

One contract, checked on real spectra (ENFSI ATR-FTIR, a Renishaw Raman tablet,
SLoPP plastics Raman) and on simulated analyzer output, for every parameter the
batched form accepts: ``fol.preprocess.baselines.fit`` equals a loop of
``pybaselines.Baseline(x).<method>(row, **params)[0]``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pybaselines import Baseline

from fol.preprocess import baselines
from fol.io.formats import read_spectra_file
from fol.preprocess.recipe import RAMAN_GRID, default_recipe
from fol.preprocess.steps import baseline, resample

from builders import REAL


def pybaselines_rows(x, Y, method, **params):
    fit = getattr(Baseline(x_data=x, check_finite=False, assume_sorted=True), method)
    return np.array([fit(row, **params)[0] for row in Y])


def _real_raman():
    files = [REAL / "raman_paracetamol" / "paracetamol_renishaw.txt"]
    files += sorted((REAL / "raman_plastics_slopp").glob("*.txt"))[:12]
    rows = []
    for f in files:
        if not f.exists():
            continue
        for _, s in read_spectra_file(f, technique="raman"):
            rows.append(resample(s.wavenumber, s.intensity[None], grid=RAMAN_GRID)[1][0])
    return RAMAN_GRID, np.array(rows)


def _real_ftir():
    files = sorted((REAL / "enfsi_ir").glob("*.json"))[:24]
    grid = np.arange(650, 4000.1, 4.0)
    rows = [resample(s.wavenumber, s.intensity[None], grid=grid)[1][0] for f in files for _, s in read_spectra_file(f)]
    return grid, np.array(rows)


def _simulated():
    """40 spectra of the shipped library's substances as the simulated analyzer records them."""
    from drivers.simulator.model import ReferenceSet, simulate_batch
    from fol.io.library import load_library

    refs = ReferenceSet.from_library(load_library().section("raman"))
    rng = np.random.default_rng(11)
    batches = [simulate_batch(refs, name, 1, rng) for name in refs.names[:40]]
    x = batches[0].wavenumber
    return resample(x, np.vstack([b.intensity for b in batches]), grid=RAMAN_GRID)


@pytest.fixture(scope="module", params=["raman-real", "ftir-real", "raman-simulated"])
def data(request):
    if request.param != "raman-simulated" and not REAL.is_dir():
        pytest.skip(f"real data not present at {REAL}")
    x, Y = {"raman-real": _real_raman, "ftir-real": _real_ftir, "raman-simulated": _simulated}[request.param]()
    assert Y.shape[0] >= 10
    return x, Y


PARAMS = [
    ("imodpoly", {"poly_order": 5, "tol": 0.03}),  # default Raman recipe
    ("imodpoly", {"poly_order": 4, "tol": 0.03}),  # default FTIR recipe
    *[
        ("imodpoly", {"poly_order": o, "tol": t, "use_original": u, "mask_initial_peaks": m, "num_std": s})
        for o, t, u, m, s in itertools.product([1, 3], [1e-3], [False, True], [False, True], [0.0, 2.0])
    ],
    *[
        ("modpoly", {"poly_order": o, "use_original": u, "mask_initial_peaks": m})
        for o, u, m in itertools.product([2, 6], [False, True], [False, True])
    ],
    ("imodpoly", {"poly_order": 3, "max_iter": 2}),  # stops on max_iter, not tol
    ("modpoly", {}),
    ("imodpoly", {}),
]


@pytest.mark.parametrize("method,params", PARAMS, ids=[f"{m}-{p}" for m, p in PARAMS])
def test_batched_baseline_equals_pybaselines_row_by_row(data, method, params):
    x, Y = data
    assert baselines.supports(method, params)
    want = pybaselines_rows(x, Y, method, **params)
    got = baselines.fit(x, Y, method, **params)
    scale = np.abs(Y).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= 1e-9 * scale), np.abs(got - want).max()


def test_rows_converge_independently_of_their_block():
    """A row's baseline does not depend on which other rows share its block."""
    x, Y = _simulated()
    alone = np.array([baselines.fit(x, row[None], "imodpoly", poly_order=5, tol=0.03)[0] for row in Y[:8]])
    together = baselines.fit(x, Y, "imodpoly", poly_order=5, tol=0.03)[:8]
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-9 * np.abs(Y).max())


def test_blocks_larger_than_one_block_and_empty_input():
    x, Y = _simulated()
    Y = np.vstack([Y, Y, Y])  # 120 rows: two blocks of 64
    assert Y.shape[0] > baselines.BLOCK
    got = baselines.fit(x, Y, "imodpoly", poly_order=5, tol=0.03)
    np.testing.assert_allclose(got[:40], got[40:80], rtol=0, atol=1e-9 * np.abs(Y).max())
    assert baselines.fit(x, Y[:0], "imodpoly").shape == (0, x.size)


def test_degenerate_rows_match_pybaselines():
    """A zero row, a single spike and a mask that leaves fewer points than coefficients.

    (A constant non-zero row is left out: which of its points the initial peak mask
    drops is decided by 1e-16 rounding noise, differently in any two implementations.)
    """
    x = np.linspace(200, 2000, 301)
    Y = np.zeros((3, x.size))
    Y[1, 150] = 1e4
    Y[2] = np.linspace(0, 1, x.size) ** 8 * 100  # steep: the initial mask removes the tail
    for method in ("modpoly", "imodpoly"):
        for mask in (False, True):
            want = pybaselines_rows(x, Y, method, poly_order=5, mask_initial_peaks=mask)
            got = baselines.fit(x, Y, method, poly_order=5, mask_initial_peaks=mask)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-8 * max(1.0, np.abs(Y).max()))


def test_unsupported_parameters_fall_back_to_pybaselines():
    x, Y = _simulated()
    weights = np.ones(x.size)
    assert not baselines.supports("imodpoly", {"weights": weights})
    assert not baselines.supports("arpls", {})
    with pytest.raises(ValueError, match="no batched form"):
        baselines.fit(x, Y, "arpls")
    # the recipe step still works for them, through pybaselines
    _, out = baseline(x, Y[:3], method="imodpoly", poly_order=5, weights=weights)
    np.testing.assert_allclose(out, Y[:3] - pybaselines_rows(x, Y[:3], "imodpoly", poly_order=5, weights=weights))
    with pytest.raises(ValueError, match="num_std"):
        baselines.fit(x, Y, "imodpoly", num_std=-1)


def test_default_recipes_use_the_batched_form():
    for technique in ("raman", "ftir"):
        step = next(s for s in default_recipe(technique).steps if s["step"] == "baseline")
        params = {k: v for k, v in step.items() if k not in ("step", "method")}
        assert baselines.supports(step["method"], params)
