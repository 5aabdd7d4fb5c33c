"""Simulated labelled data through the identification path, and per-library calibration.

Shared by ``benchmarks/accuracy.py`` (evaluation, seed 2026) and ``fol library
calibrate`` (fitting, development seed 1234 only). Every spectrum is made by the
simulated analyzer's measurement model (``drivers.simulator.model.simulate_batch``),
written to a recording with its ground truth (``fol.io.recording``), read back chunk by
chunk and analysed by ``fol.identification.pipeline.Identifier``, as ``fol replay`` does.

``calibrate_section`` fits, for one library section, (1) the per-component confidence
calibration (``fol.identification.confidence.fit_calibration`` on ``calibration_set``) and (2) the
decision threshold ``min_confidence``: with the new calibration, cutting agents,
solvents, adulterants and blanks alone (false alarm: any alarm) and analogues at 5 and
10 % in cutting agents with and without xylazine (fentanyl-class alarm) are analysed once, the class alarm asked whatever
the components' confidence (``Identifier.evidence(gate=None)``), and every candidate
threshold re-decided from that evidence (``Identifier.decide_row``, exactly what
``analyse`` would return at that threshold). The threshold kept maximises the 5 %
fentanyl-class alarm rate among those with at most ``MAX_FALSE_ALARM`` false alarms
(ties: the 10 % rate, then fewer false alarms, then the middle of the tied range).
The false-alarm and sensitivity curves over all candidate thresholds are kept in the
record (``development``) for review. The result is JSON,
numbers only, stored per technique in the library (``store_calibrations``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

EVAL_SEED = 2026
DEV_SEED = 1234
ANALOGUES = ["fentanyl", "acetylfentanyl", "carfentanil", "furanylfentanyl", "cyclopropylfentanyl",
             "butyrylfentanyl", "acrylfentanyl", "ocfentanil", "valerylfentanyl", "methoxyacetylfentanyl"]
CUTTING = ["mannitol", "lactose", "caffeine", "acetaminophen", "sucrose", "inositol", "glucose", "benzocaine"]
ALARM_CLASS = "fentanyl-analogue"
XYLAZINE = 0.3
#: highest false-alarm rate (benign samples alone, development data) a calibrated threshold may give
MAX_FALSE_ALARM = 0.01
#: candidate ``min_confidence`` values
THRESHOLDS = np.round(np.arange(0.30, 0.991, 0.01), 2)
CALIBRATION_FORMAT = "fol-calibration"


def pick(preferred: list[str], section, cls: str, n: int) -> list[str]:
    """``n`` names of the section: the preferred ones present, then any others of class ``cls``."""
    have = [p for p in preferred if p in section.names]
    extra = [nm for nm, c in zip(section.names, section.classes) if c == cls and nm not in have]
    return (have + extra)[:n]


def specable(name: str) -> bool:
    """Whether a name can stand in a sample spec (``name:fraction,...``)."""
    return "," not in name and ":" not in name


def fentanyl_alarm(result: dict) -> bool:
    return ALARM_CLASS in result["alarm_classes"]


class Bench:
    """Simulate → record → replay for one library section."""

    def __init__(self, library, technique: str, seed: int, workdir: Path, n: int, identifier=None):
        from drivers.simulator.model import ReferenceSet
        from fol.identification.pipeline import Identifier

        self.library, self.technique, self.n = library, technique, n
        self.section = library.section(technique)
        self.refset = ReferenceSet.from_library(self.section)
        self.rng = np.random.default_rng([seed, 0 if technique == "raman" else 1])
        self.workdir = Path(workdir)
        self.identifier = identifier or Identifier(library)
        self.count = 0

    def record(self, samples: list[tuple[str, dict, dict]]) -> Path:
        """Write one recording: per (spec, expected, conditions) a stack of ``n`` spectra."""
        from drivers.simulator.model import make_instrument
        from drivers.simulator.record import record_simulated
        from fol.io.recording import RecordingWriter

        self.count += 1
        path = self.workdir / f"{self.technique}-{self.count:03d}.h5"
        with RecordingWriter(path, mode="w", durable=False) as w:  # scratch data, made again from the seed
            for spec, expected, cond in samples:
                unit = make_instrument(self.technique, int(self.rng.integers(0, 1000)))
                record_simulated(w, self.refset, spec, self.n, self.rng, stack=True, expected=expected,
                                 chunk_rows=max(1, self.n), dtype="float64", instrument=unit, **cond)
        return path

    def _chunks(self, path: Path, identifier, method: str, **kw) -> list[tuple[dict, dict]]:
        from fol.io.recording import Recording

        analyse = getattr(identifier or self.identifier, method)
        out = []
        with Recording(path) as rec:
            for chunk in rec.iter_chunks(256):
                found = analyse(chunk.batch, source=str(path), entry=chunk.entry.name, start_index=chunk.start, **kw)
                out.extend(zip(found, chunk.expected))
        return out

    def replay(self, path: Path, identifier=None) -> list[tuple[dict, dict]]:
        """(result, expected) per spectrum of a recording, analysed chunk by chunk."""
        return self._chunks(path, identifier, "analyse")

    def evidence(self, path: Path, identifier=None) -> list[tuple[dict, dict]]:
        """(evidence, expected) per spectrum: ``Identifier.evidence`` with the class alarm ungated."""
        return self._chunks(path, identifier, "evidence", gate=None)


def mixture_samples(section, fractions=(0.02, 0.05, 0.10, 0.20), snr=None) -> list[tuple[str, dict, dict]]:
    """6 analogues × ``fractions`` × 5 cutting agents, with and without 30 % xylazine."""
    analogues = pick(ANALOGUES, section, ALARM_CLASS, 6)
    cuts = pick(CUTTING, section, "cutting-agent", 5)
    xyl = "xylazine" in section.names
    samples = []
    for f in fractions:
        for a in analogues:
            for c in cuts:
                for with_x in ((False, True) if xyl else (False,)):
                    rest = 1.0 - f - (XYLAZINE if with_x else 0.0)
                    exp = {a: f, c: rest, **({"xylazine": XYLAZINE} if with_x else {})}
                    spec = ",".join(f"{k}:{v!r}" for k, v in exp.items())
                    samples.append((spec, exp, {} if snr is None else {"snr": snr}))
    return samples


def analogue_fraction(section, expected: dict) -> float:
    """The fraction of the (single) fentanyl analogue in a mixture sample's expected content."""
    cls_of = dict(zip(section.names, section.classes))
    return next(v for k, v in expected.items() if cls_of.get(k) == ALARM_CLASS)


