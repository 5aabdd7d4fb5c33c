"""Calibrated confidence per mixture component: the probability that it is truly there.

A component's match score is not a probability: a 5 % minor component with a score
of 0.5 may be certain and a main component with 0.9 wrong. ``Calibration`` maps a few
statistics of the fit to a probability with a logistic model fitted on simulated
spectra with known content (scikit-learn ``LogisticRegression``; the fitted
coefficients are stored here as plain numbers, ``DEFAULT``, and in JSON by
``to_json``; nothing is pickled).

Features of a component (``features``):

* ``score``: its match score (correlation of its fitted shape with what it explains);
* ``log_gain``: log10 of the relative rise of the residual when it is dropped;
* ``log_p``: -log10 of its partial F-test p-value (capped at 300);
* ``log_fraction``: log10 of its share of the signal;
* ``explained``: share of the spectrum the whole fit explains;
* ``main``: 1 for the most abundant component.

What "truly present" means (the training label): the substance is in the sample, or,
for a substance of an alarm class, a substance of the same class is (a minor
fentanyl component fitted by its look-alike acetylfentanyl is a correct fentanyl-class
finding; a benign look-alike is not a correct identification).

Reliability is reported as the expected calibration error (``ece``): the mean over
equal-width probability bins of |mean predicted - observed frequency|, weighted by
the bin's share of components. ``python benchmarks/accuracy.py --calibrate`` refits
``DEFAULT`` on a development seed and prints its ECE on held-out spectra.

``DEFAULT`` does not transfer to every library: ``fol library calibrate`` fits one per
library section and stores it in the library (``section_calibration`` reads it back;
``fol.identification.pipeline.Identifier`` prefers it to ``DEFAULT``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

FEATURES = ("score", "log_gain", "log_p", "log_fraction", "explained", "main")
#: every feature ``features`` computes; a calibration uses the ones it names (older ones: ``FEATURES``)
ALL_FEATURES = FEATURES + ("log_dchi2", "log_chi2")

#: fitted by ``python benchmarks/accuracy.py --calibrate`` (development seed, see docs/identification.md)
DEFAULT = {
    "features": list(FEATURES),
    "coef": [7.156625732033431, -3.7621478296581374, 0.06955849610395409, 2.3254317412311676,
             4.20480869338783, -1.006525532029376],
    "intercept": -6.876264355703663,
}


def features(component, fit, main: bool) -> np.ndarray:
    """The feature vector (``ALL_FEATURES``) of one component (``fol.identification.mixture.Component``) of a fit.

    ``log_dchi2``: log10 of the residual's rise when the component is dropped, in units
    of the white-noise variance (``fit.sigma``): how many noise units of evidence it carries;
    ``log_chi2``: log10 of the final residual per point over the noise variance (how much
    of the spectrum no component explains: misfit invites spurious components).
    """
    var = max(getattr(fit, "sigma", 0.0), 1e-12) ** 2
    n = max(getattr(fit.residual, "size", 1), 1)
    gain = min(max(component.gain, 0.0), 1.0 - 1e-9)
    drss = fit.rss * gain / (1.0 - gain)
    return np.array([
        component.score,
        np.log10(max(component.gain, 1e-6)),
        min(-np.log10(max(component.p_value, 1e-300)), 300.0),
        np.log10(max(component.fraction, 1e-4)),
        fit.explained,
        1.0 if main else 0.0,
        float(np.clip(np.log10(max(drss / var, 1e-3)), -3.0, 12.0)),
        float(np.clip(np.log10(max(fit.rss / n / var, 1e-3)), -3.0, 12.0)),
    ])


@dataclass(frozen=True)
class Calibration:
    """A logistic map from component features to a probability."""

    coef: np.ndarray
    intercept: float
    #: the features (names of ``ALL_FEATURES``) the coefficients belong to
    names: tuple = FEATURES

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(present) of feature rows: full ``ALL_FEATURES`` rows, or rows of exactly ``names``."""
        x = np.atleast_2d(x)
        if x.shape[1] == len(ALL_FEATURES) and len(self.names) != len(ALL_FEATURES):
            x = x[:, [ALL_FEATURES.index(f) for f in self.names]]
        # an elementwise product summed per row, not ``x @ coef``: a matrix-vector product rounds a row
        # differently with the number of rows, this gives each row the same number in any batch
        z = np.multiply(x, self.coef).sum(axis=1) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> str:
        return json.dumps({"features": list(self.names), "coef": [float(c) for c in self.coef],
                           "intercept": float(self.intercept)})

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        names = tuple(d.get("features", FEATURES))
        if not set(names) <= set(ALL_FEATURES) or len(set(names)) != len(names):
            raise ValueError(f"calibration features {list(names)} are not among {list(ALL_FEATURES)}")
        coef = np.asarray(d["coef"], dtype=np.float64)
        if coef.shape != (len(names),):
            raise ValueError(f"calibration needs {len(names)} coefficients, got {coef.shape}")
        return cls(coef, float(d["intercept"]), names)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls.from_dict(json.loads(text))


