"""How well the import-time class model flags unclassified fentanyl analogues (``suspected_class``).

Leave-one-out over the 67 real ENFSI records imported as a user would: each record in turn is made
``unknown`` (as if its name carried no scaffold and the catalogue did not know it), the class model is
trained on the others (``fol.identification.classalarm.train``) and scores it, as
``fol.libtools.importing`` does. Reports, at the import threshold, how many fentanyl analogues would be
flagged and how many other records would be falsely suspected.

    python benchmarks/suspected_class.py
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


def main() -> int:
    from fol.identification.classalarm import ALARM_CLASS, train
    from fol.io.library import load_library
    from fol.libtools.importing import SUSPECT_THRESHOLD, import_library

    with tempfile.TemporaryDirectory() as tmp:
        import_library(sorted(str(p) for p in (REAL / "enfsi_ir").glob("*.json")), Path(tmp) / "e.h5")
        section = load_library(Path(tmp) / "e.h5").section("ftir")
    rows = []
    for i, (name, cls) in enumerate(zip(section.names, section.classes)):
        if cls == "unknown":
            continue
        classes = list(section.classes)
        classes[i] = "unknown"
        model = train(replace(section, classes=classes))
        p = float(model.probability(section.processed[i:i + 1])[0]) if model else float("nan")
        rows.append((name, cls, p))
    pos = [r for r in rows if r[1] == ALARM_CLASS]
    neg = [r for r in rows if r[1] != ALARM_CLASS]
    for name, cls, p in sorted(rows, key=lambda r: -r[2]):
        print(f"{p:6.3f}  {cls:<20} {name}")
    for t in sorted({SUSPECT_THRESHOLD, 0.5}):
        tp = sum(p >= t for _, _, p in pos)
        fp = sum(p >= t for _, _, p in neg)
        print(f"threshold {t}{' (used at import)' if t == SUSPECT_THRESHOLD else ''}: fentanyl analogues flagged "
              f"{tp}/{len(pos)}; other records suspected {fp}/{len(neg)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
