"""QA metrics of a replay against ground truth (``sample/expected`` of recordings).

For every labelled spectrum ``Metrics.add(result, expected)`` updates:

* **alarm sensitivity / specificity**: a sample *should* alarm when any expected
  substance belongs to an alarm class of the catalogue; it *did* alarm when the
  result says ``alarm``. Both rates carry a 95 % Wilson score interval
  (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``), which stays inside
  0..1 and is honest for small counts and rates near 0 or 1, unlike the normal
  approximation;
* **top-1 accuracy** on single-substance samples: the first component (most abundant)
  is the expected substance; also **hit-1 accuracy**, the same for the first search hit,
  which measures the search apart from the decision thresholds;
* **confusion matrices** per substance and per class over single-substance and blank
  (``{}``) samples: rows are the truth (``(none)`` for a blank), columns the
  prediction, i.e. the first component's substance/class, or ``(no-match)`` /
  ``(inconclusive)`` when there is none;
* **one-vs-rest counts** per substance and per class over *all* labelled samples,
  mixtures included: TP (expected and reported as a component), FN (expected, not
  reported), FP (reported, not expected);
* **component disagreements** over all labelled samples (``component_differences``):
  every spectrum whose reported components are not exactly the expected substances,
  by kind: ``missed`` (expected, not reported), ``extra`` (reported, not expected: a
  spurious component, or any component of a blank), ``wrong member`` (an expected
  substance not reported while another member of its class, not expected, is: the
  right class, the wrong compound), ``class only`` (an expected substance reported
  only as an unlisted compound of its class).

Results with an ``error`` (spectra that could not be analysed) are counted apart and
left out of the rates: they measure the data, not the identification.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

BLANK = "(none)"
#: prediction labels when a result has no component
NO_COMPONENT = {"no-match": "(no-match)", "inconclusive": "(inconclusive)"}
CONFIDENCE = 0.95
#: kinds of component disagreement, in the order they are listed
DIFFERENCE_KINDS = ("missed", "wrong member", "class only", "extra")


@dataclass(frozen=True)
class Rate:
    """``k`` successes out of ``n`` with a Wilson score interval."""

    k: int
    n: int
    confidence: float = CONFIDENCE

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.n:
            return None
        from scipy.stats import binomtest

        ci = binomtest(self.k, self.n).proportion_ci(self.confidence, method="wilson")
        return float(ci.low), float(ci.high)

    def __str__(self) -> str:
        if not self.n:
            return "n/a (no samples)"
        lo, hi = self.interval
        return f"{self.value:.1%} ({self.k}/{self.n}), {self.confidence:.0%} CI {100 * lo:.1f}-{100 * hi:.1f}%"


class ConfusionMatrix:
    """Counts of (truth, prediction) pairs."""

    def __init__(self):
        self.counts: Counter = Counter()

    def add(self, truth: str, predicted: str) -> None:
        self.counts[(truth, predicted)] += 1

    def __len__(self) -> int:
        return sum(self.counts.values())

    def labels(self) -> tuple[list[str], list[str]]:
        """Row labels (truths, sorted, blank last) and column labels (the truths, then other predictions)."""
        truths = sorted({t for t, _ in self.counts}, key=lambda s: (s == BLANK, s))
        extra = sorted({p for _, p in self.counts} - set(truths))
        return truths, truths + extra

    def table(self) -> tuple[list[str], list[str], list[list[int]]]:
        rows, cols = self.labels()
        return rows, cols, [[self.counts.get((r, c), 0) for c in cols] for r in rows]

    def correct(self, truth: str, predicted: str) -> bool:
        return predicted == truth or (truth == BLANK and predicted == NO_COMPONENT["no-match"])


class OneVsRest:
    """Per label: true positives, false negatives, false positives over all labelled samples."""

    def __init__(self):
        self.tp: Counter = Counter()
        self.fn: Counter = Counter()
        self.fp: Counter = Counter()

    def add(self, truth: set[str], predicted: set[str]) -> None:
        for label in truth & predicted:
            self.tp[label] += 1
        for label in truth - predicted:
            self.fn[label] += 1
        for label in predicted - truth:
            self.fp[label] += 1

    def rows(self) -> list[dict]:
        labels = sorted(set(self.tp) | set(self.fn) | set(self.fp))
        return [{"label": x, "tp": self.tp[x], "fn": self.fn[x], "fp": self.fp[x],
                 "recall": Rate(self.tp[x], self.tp[x] + self.fn[x]).value,
                 "precision": Rate(self.tp[x], self.tp[x] + self.fp[x]).value} for x in labels]


def component_differences(truth: set[str], comps: list[dict], class_of) -> list[tuple[str, str]]:
    """How reported components differ from the expected substances: ``[(kind, text), ...]``.

    ``comps`` are the result's components (``class_only`` ones stand for an unlisted
    compound of their class); ``class_of(name)`` is the catalogue class. Kinds are
    ``DIFFERENCE_KINDS``; the text names the substances, e.g. ``("wrong member",
    "metonitazene reported for isotonitazene (nitazene)")``.
    """
    named = [c for c in comps if not c.get("class_only")]
    reported = {c["name"] for c in named}
    class_only = {c["class"] for c in comps if c.get("class_only")}
    missing = sorted(truth - reported)
    extra = [c["name"] for c in named if c["name"] not in truth]
    out: list[tuple[str, str]] = []
    for t in missing:
        cls = class_of(t)
        same = [e for e in extra if class_of(e) == cls and cls != "unknown"]
        if same:
            extra.remove(same[0])
            out.append(("wrong member", f"{same[0]} reported for {t} ({cls})"))
        elif cls in class_only:
            out.append(("class only", f"{t} reported only as an unlisted {cls} compound"))
        else:
            out.append(("missed", t))
    out += [("extra", e) for e in extra]
    return sorted(out, key=lambda d: DIFFERENCE_KINDS.index(d[0]))


def top_component(result: dict) -> dict | None:
    comps = result.get("components") or []
    return comps[0] if comps else None


def predicted_label(result: dict, key: str) -> str:
    """``key`` ("name" or "class") of the first component, or ``(no-match)``/``(inconclusive)``."""
    top = top_component(result)
    return str(top[key]) if top else NO_COMPONENT.get(result.get("verdict"), f"({result.get('verdict')})")


class Metrics:
    """Running QA metrics; ``catalogue`` gives the class and alarm flag of expected substances."""

    def __init__(self, catalogue):
        self.catalogue = catalogue
        self.labelled = 0
        self.errors = 0  # labelled but not analysable: left out
        self.alarm = Counter()  # tp, fn, fp, tn
        self.cautioned_misses = 0  # should alarm, did not, but listed possible_alarm_classes
        self.top1 = [0, 0]
        self.hit1 = [0, 0]
        self.substances = ConfusionMatrix()
        self.classes = ConfusionMatrix()
        self.substance_ovr = OneVsRest()
        self.class_ovr = OneVsRest()
        #: spectra with at least one component disagreement, and disagreements per kind
        self.differing = 0
        self.differences: Counter = Counter()

    def _class_of(self, name: str) -> str:
        return self.catalogue[name].cls if name in self.catalogue else "unknown"

    def should_alarm(self, expected: dict) -> bool:
        return any(name in self.catalogue and self.catalogue[name].alarm for name in expected)

    def add(self, result: dict, expected: dict | None) -> list[str]:
        """Count one result; returns what went wrong, empty when it agrees with the ground truth:
        ``missed alarm`` / ``false alarm``, then each component difference as ``"kind: text"``
        (see ``component_differences``)."""
        if expected is None:
            return []
        self.labelled += 1
        if "error" in result:
            self.errors += 1
            return []
        truth = set(expected)
        should, did = self.should_alarm(expected), bool(result.get("alarm"))
        outcome = {(True, True): "tp", (True, False): "fn", (False, True): "fp", (False, False): "tn"}[should, did]
        self.alarm[outcome] += 1
        if outcome == "fn" and result.get("possible_alarm_classes"):
            self.cautioned_misses += 1
        comps = [c for c in result.get("components") or [] if not c.get("class_only")]
        self.substance_ovr.add(truth, {c["name"] for c in comps})
        self.class_ovr.add({self._class_of(t) for t in truth}, {c["class"] for c in comps})
        problem = {"fn": "missed alarm", "fp": "false alarm"}.get(outcome)
        diffs = component_differences(truth, result.get("components") or [], self._class_of)
        if diffs:
            self.differing += 1
            self.differences.update(kind for kind, _ in diffs)
        if len(truth) <= 1:
            name = next(iter(truth), BLANK)
            predicted = predicted_label(result, "name")
            self.substances.add(name, predicted)
            self.classes.add(self._class_of(name) if truth else BLANK, predicted_label(result, "class"))
            if truth:
                self.top1[1] += 1
                self.top1[0] += predicted == name
                hits = result.get("hits") or []
                self.hit1[1] += 1
                self.hit1[0] += bool(hits) and hits[0]["name"] == name
        return ([problem] if problem else []) + [f"{kind}: {text}" for kind, text in diffs]

    # -- reporting

    def sensitivity(self) -> Rate:
        return Rate(self.alarm["tp"], self.alarm["tp"] + self.alarm["fn"])

    def specificity(self) -> Rate:
        return Rate(self.alarm["tn"], self.alarm["tn"] + self.alarm["fp"])

    def top1_accuracy(self) -> Rate:
        return Rate(*self.top1)

    def hit1_accuracy(self) -> Rate:
        return Rate(*self.hit1)

    def lines(self) -> list[str]:
        if not self.labelled:
            return []
        out = [f"labelled: {self.labelled}" + (f" ({self.errors} not analysable, left out)" if self.errors else ""),
               f"alarm sensitivity: {self.sensitivity()}",
               f"alarm specificity: {self.specificity()}"]
        if self.cautioned_misses:
            out.append(f"  missed alarms with a caution (possible alarm class listed): {self.cautioned_misses}")
        if self.differing:
            kinds = ", ".join(f"{k} {self.differences[k]}" for k in DIFFERENCE_KINDS if self.differences[k])
            out.append(f"components differ from the ground truth in {self.differing} spectra ({kinds})")
        else:
            out.append("components agree with the ground truth in every analysed labelled spectrum")
        if self.top1[1]:
            out.append(f"top-1 accuracy on single-substance samples: {self.top1_accuracy()}")
            out.append(f"hit-1 accuracy on single-substance samples (first search hit): {self.hit1_accuracy()}")
        for title, matrix in (("substance", self.substances), ("class", self.classes)):
            if len(matrix):
                out.append(f"confusion matrix per {title} (rows: expected, columns: reported):")
                out.extend("  " + line for line in format_matrix(matrix))
        rows = self.class_ovr.rows()
        if rows:
            out.append("per class, all labelled samples (mixtures included; per substance in the --report):")
            out.extend("  " + line for line in format_ovr(rows, "class"))
        return out


def format_ovr(rows: list[dict], title: str) -> list[str]:
    """One-vs-rest counts as aligned text: label, TP, FN, FP, recall, precision."""
    width = max(len(title), *(len(r["label"]) for r in rows))
    pct = lambda v: "" if v is None else f"{v:.1%}"  # noqa: E731
    head = f"{title:<{width}} {'TP':>6} {'FN':>6} {'FP':>6} {'recall':>7} {'precision':>9}"
    return [head] + [f"{r['label']:<{width}} {r['tp']:>6} {r['fn']:>6} {r['fp']:>6} {pct(r['recall']):>7} "
                     f"{pct(r['precision']):>9}" for r in rows]


def format_matrix(matrix: ConfusionMatrix) -> list[str]:
    """A confusion matrix as aligned text: one row per truth, the columns numbered (legend below)."""
    rows, cols, cells = matrix.table()
    width = max(len(r) for r in rows)
    cell = max(3, *(len(str(v)) for row in cells for v in row))
    head = " " * width + " " + " ".join(f"{j + 1:>{cell}}" for j in range(len(cols)))
    body = [f"{r:<{width}} " + " ".join(f"{v or '.':>{cell}}" for v in row) for r, row in zip(rows, cells)]
    legend = "columns: " + ", ".join(f"{j + 1}={c}" for j, c in enumerate(cols))
    return [head, *body, legend]
