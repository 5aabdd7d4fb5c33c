"""From search hits and signal quality to the result object of result-format.md.

The rules, in order (thresholds in ``DecisionPolicy``; documented in docs/identification.md):

1. A spectrum that could not be analysed → ``inconclusive`` with ``error``.
2. Top hit score ≥ ``min_score``:
   * if the best hit of a *different* substance is within ``min_gap`` of it and the two
     differ in alarm status (say fentanyl vs. a cutting agent), the call is too close:
     ``inconclusive``, flag ``ambiguous``, and the alarm classes at stake listed in
     ``possible_alarm_classes`` so that an officer is never told "no fentanyl" by omission;
   * otherwise ``identified`` (flag ``ambiguous`` when a same-status look-alike, e.g.
     a positional isomer, is within ``min_gap``).
3. Top hit below ``min_score``: ``inconclusive`` when the signal is poor (``low_snr``,
   ``saturated`` or ``axis_out_of_range``), else ``no-match``.

Mixture analysis passes its components in (each with a calibrated ``confidence``):

4. Components below ``min_confidence`` or ``min_component_score`` are not reported; an alarm class among them is
   listed in ``possible_alarm_classes`` (flag ``low_confidence``), so a weak fentanyl
   finding is never silently dropped.
5. If mixture analysis found components but none reaches ``min_confidence``, the
   candidates cannot be separated at the configured confidence: ``inconclusive``.
6. Otherwise ``mixture`` for two or more reported components, ``identified`` for one.
   If mixture analysis found nothing at all, rules 2-3 apply to the search hits.

Cautions (``possible_components``): every dropped alarm-class component whose confidence
is at least ``caution_confidence`` (and the alarm-status rival of rule 2) is listed with
name, class, fraction and confidence, most confident first, and its class in
``possible_alarm_classes``: the officer is told *what* cannot be ruled out and how sure
the analysis is. A dropped component below ``caution_confidence`` is neither reported nor
cautioned (at that confidence it is what noise and misfit produce on benign samples: the
threshold was set on the instrument-variation suite's development seed).

Poor measurements (issue 14): when the quality flags include ``saturated``, ``low_snr`` or
``high_fluorescence`` (``BAD_MEASUREMENT_FLAGS``) and nothing raised an alarm, the verdict is
``inconclusive`` whatever was matched, the components found are moved to
``tentative_components``, and ``advice`` lists what to do (one line per flag, ``ADVICE``):
a bad measurement never yields a clean no-alarm call. An alarm found in a poor spectrum
is kept (the finding stands; the advice to re-measure is added).

A component with ``class_only`` (from the class alarm: an unlisted compound of an
alarm class) adds the flag ``class_only``. Alarm is raised by any reported component
whose class is an alarm class in the catalogue; ``alarm_classes`` lists them, sorted.

Keys added to result-format.md v1 (allowed: "implementations may add keys"):
``flags`` (decision flags: ``ambiguous``, ``computed_reference``, ``class_only``,
``low_confidence``), ``possible_alarm_classes``, ``possible_components``, ``advice``,
``tentative_components``, ``error`` (also in the format), per
hit/component ``provenance``, per component ``confidence`` (0..1, calibrated
probability that it is present) and ``class_only`` (true on the class alarm's
component), and ``library.provenance`` (entry counts per provenance kind).
"""

from __future__ import annotations

from dataclasses import dataclass

from fol import __version__

RESULT_FORMAT_VERSION = 1
POOR_SIGNAL_FLAGS = ("low_snr", "saturated", "high_fluorescence", "axis_out_of_range")
#: a measurement with one of these flags never gets a clean verdict without an alarm (issue 14): the
#: spectrum itself is bad. (``axis_out_of_range`` is not among them: a partly covered axis is analysed
#: on what it covers; it only turns a no-match into ``inconclusive``.)
BAD_MEASUREMENT_FLAGS = ("saturated", "low_snr", "high_fluorescence")
#: what an officer should do about each quality flag (docs/identification.md, "Poor measurements")
ADVICE = {
    "saturated": "detector saturated: lower the laser power or the integration time (or fewer averages) and measure again",
    "low_snr": "signal too weak: raise the integration time or averages (Raman: laser power; FTIR: press the sample "
               "firmly onto the crystal), check the probe is focused on the sample, and measure again",
    "high_fluorescence": "fluorescence swamps the Raman bands: move the probe to another spot, measure through less "
                         "packaging or at lower laser power, or confirm by FTIR",
    "axis_out_of_range": "the spectrum does not cover the library's range: check the technique and the instrument's "
                         "range setting",
    "detector_warm": "detector not at its working temperature: let it cool down and measure again",
}


