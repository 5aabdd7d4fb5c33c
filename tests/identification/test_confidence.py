"""Confidence calibration: fitting, JSON round trip, reliability and ECE."""

import json

import numpy as np
import pytest

from fol.identification.confidence import (DEFAULT, FEATURES, Calibration, default_calibration, ece, features, fit_calibration,
                            reliability)
from fol.identification.mixture import Component, MixtureFit


def test_ece_is_zero_for_perfect_calibration_and_large_for_overconfidence():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert ece(p, y) < 0.02
    assert ece(np.full(1000, 0.95), np.r_[np.ones(500), np.zeros(500)]) == pytest.approx(0.45)


def test_reliability_bins_count_every_prediction():
    p = np.array([0.05, 0.15, 0.95, 0.99, 1.0])
    rows = reliability(p, np.array([0, 0, 1, 1, 1]))
    assert sum(r[3] for r in rows) == 5 and rows[-1][0] == pytest.approx(0.9)


def test_fitted_calibration_is_calibrated_on_held_out_data_and_round_trips_as_json():
    rng = np.random.default_rng(1)
    n = 4000
    x = rng.normal(size=(n, len(FEATURES)))
    true = 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 3] + 0.5)))
    y = (rng.uniform(size=n) < true).astype(int)
    cal = fit_calibration(x[: n // 2], y[: n // 2])
    assert ece(cal.probability(x[n // 2:]), y[n // 2:]) < 0.05
    again = Calibration.from_json(cal.to_json())
    assert np.allclose(again.probability(x[:10]), cal.probability(x[:10]))
    assert json.loads(cal.to_json())["features"] == list(FEATURES)


def test_calibration_refuses_mismatched_features():
    with pytest.raises(ValueError):
        Calibration.from_dict({"features": ["score", "no_such_feature"], "coef": [1.0, 2.0], "intercept": 0.0})
    with pytest.raises(ValueError):  # coefficients must match the named features
        Calibration.from_dict({"features": ["score"], "coef": [1.0, 2.0], "intercept": 0.0})


def test_calibration_on_a_subset_of_features_reads_full_feature_rows():
    """Stored calibrations name their features: the 6 of older libraries and the 8 of the FTIR default
    both apply to the full feature vector ``features`` computes."""
    from fol.identification.confidence import ALL_FEATURES

    one = Calibration.from_dict({"features": ["score"], "coef": [4.0], "intercept": -2.0})
    row = np.zeros(len(ALL_FEATURES))
    row[ALL_FEATURES.index("score")] = 1.0
    assert np.isclose(one.probability(row)[0], 1 / (1 + np.exp(-2.0)))
    assert default_calibration("ftir").names == ALL_FEATURES


def test_default_calibration_ranks_a_clear_component_above_a_doubtful_one():
    cal = default_calibration()
    assert len(DEFAULT["coef"]) == len(FEATURES)
    fit = MixtureFit([], 1.0, 0.01, np.zeros(3))
    clear = Component(0, 1.0, 0.9, 0.99, 0.9, 1e-100)
    doubtful = Component(1, 0.03, 0.03, 0.25, 0.03, 1e-5)
    p_clear = cal.probability(features(clear, fit, True))[0]
    p_doubt = cal.probability(features(doubtful, fit, False))[0]
    assert p_clear > 0.9 and p_doubt < p_clear and 0.0 <= p_doubt <= 1.0


def test_probability_of_a_row_does_not_depend_on_the_batch_it_is_in():
    """Bit for bit: a matrix-vector product rounds a row differently with the number of rows (measured:
    most rows of 300 differ in the last bit between batch sizes), the per-row reduction does not. Same
    for the class model's probability, a logistic map over ~1,000 processed points."""
    from fol.identification.classalarm import ClassAlarm
    from fol.identification.confidence import ALL_FEATURES, Calibration

    rng = np.random.default_rng(8)
    cal = Calibration(rng.standard_normal(len(ALL_FEATURES)), 0.3, ALL_FEATURES)
    x = rng.standard_normal((120, len(ALL_FEATURES)))
    alone = np.concatenate([cal.probability(x[i]) for i in range(len(x))])
    for a, m in ((0, 120), (1, 7), (5, 33), (17, 2)):
        np.testing.assert_array_equal(cal.probability(x[a:a + m]), alone[a:a + m])
    model = ClassAlarm(coef=rng.standard_normal(900) * 0.05, intercept=-0.2, positives=8, negatives=12)
    z = rng.standard_normal((60, 900))
    alone = np.concatenate([model.probability(z[i]) for i in range(len(z))])
    for a, m in ((0, 60), (3, 9), (10, 31)):
        np.testing.assert_array_equal(model.probability(z[a:a + m]), alone[a:a + m])
