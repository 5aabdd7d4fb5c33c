"""Row-wise robust statistics equal numpy's, value for value."""

from __future__ import annotations

import numpy as np
import pytest

from fol.preprocess.rowstats import mad_rows, median_rows


@pytest.mark.parametrize("n", [1, 2, 3, 884, 885, 1022, 1023])
def test_median_rows_equals_numpy_median(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(17, n))
    a[3] = 1.0  # all ties
    a[4, : n // 2] = 0.0  # half ties
    np.testing.assert_array_equal(median_rows(a), np.median(a, axis=1))
    ints = rng.integers(-5, 5, size=(9, n))
    np.testing.assert_array_equal(median_rows(ints), np.median(ints, axis=1))


def test_median_rows_propagates_nan_like_numpy():
    a = np.arange(20.0).reshape(2, 10)
    a[1, 4] = np.nan
    got = median_rows(a)
    assert got[0] == np.median(a[0]) and np.isnan(got[1])


def test_median_rows_on_views_and_fortran_order():
    a = np.asfortranarray(np.random.default_rng(1).normal(size=(50, 301)))
    np.testing.assert_array_equal(median_rows(a[:, 3:200]), np.median(a[:, 3:200], axis=1))


def test_mad_rows():
    a = np.random.default_rng(2).normal(size=(5, 101))
    med, mad = mad_rows(a)
    assert med.shape == mad.shape == (5, 1)
    np.testing.assert_array_equal(mad[:, 0], np.median(np.abs(a - np.median(a, axis=1, keepdims=True)), axis=1))