def mixtures(b: Bench, fractions=(0.02, 0.05, 0.10, 0.20), snr=None) -> tuple[dict, list]:
    """Fentanyl-class alarm (hits, total) per (fraction, with xylazine), and the (result, expected) pairs."""
    res = b.replay(b.record(mixture_samples(b.section, fractions, snr)))
    out = {}
    for r, e in res:
        key = (analogue_fraction(b.section, e), "xylazine" in e)
        hit, tot = out.get(key, (0, 0))
        out[key] = (hit + fentanyl_alarm(r), tot + 1)
    return out, res


def benign_samples(section) -> list[tuple[str, dict, dict]]:
    """Every cutting agent, solvent and adulterant alone (default noise and SNR 50), and 9 blanks."""
    names = [nm for nm, c in zip(section.names, section.classes) if c in ("cutting-agent", "solvent", "adulterant")]
    samples = [(nm, {nm: 1.0}, cond) for nm in names for cond in ({}, {"snr": 50})]
    samples += [("blank", {}, cond) for cond in ({}, {"snr": 50}, {"snr": 200}) for _ in range(3)]
    return samples


def benign(b: Bench) -> tuple[int, int, list]:
    """(false alarms, samples, [(expected, alarm classes, component names)] of the false alarms)."""
    res = b.replay(b.record(benign_samples(b.section)))
    bad = [(e, r["alarm_classes"], [c["name"] for c in r["components"]]) for r, e in res if r["alarm"]]
    return len(bad), len(res), bad