#: per technique, where a default fitted on real spectra exists: FTIR fitted on the instrument-variation
#: suite (``python benchmarks/accuracy.py --suite --calibrate``: real ENFSI records through the effects of
#: ``fol.qa.effects``, every condition, development seed ``fol.qa.suite.DEV_SEED``; refitted with the
#: generalised-least-squares backward test of ``MixturePolicy.whiten``: 27,854 components, in-sample ECE 0.002)
#: Re-examined after the misfit weighting, precursor rule and re-screening (docs/identification.md, "FTIR default on
#: the instrument-variation suite"): the refit was measured and not kept (no better held-out ECE, more false alarms).
DEFAULT_BY_TECHNIQUE = {
    "ftir": {"features": list(ALL_FEATURES),
             "coef": [1.3070772629504177, -5.675152932312388, 0.1386472642065077, 11.929000984895675,
                      1.7966092678572165, 0.9047626227571585, 3.2181072662933876, -3.995771299495369],
             "intercept": 3.5633758001124813},
}


#: decision-policy overrides that go with a technique's default calibration: ``min_confidence`` chosen on the
#: suite's development seed (``fol.qa.suite.policy_sweep``, pooled over every condition: 0.1 % false
#: alarms from 0.3 to 0.85, alarm at 5 % 79.2 % at 0.3, 78.9 % at 0.7, 74.6 % at 0.9; 0.7 is kept, the
#: point where no pure spectrum has a spurious component left)
DEFAULT_POLICY_BY_TECHNIQUE = {"ftir": {"min_confidence": 0.7, "caution_confidence": 0.2}}


def default_calibration(technique: str | None = None) -> Calibration:
    """The default calibration of a technique (``DEFAULT_BY_TECHNIQUE``, else ``DEFAULT``)."""
    return Calibration.from_dict(DEFAULT_BY_TECHNIQUE.get(technique, DEFAULT))


def section_calibration(section) -> tuple[Calibration, dict] | None:
    """(calibration, decision-policy overrides) stored in a library section, or None if it has none.

    The section's ``calibration_json`` (written by ``fol library calibrate``, see
    ``fol.qa.evaluation``) holds ``confidence`` (as ``to_json``) and ``policy`` (numbers for
    ``DecisionPolicy`` fields, e.g. ``min_confidence``); other keys are the record of how
    it was fitted.
    """
    if not section.calibration_json:
        return None
    from dataclasses import fields

    from fol.errors import LibraryError
    from fol.identification.decide import DecisionPolicy

    try:
        d = json.loads(section.calibration_json)
        cal = Calibration.from_dict(d["confidence"])
        known = {f.name for f in fields(DecisionPolicy)}
        policy = {k: float(v) for k, v in d.get("policy", {}).items()}
        if not set(policy) <= known:
            raise ValueError(f"unknown policy keys {sorted(set(policy) - known)}")
    except (ValueError, KeyError, TypeError) as e:
        raise LibraryError(f"{section.technique} section: malformed calibration ({e})") from None
    return cal, policy


def fit_calibration(x: np.ndarray, y: np.ndarray, names: tuple = FEATURES) -> Calibration:
    """Fit the logistic calibration on feature rows ``x`` (full ``ALL_FEATURES`` rows, or ``names``
    columns) and 0/1 labels ``y``, using the features ``names``."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] == len(ALL_FEATURES) and len(names) != len(ALL_FEATURES):
        x = x[:, [ALL_FEATURES.index(f) for f in names]]
    model = LogisticRegression(C=10.0, max_iter=5000)
    model.fit(x, np.asarray(y, dtype=int))
    return Calibration(model.coef_[0].astype(np.float64), float(model.intercept_[0]), tuple(names))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[tuple[float, float, float, int]]:
    """Per equal-width bin of predicted probability: (lower edge, mean predicted, observed rate, count)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append((b / bins, float(p[sel].mean()), float(y[sel].mean()), int(sel.sum())))
    return out


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width bins."""
    n = len(p)
    return float(sum(c * abs(mp - obs) for _, mp, obs, c in reliability(p, y, bins)) / n) if n else 0.0
