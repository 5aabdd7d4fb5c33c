"""From search hits and signal quality to the result object of result-format.md.

The rules, in order (thresholds in ``DecisionPolicy``; documented in docs/decision.md):

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

Mixture analysis (a later stage) passes its components in and gets ``mixture`` when
there are two or more. Alarm is raised by any component whose class is an alarm class
in the catalogue; ``alarm_classes`` lists them, sorted.

Keys added to result-format.md v1 (allowed: "implementations may add keys"):
``flags`` (decision flags: ``ambiguous``, ``computed_reference``, ``class_only``),
``possible_alarm_classes``, ``error`` (also in the format), per hit/component
``provenance``, and ``library.provenance`` (entry counts per provenance kind).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import __version__

RESULT_FORMAT_VERSION = 1
POOR_SIGNAL_FLAGS = ("low_snr", "saturated", "axis_out_of_range")


@dataclass(frozen=True)
class DecisionPolicy:
    #: HQI (clipped Pearson) at or above which the top hit is called
    min_score: float = 0.80
    #: minimum lead of hit 1 over the best different substance
    min_gap: float = 0.02


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
    poor = any(f in quality.get("flags", ()) for f in POOR_SIGNAL_FLAGS)
    top = hits[0] if hits else None
    if components is None and top is not None and top["score"] >= policy.min_score:
        close = second is not None and gap < policy.min_gap
        if close:
            flags.append("ambiguous")
            if second["alarm"] != top["alarm"]:
                at_stake = top if top["alarm"] else second
                result["possible_alarm_classes"] = [at_stake["class"]]
                result["verdict"] = "inconclusive"
                return result
        components = [{**top, "fraction": 1.0}]
    if components:
        result["components"] = components
        result["verdict"] = "mixture" if len(components) > 1 else "identified"
        result["alarm_classes"] = sorted({c["class"] for c in components if c["alarm"]})
        result["alarm"] = bool(result["alarm_classes"])
        if any(c.get("provenance") == "computed" for c in components):
            flags.append("computed_reference")
        return result
    result["verdict"] = "inconclusive" if poor or top is None else "no-match"
    return result
