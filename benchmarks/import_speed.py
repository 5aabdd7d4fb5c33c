"""Import speed: 4,000 ENFSI-style JCAMP-DX files in one zip into a library (goal: under a minute on 2 cores).

The zip is generated from the 67 real ENFSI records (tests/io/enfsi_zip_fixture.py: ``#NNNNv - Name``
titles, AFFN data), 60 measurements per record, then imported with ``fol library import`` as a user
would (2 reader processes), timed end to end (reading, classifying, processing, class model, writing).

    python benchmarks/import_speed.py [--files 4000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "io"))
REAL = ROOT.parent / "shared" / "data" / "real"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    from enfsi_zip_fixture import build_enfsi_zip

    from fol.libtools.importing import import_library

    copies = -(-args.files // 67)
    with tempfile.TemporaryDirectory() as tmp:
        z = build_enfsi_zip(REAL / "enfsi_ir", Path(tmp) / "enfsi_big.zip", copies=copies)
        t0 = time.perf_counter()
        rep = import_library([z], Path(tmp) / "big.h5", jobs=args.jobs)
        dt = time.perf_counter() - t0
    n = rep.counts.get("ftir", 0)
    print(f"imported {n} JCAMP-DX files ({67 * copies} in the zip) with {args.jobs} reader processes "
          f"in {dt:.1f} s ({n / dt:.0f} files/s); refused {len(rep.refused)}; goal < 60 s: "
          f"{'met' if dt < 60 else 'NOT met'}")
    return 0 if dt < 60 and not rep.refused else 1


if __name__ == "__main__":
    raise SystemExit(main())