def calibration_labels(res: list[tuple[dict, dict]], section) -> tuple[list, list]:
    """(confidence, truly present 0/1) of every reported component (see fol.identification.confidence)."""
    cls_of = dict(zip(section.names, section.classes))
    alarm_of = dict(zip(section.names, section.alarm))
    p, y = [], []
    for r, e in res:
        present_classes = {cls_of.get(k) for k in e}
        for c in r["components"]:
            if c.get("class_only") or "confidence" not in c:
                continue
            ok = c["name"] in e or (alarm_of.get(c["name"], False) and c["class"] in present_classes)
            p.append(c["confidence"])
            y.append(int(ok))
    return p, y


def calibration_set(library, technique: str, n_spectra: int = 600, seed: int = DEV_SEED
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(features, truly present) of every fitted component of ``n_spectra`` simulated samples.

    Random 1-3 component samples of the section's classified entries (half of the
    mixtures with a 2-20 % minor first component), SNR 20-500 log-uniform, a third of
    them fitted against the library less one of their substances (street samples hold
    substances a library lacks).
    """
    from drivers.simulator.model import ReferenceSet, make_instrument, simulate_batch
    from fol.identification.confidence import features
    from fol.identification.mixture import MixtureModel

    sec = library.section(technique)
    refset = ReferenceSet.from_library(sec)
    model = MixtureModel(sec)
    rng = np.random.default_rng(seed)
    usable = [i for i, c in enumerate(sec.classes) if c != "unknown" and specable(sec.names[i])]
    cls_of = dict(zip(sec.names, sec.classes))
    alarm_of = dict(zip(sec.names, sec.alarm.tolist()))
    x, y = [], []
    for _ in range(n_spectra):
        k = min(int(rng.choice([1, 1, 2, 2, 3])), len(usable))
        rows = rng.choice(usable, k, replace=False)
        fr = rng.dirichlet(np.ones(k)) if k > 1 else np.ones(1)
        if k > 1 and rng.uniform() < 0.5:
            fr[0] = rng.uniform(0.02, 0.2)
            fr[1:] = (1 - fr[0]) * fr[1:] / fr[1:].sum()
        exp = {sec.names[j]: float(f) for j, f in zip(rows, fr)}
        spec = ",".join(f"{nm}:{f!r}" for nm, f in exp.items())
        snr = float(np.exp(rng.uniform(np.log(20), np.log(500))))
        batch = simulate_batch(refset, spec, 1, rng, instrument=make_instrument(technique, int(rng.integers(1000))),
                               snr=snr)
        fitter, names = model, sec.names
        if rng.uniform() < 1 / 3:
            keep = np.arange(len(sec)) != rows[-1]
            fitter = MixtureModel(sec.subset(keep))
            names = fitter.section.names
        raw, mask = fitter.prepare(batch)
        fit = fitter.fit(raw[0], mask)
        present = {cls_of[nm] for nm in exp}
        for i, c in enumerate(fit.components):
            nm = names[c.row]
            ok = nm in exp or (alarm_of[nm] and cls_of[nm] in present)
            x.append(features(c, fit, i == 0))
            y.append(int(ok))
    return np.array(x), np.array(y)


def choose_threshold(false_alarms: np.ndarray, sensitivity: np.ndarray, second: np.ndarray | None = None,
                     max_false_alarm: float = MAX_FALSE_ALARM) -> int:
    """Index of the threshold: best sensitivity with false alarms ≤ the limit (else fewest false alarms).

    Ties go to the better ``second`` sensitivity (e.g. at 10 %), then fewer false alarms,
    then the middle of the tied thresholds (the one least sensitive to where exactly the
    development data put the edges).
    """
    fa, sens = np.asarray(false_alarms, float), np.asarray(sensitivity, float)
    sec = np.zeros_like(sens) if second is None else np.asarray(second, float)
    ok = fa <= max_false_alarm + 1e-12
    if not ok.any():
        ok = fa == fa.min()
    tied = ok & (sens == sens[ok].max())
    tied &= sec == sec[tied].max()
    tied &= fa == fa[tied].min()
    idx = np.flatnonzero(tied)
    return int(idx[len(idx) // 2])


def calibrate_section(library, technique: str, workdir: Path, *, seed: int = DEV_SEED, n: int = 3,
                      n_spectra: int = 600, max_false_alarm: float = MAX_FALSE_ALARM, progress=None) -> dict:
    """The calibration record (JSON-ready, numbers only) of one library section; see the module doc.

    ``progress(done, total)`` is called after each of its stages (simulating the calibration
    set, fitting, simulating and analysing the mixtures, the benign samples, the thresholds).
    """
    def stage(done: int) -> None:
        if progress:
            progress(done, 5)

    from fol.identification.confidence import ece, fit_calibration
    from fol.identification.decide import DecisionPolicy
    from fol.identification.pipeline import Identifier

    if seed == EVAL_SEED:
        raise ValueError(f"seed {EVAL_SEED} is the evaluation seed; calibrate on a development seed")
    from fol.identification.confidence import default_calibration

    stage(0)
    x, y = calibration_set(library, technique, n_spectra, seed)
    stage(1)
    # a development set whose fitted components are all right (or all wrong) cannot fit a logistic
    # map: keep the technique's default then (the threshold is still chosen below)
    cal = fit_calibration(x, y) if len(set(np.asarray(y).tolist())) > 1 else default_calibration(technique)
    base = DecisionPolicy()
    ident = Identifier(library, calibration=cal, policy=base)
    b = Bench(library, technique, seed, workdir, n, identifier=ident)
    stage(2)
    mix = b.evidence(b.record(mixture_samples(b.section, (0.05, 0.10))))
    stage(3)
    ben = b.evidence(b.record(benign_samples(b.section)))
    stage(4)
    at5 = [row for row in mix if analogue_fraction(b.section, row[1]) == 0.05]
    at10 = [row for row in mix if analogue_fraction(b.section, row[1]) == 0.10]

    def rate(rows, t, alarm) -> float:
        pol = replace(base, min_confidence=float(t))
        return float(np.mean([alarm(ident.decide_row(ev, pol)) for ev, _ in rows])) if rows else 0.0

    # a benign sample alone must raise no alarm of any class; the mixtures must raise the fentanyl-class one
    fa = np.array([rate(ben, t, lambda r: r["alarm"]) for t in THRESHOLDS])
    s5 = np.array([rate(at5, t, fentanyl_alarm) for t in THRESHOLDS])
    s10 = np.array([rate(at10, t, fentanyl_alarm) for t in THRESHOLDS])
    i = choose_threshold(fa, s5, s10, max_false_alarm)
    t = float(THRESHOLDS[i])
    chosen = replace(base, min_confidence=t)
    p, yy = calibration_labels([(ident.decide_row(ev, chosen), e) for ev, e in mix], b.section)
    stage(5)
    return {
        "format": CALIBRATION_FORMAT, "version": 1, "seed": seed,
        "confidence": json.loads(cal.to_json()),
        "policy": {"min_confidence": t},
        "development": {
            "max_false_alarm": float(max_false_alarm),
            "calibration_spectra": n_spectra, "components": int(len(y)), "present_share": float(np.mean(y)),
            "spectra_per_condition": n,
            "false_alarm": [int(round(fa[i] * len(ben))), len(ben)],
            "sensitivity_5pct": [int(round(s5[i] * len(at5))), len(at5)],
            "sensitivity_10pct": [int(round(s10[i] * len(at10))), len(at10)],
            "ece_reported": ece(np.array(p), np.array(yy)),
            "thresholds": THRESHOLDS.tolist(),
            "false_alarm_rate": fa.round(4).tolist(),
            "sensitivity_5pct_rate": s5.round(4).tolist(),
            "sensitivity_10pct_rate": s10.round(4).tolist(),
        },
    }
