"""Class alarm for fentanyl analogues that are not in the library.

New analogues appear faster than libraries are updated, but they keep the fentanyl
scaffold (anilido-piperidine with a phenethyl arm), and with it a family of bands. A
linear classifier on processed spectra (the recipe's output: baseline-corrected,
mean-centred, unit norm) learns that family from the library's own entries: class
``fentanyl-analogue`` against every other class, so it works for whatever library a
lab imports. Entries of class ``unknown`` are left out of training (unclassified is
neither evidence for nor against).

Training data are the library's raw spectra and simulated mixtures of them: each
analogue pure and at 15-100 % of the signal in one or two other entries, each other
entry pure and mixed with others, all put through a light measurement model (axis
shift, band broadening, smooth response, sloped baseline, noise) and then the
library's recipe, so that the classifier sees what a query looks like. Model:
scikit-learn ``LogisticRegression`` (L2, balanced class weights).

Training spectra are capped at ``MAX_TRAINING``: analogues always get ``PER_ENTRY``
each, the other entries share what is left (at least ``MIN_PER_OTHER`` each), so a
10,000-entry library trains in seconds and a few hundred MB instead of ~100 s and
~10 GB. Libraries up to ~2,000 entries are below the cap and unaffected.

It is trained when a library section is first used and kept in memory per library
content hash and technique, and on disk in the user's cache directory
(``fol.paths.cache_dir``: ``$FOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/fol``, else
``~/.cache/fol``) as a plain
``.npz`` of the coefficients, keyed by the library hash, technique and
``MODEL_VERSION``: the next process, and every replay worker, reads it back in
milliseconds. Nothing is pickled; a cache file that does not match what is expected
is ignored and retrained. Training the shipped ~100-entry section takes about a second.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from fol.spectrum import SpectrumBatch

ALARM_CLASS = "fentanyl-analogue"
FLAG = "class_only"
COMPONENT_NAME = "unlisted fentanyl-class compound"
#: classes left out of training (no evidence either way)
UNLABELLED = ("unknown",)
#: training spectra made per library entry
PER_ENTRY = 12
#: inverse L2 regularisation strength of the logistic regression
CLASS_C = 1.0
#: fixed seed of the training simulation (the classifier is a function of the library alone)
TRAIN_SEED = 20260301
#: at most this many training spectra (analogues keep PER_ENTRY each, the others share the rest)
MAX_TRAINING = 24_000
#: training spectra per non-analogue entry never fall below this
MIN_PER_OTHER = 2
#: bump when training changes, so cached models of the old training are not used
MODEL_VERSION = 2


@dataclass(frozen=True)
class ClassAlarm:
    """A trained detector: ``probability(processed)`` is P(fentanyl-analogue) per row."""

    coef: np.ndarray
    intercept: float
    positives: int
    negatives: int

    def probability(self, processed: np.ndarray) -> np.ndarray:
        # per row, the same number in any batch (``Calibration.probability`` says why not ``@``)
        z = np.multiply(np.atleast_2d(processed).astype(np.float64), self.coef).sum(axis=1) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


def perturb(grid: np.ndarray, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light measurement model over rows of clean spectra on ``grid`` (all rows at once).

    Axis shift up to +-3 cm-1, Gaussian broadening up to 3 points, a smooth multiplicative
    response (+-30 % tilt), an offset-and-slope baseline up to 30 % of the strongest band,
    and white noise at an SNR between 20 and 500.
    """
    m, n = clean.shape
    u = np.linspace(-1.0, 1.0, n)
    step = float(np.median(np.diff(grid)))
    shift = rng.uniform(-3.0, 3.0, m)[:, None] / step
    idx = np.arange(n)[None, :] - shift
    lo = np.clip(np.floor(idx).astype(int), 0, n - 2)
    t = np.clip(idx - lo, 0.0, 1.0)
    rows = np.arange(m)[:, None]
    y = clean[rows, lo] * (1 - t) + clean[rows, lo + 1] * t
    sigmas = np.round(rng.uniform(0.0, 3.0, m), 1)
    for sigma in np.unique(sigmas):
        if sigma > 0:
            sel = sigmas == sigma
            y[sel] = gaussian_filter1d(y[sel], sigma, axis=1, mode="nearest")
    peak = np.max(np.abs(y), axis=1, keepdims=True)
    y *= 1.0 + rng.uniform(-0.3, 0.3, (m, 1)) * u
    y += peak * (rng.uniform(-0.1, 0.3, (m, 1)) + rng.uniform(-0.2, 0.2, (m, 1)) * u)
    snr = np.exp(rng.uniform(np.log(20.0), np.log(500.0), (m, 1)))
    return y + peak / snr * rng.standard_normal((m, n))