@dataclass(frozen=True)
class DecisionPolicy:
    #: HQI (clipped Pearson) at or above which the top hit is called
    min_score: float = 0.80
    #: minimum lead of hit 1 over the best different substance
    min_gap: float = 0.02
    #: components with a lower calibrated confidence are not reported
    min_confidence: float = 0.7
    #: dropped alarm-class components at or above this confidence are named in ``possible_components``
    caution_confidence: float = 0.2
    #: nor components whose own match score is lower (a shape that does not recognisably match)
    min_component_score: float = 0.3
    #: class alarm: P(fentanyl-analogue) of what the components leave unexplained, at or above which it fires
    class_threshold: float = 0.8
    #: class alarm: asked only when the components leave this share of the spectrum unexplained ...
    class_min_unexplained: float = 0.05
    #: ... and an rms residual of at least this many times the noise
    class_min_excess: float = 3.0


def empty_quality() -> dict:
    return {"snr": None, "saturated": False, "fluorescence": None, "flags": []}


def base_result(*, source: str, entry: str, index: int, technique: str, library_ref: dict) -> dict:
    return {
        "format_version": RESULT_FORMAT_VERSION,
        "source": source,
        "entry": entry,
        "index": int(index),
        "technique": technique,
        "verdict": "inconclusive",
        "alarm": False,
        "alarm_classes": [],
        "components": [],
        "hits": [],
        "quality": empty_quality(),
        "flags": [],
        "library": dict(library_ref),
        "fol_version": __version__,
    }


def error_result(message: str, **where) -> dict:
    """The result for a spectrum that cannot be analysed at all."""
    r = base_result(**where)
    r["error"] = message
    return r


def decide(result: dict, hits: list[dict], gap: float, second: dict | None, quality: dict,
           policy: DecisionPolicy = DecisionPolicy(), components: list[dict] | None = None) -> dict:
    """Fill verdict, alarm, components, hits, quality and flags into ``result`` (returned).

    ``hits`` are the single-substance hits, best first, each with ``name``, ``class``,
    ``score``, ``alarm`` (the substance's catalogue alarm flag) and ``provenance``;
    ``second`` is the best hit of a different substance (``None`` if none) and ``gap``
    hit 1's lead over it. ``components`` (from mixture analysis, same keys plus
    ``fraction``), when given, are the sample's content instead of the single best hit.
    """
    result["hits"] = hits
    result["quality"] = quality
    flags = result.setdefault("flags", [])
    qflags = list(quality.get("flags", ()))
    poor = any(f in qflags for f in POOR_SIGNAL_FLAGS)
    bad = any(f in qflags for f in BAD_MEASUREMENT_FLAGS)
    advice = [ADVICE[f] for f in qflags if f in ADVICE]
    if advice:
        result["advice"] = advice
    top = hits[0] if hits else None
    _decide(result, flags, top, gap, second, policy, components)
    if bad and not result["alarm"] and result["verdict"] != "inconclusive":
        result["tentative_components"] = result["components"]
        result["components"] = []
        result["verdict"] = "inconclusive"
        flags.append("poor_signal")
    elif poor and result["verdict"] == "no-match":
        result["verdict"] = "inconclusive"
    return result


def _caution(result: dict, possible: list[dict]) -> None:
    """Name the alarm-class candidates that cannot be ruled out (``possible_components``)."""
    if not possible:
        return
    possible = sorted(possible, key=lambda c: -(c["confidence"] if c.get("confidence") is not None else 0.0))
    result["possible_components"] = possible
    result["possible_alarm_classes"] = sorted({c["class"] for c in possible})


def _possible(c: dict) -> dict:
    return {"name": c["name"], "class": c["class"], "fraction": c.get("fraction"),
            "confidence": c.get("confidence")}


def _decide(result, flags, top, gap, second, policy, components) -> None:
    if components:
        kept = [c for c in components if c.get("confidence", 1.0) >= policy.min_confidence
                and (c.get("class_only") or c["score"] >= policy.min_component_score)]
        alarm_kept = {c["class"] for c in kept if c["alarm"]}
        _caution(result, [_possible(c) for c in components if c["alarm"] and c not in kept
                          and c["class"] not in alarm_kept
                          and c.get("confidence", 1.0) >= policy.caution_confidence])
        if len(kept) < len(components):
            flags.append("low_confidence")
        if not kept:
            result["verdict"] = "inconclusive"
            return
        components = kept
    elif components is not None:
        components = None
    if components is None and top is not None and top["score"] >= policy.min_score:
        close = second is not None and gap < policy.min_gap
        if close:
            flags.append("ambiguous")
            if second["alarm"] != top["alarm"]:
                at_stake = top if top["alarm"] else second
                _caution(result, [{"name": at_stake["name"], "class": at_stake["class"], "fraction": None,
                                   "confidence": None, "score": at_stake["score"]}])
                result["verdict"] = "inconclusive"
                return
        components = [{**top, "fraction": 1.0}]
    if components:
        result["components"] = components
        result["verdict"] = "mixture" if len(components) > 1 else "identified"
        result["alarm_classes"] = sorted({c["class"] for c in components if c["alarm"]})
        result["alarm"] = bool(result["alarm_classes"])
        if any(c.get("provenance") == "computed" for c in components):
            flags.append("computed_reference")
        if any(c.get("class_only") for c in components):
            flags.append("class_only")
        return
    result["verdict"] = "inconclusive" if top is None else "no-match"
