"""Several measurements of one substance: hits and components per substance, cautions from suspected classes.

A measured library holds several entries (measurements) per substance: salt forms,
laboratories, instruments. A result lists each substance once:

* ``per_substance(section, items, rows)``: hits (or mixture components) in score order,
  one per substance name, the best measurement kept and named (``entry``: ENFSI id and
  form, or the file it came from), with ``measurements`` = how many entries of that
  substance matched among ``items``. Components of one substance are merged: their
  ``fraction`` summed, the best ``score``/``confidence`` kept. The search's ``gap`` is
  already between substances (the best hit of a *different* name).
* Entries the class model flagged at import (``suspected_class``, see
  ``fol.libtools.importing``) carry it into the hit/component; ``caution(result)``
  lists the suspected class in ``possible_alarm_classes`` and adds the flag
  ``suspected_class`` and a ``caution`` text naming the entry when such an entry is the
  identified substance or a component, so that an officer is told to confirm it.

The pipeline applies ``apply`` to every row's evidence and ``caution`` to every result.
"""

from __future__ import annotations

SUSPECTED_FLAG = "suspected_class"


def entry_label(section, j: int) -> str:
    """A short name for one measurement (library row ``j``)."""
    m = section.entry_meta(int(j))
    parts = []
    if m.get("enfsi_id") is not None:
        parts.append(f"ENFSI #{m['enfsi_id']}{'v' if m.get('validated') else 'n'}")
    if m.get("form"):
        parts.append(str(m["form"]))
    if not parts:
        parts.append(str(m.get("file") or section.provenance[int(j)]))
    return ", ".join(parts) + f" (row {int(j)})"


def per_substance(section, items: list[dict], rows) -> list[dict]:
    """``items`` (hit or component dicts, library rows ``rows``) with one dict per substance."""
    out: dict[str, dict] = {}
    for item, j in zip(items, rows):
        if item.get("class_only"):
            out[f"\0{len(out)}"] = item
            continue
        m = section.entry_meta(int(j))
        name = item["name"]
        if name not in out:
            d = dict(item)
            if section.meta:  # imported libraries: name the measurement, count the substance's matches
                d["entry"] = entry_label(section, j)
                d["measurements"] = 1
            if m.get("suspected_class"):
                d["suspected_class"] = m["suspected_class"]
                d["suspected_probability"] = m.get("suspected_probability")
            out[name] = d
            continue
        d = out[name]
        d["measurements"] = d.get("measurements", 1) + 1
        if d.get("fraction") is not None and item.get("fraction") is not None:
            d["fraction"] = round(d["fraction"] + item["fraction"], 4)
        for k in ("score", "confidence"):
            if item.get(k) is not None and d.get(k) is not None and item[k] > d[k]:
                d[k] = item[k]
    return list(out.values())


def apply(section, hits: list[dict], hit_rows, components: list[dict] | None, component_rows) -> tuple:
    """(hits, components) per substance; components None stays None."""
    hits = per_substance(section, hits, hit_rows)
    if components is not None:
        components = per_substance(section, components, component_rows)
    return hits, components


def caution(result: dict) -> dict:
    """Add the CAUTION for an identified substance or component whose entry has a suspected class."""
    named = list(result.get("components") or [])
    if not named and result.get("verdict") == "inconclusive" and result.get("hits"):
        named = result["hits"][:1]
    suspects = [c for c in named if c.get("suspected_class") and not c.get("alarm")]
    if not suspects:
        return result
    classes = set(result.get("possible_alarm_classes") or [])
    for c in suspects:
        classes.add(c["suspected_class"])
    result["possible_alarm_classes"] = sorted(classes)
    flags = result.setdefault("flags", [])
    if SUSPECTED_FLAG not in flags:
        flags.append(SUSPECTED_FLAG)
    result["caution"] = "; ".join(
        f"{c['name']} is not classified, but the class model scored its reference as {c['suspected_class']} "
        f"(p = {c.get('suspected_probability') or 0:.2f} at import): confirm in the lab" for c in suspects)
    return result
