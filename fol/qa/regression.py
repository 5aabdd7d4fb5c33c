"""Regression diff of a replay against the results recorded earlier (``results/result``).

A spectrum *changed* when its verdict, its alarm or its top component (the first,
most abundant one; none for ``no-match``/``inconclusive``) differs from the earlier
result. Every change is kept (spooled to a temporary file, so millions of changes do
not fill memory) with both sides and the library hash each side was made with;
``libraries`` counts the earlier library hashes against the one replayed with.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from typing import Iterator

from fol.qa.metrics import top_component

FIELDS = ("verdict", "alarm", "top")
#: the fields in words
FIELD_WORDS = {"verdict": "verdict", "alarm": "alarm", "top": "top component"}


def library_hash(result: dict) -> str:
    return str((result.get("library") or {}).get("sha256") or "")


def side(result: dict) -> dict:
    """What the diff shows of one result."""
    return {"verdict": result.get("verdict"), "alarm": bool(result.get("alarm")),
            "alarm_classes": list(result.get("alarm_classes") or []), "top": (top_component(result) or {}).get("name"),
            "library": library_hash(result), "fol_version": result.get("fol_version")}


def changed_fields(before: dict, after: dict) -> list[str]:
    """Which of verdict, alarm, top component differ."""
    a, b = side(before), side(after)
    return [f for f in FIELDS if a[f] != b[f]]


def describe(s: dict) -> str:
    """One side of a change in words: ``identified, ALARM (fentanyl-analogue), top fentanyl``."""
    alarm = ("ALARM (" + ", ".join(s.get("alarm_classes") or []) + ")" if s.get("alarm_classes") else "ALARM") \
        if s.get("alarm") else "no alarm"
    return f"{s.get('verdict')}, {alarm}, top {s.get('top') or 'none'}"


def change_line(c: dict) -> str:
    """A change in words, one line: where, before, after, what changed, the libraries."""
    b, a = c["before"], c["after"]
    changed = ", ".join(FIELD_WORDS.get(f, f) for f in c["changed"])
    return (f"{c['source']}#{c['entry']}[{c['index']}]: was {describe(b)}; now {describe(a)} "
            f"(changed: {changed}; library {b['library'][:12] or '?'} -> {a['library'][:12]})")


class Regression:
    """Running comparison of new results with earlier ones."""

    def __init__(self):
        self.compared = 0
        self.without_previous = 0
        self.changed = 0
        self.by_field: Counter = Counter()
        self.libraries: Counter = Counter()  # earlier library hash -> spectra
        self.current_library = ""
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8")

    def add(self, previous: dict | None, result: dict) -> dict | None:
        """Compare one spectrum; returns the change record, or None if unchanged or nothing to compare."""
        self.current_library = library_hash(result) or self.current_library
        if previous is None:
            self.without_previous += 1
            return None
        self.compared += 1
        self.libraries[library_hash(previous)] += 1
        fields = changed_fields(previous, result)
        if not fields:
            return None
        self.changed += 1
        self.by_field.update(fields)
        change = {"source": result.get("source"), "entry": result.get("entry"), "index": result.get("index"),
                  "changed": fields, "before": side(previous), "after": side(result)}
        self._spool.write(json.dumps(change) + "\n")
        return change

    def changes(self) -> Iterator[dict]:
        """Every change, in input order (read back from the spool)."""
        self._spool.flush()
        self._spool.seek(0)
        for line in self._spool:
            yield json.loads(line)
        self._spool.seek(0, 2)

    def close(self) -> None:
        self._spool.close()

    def lines(self, limit: int | None = None) -> list[str]:
        """The summary: counts, then each change (the first ``limit``; all when None)."""
        if not self.compared:
            return []
        libs = ", ".join(f"{h[:12] or '?'} ({n})" for h, n in self.libraries.most_common())
        what = ", ".join(f"{FIELD_WORDS[f]} in {self.by_field[f]}" for f in FIELDS if self.by_field[f])
        out = [f"regression: {self.compared} spectra compared with earlier results "
               f"(libraries: {libs} -> now {self.current_library[:12]}): "
               + (f"{self.changed} changed ({what})" if self.changed else "none changed")]
        shown = 0
        for c in self.changes():
            if limit is not None and shown == limit:
                out.append(f"  ... and {self.changed - limit} more (--show-all lists every one)")
                break
            out.append("  " + change_line(c))
            shown += 1
        return out