def training_mixtures(section, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(clean spectra ``[k, n]``, labels ``[k]``) simulated from the section's raw entries."""
    labels = np.array([c == ALARM_CLASS for c in section.classes])
    usable = np.array([c not in UNLABELLED for c in section.classes])
    raw = np.asarray(section.raw, dtype=np.float64)
    peak = raw.max(axis=1, keepdims=True)
    refs = np.divide(raw, peak, out=np.zeros_like(raw), where=peak > 0)
    others = np.flatnonzero(usable & ~labels)
    n_pos = int((usable & labels).sum())
    per_other = int(np.clip((MAX_TRAINING - n_pos * PER_ENTRY) // max(others.size, 1), MIN_PER_OTHER, PER_ENTRY))
    out, lab = [], []
    for i in np.flatnonzero(usable):
        k = PER_ENTRY if labels[i] else per_other
        frac = np.where(np.arange(k) < max(k // 4, 1), 1.0, rng.uniform(0.15, 1.0, k))
        pool = others[others != i]
        a = rng.choice(pool, k)
        b = rng.choice(pool, k)
        split = rng.uniform(0.0, 1.0, k) * (rng.uniform(size=k) < 0.5)
        rest = 1.0 - frac
        out.append(frac[:, None] * refs[i] + (rest * (1 - split))[:, None] * refs[a]
                   + (rest * split)[:, None] * refs[b])
        lab.append(np.full(k, labels[i]))
    return np.vstack(out), np.concatenate(lab)


def train(section, seed: int = TRAIN_SEED) -> ClassAlarm | None:
    """Train on a library section; None when it has fewer than 2 analogues or no other entries."""
    labels = [c == ALARM_CLASS for c in section.classes if c not in UNLABELLED]
    pos = sum(labels)
    if pos < 2 or pos == len(labels):
        return None
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    clean, y = training_mixtures(section, rng)
    grid = np.asarray(section.grid, dtype=np.float64)
    noisy = perturb(grid, clean, rng)
    x = section.recipe.apply(SpectrumBatch(grid, noisy, section.technique), grid).data
    model = LogisticRegression(C=CLASS_C, class_weight="balanced", max_iter=2000)
    model.fit(x, y)
    return ClassAlarm(model.coef_[0].astype(np.float64), float(model.intercept_[0]), int(pos), len(labels) - pos)


_CACHE: dict[tuple[str, str], ClassAlarm | None] = {}


def _cache_file(library_sha: str, technique: str) -> Path:
    from fol.paths import cache_file

    return cache_file("classalarm", MODEL_VERSION, technique, library_sha)


def _fingerprint(section) -> str:
    """A cheap check that a cached model belongs to this section: its grid, names and classes."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(section.grid, dtype="<f8").tobytes())
    h.update("\x1f".join(section.names).encode() + b"\0" + "\x1f".join(section.classes).encode())
    return h.hexdigest()


def _read_cached(path: Path, library_sha: str, section) -> tuple[bool, ClassAlarm | None]:
    """(found, model) from a cache file; (False, None) if absent or not what is expected."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if (str(z["library_sha256"]) != library_sha or str(z["technique"]) != section.technique
                    or int(z["model_version"]) != MODEL_VERSION or str(z["fingerprint"]) != _fingerprint(section)):
                return False, None
            if not bool(z["trained"]):
                return True, None
            coef = np.array(z["coef"], dtype=np.float64)
            if coef.shape != (len(section.grid),) or not np.all(np.isfinite(coef)):
                return False, None
            return True, ClassAlarm(coef, float(z["intercept"]), int(z["positives"]), int(z["negatives"]))
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return False, None


def _write_cached(path: Path, library_sha: str, section, model: ClassAlarm | None) -> None:
    """Best effort: a cache that cannot be written only costs training again next time."""
    from fol.paths import save_npz

    try:
        save_npz(path, library_sha256=library_sha, technique=section.technique, model_version=MODEL_VERSION,
                 fingerprint=_fingerprint(section),
                 trained=model is not None, coef=model.coef if model else np.zeros(0),
                 intercept=model.intercept if model else 0.0, positives=model.positives if model else 0,
                 negatives=model.negatives if model else 0)
    except OSError:
        pass


def for_section(library_sha: str, section, *, persist: bool = True) -> ClassAlarm | None:
    """The detector of a library section: trained once per (library content hash, technique).

    Looked up in memory, then (if ``persist``) in the cache directory, then trained
    and cached. Pass ``persist=False`` when ``library_sha`` is not known to be the
    content hash (a library loaded with ``allow_unverified``).
    """
    key = (library_sha, section.technique)
    path = _cache_file(library_sha, section.technique)
    if key not in _CACHE:
        found, model = _read_cached(path, library_sha, section) if persist else (False, None)
        if not found:
            model = train(section)
            if persist:
                _write_cached(path, library_sha, section, model)
        _CACHE[key] = model
    elif persist and not path.exists():  # known here, but not (or no longer) on disk for other processes
        _write_cached(path, library_sha, section, _CACHE[key])
    return _CACHE[key]
