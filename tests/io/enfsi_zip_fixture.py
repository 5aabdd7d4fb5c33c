"""Build an ENFSI-DWG-style JCAMP-DX zip from the real ENFSI JSON records (the library itself cannot be
downloaded here): one JCAMP-DX file per measurement, ``##TITLE=#NNNNv - Name``, CAS NAME, MOLFORM, MW,
SAMPLE DESCRIPTION, absorbance in AFFN ``(X++(Y..Y))``, as the distribution has them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np


def jcamp_text(record: dict, *, lab: str = "", scale: float = 1.0) -> str:
    s = record["spectrum"]
    y = 1.0 - np.asarray([np.nan if v is None else v for v in s["y"]], dtype=float) / 100.0
    y = np.nan_to_num(y, nan=0.0) * scale
    n = y.size
    x = s["firstX"] + (s["lastX"] - s["firstX"]) * np.arange(n) / (n - 1)
    factor = 1e-6
    yi = np.rint(y / factor).astype(int)
    flag = "v" if record.get("validated") else "n"
    form = record.get("form") or ""
    lines = [f"##TITLE=#{int(record['enfsiId']):04d}{flag} - {record['name']}", "##JCAMP-DX=4.24",
             "##DATA TYPE=INFRARED SPECTRUM", f"##CAS NAME={record.get('iupac') or record['name']}",
             f"##MOLFORM={record.get('formula') or ''}", f"##MW={record.get('mw') or ''}",
             f"##SAMPLE DESCRIPTION={form}{(' ' + lab) if lab else ''}".rstrip(), "##ORIGIN=ENFSI DWG IR library",
             "##XUNITS=1/CM", "##YUNITS=ABSORBANCE", "##XFACTOR=1", f"##YFACTOR={factor}",
             f"##FIRSTX={x[0]:.6f}", f"##LASTX={x[-1]:.6f}", f"##DELTAX={(x[-1] - x[0]) / (n - 1):.8f}",
             f"##NPOINTS={n}", f"##FIRSTY={yi[0] * factor:.6f}", "##XYDATA=(X++(Y..Y))"]
    for a in range(0, n, 8):
        lines.append(f"{x[a]:.6f} " + " ".join(str(v) for v in yi[a:a + 8]))
    lines.append("##END=")
    return "\r\n".join(lines) + "\r\n"


def build_enfsi_zip(records_dir: Path, out: Path, *, copies: int = 1, extra: dict | None = None) -> Path:
    """A zip of ``copies`` measurements per record (later copies: another 'laboratory', scaled slightly)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ENFSI_IR_library/readme.txt", "ENFSI DWG IR library (test copy built from the JSON records)\n")
        for p in sorted(records_dir.glob("*.json")):
            r = json.loads(p.read_text())
            for c in range(copies):
                rr = dict(r, enfsiId=int(r["enfsiId"]) + 10000 * c)
                zf.writestr(f"ENFSI_IR_library/{p.stem}_{c}.jdx", jcamp_text(rr, lab=f"lab {c + 1}" if c else "",
                                                                              scale=1.0 + 0.01 * c))
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
    return out
