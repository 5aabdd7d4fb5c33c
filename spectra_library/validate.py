"""Validate the computed reference library against real data; writes VALIDATION.md.

Run: python spectra_library/validate.py [--library spectra_library/fol-reference.h5]
                                         [--real ../shared/data/real] [--out spectra_library/VALIDATION.md]

Reports, as they are:
1. Raman shifts of the reference standards vs. accepted values (ASTM E1840), before and
   after the frequency scaling factor: mean absolute error over the matched strong bands.
2. Every real ENFSI ATR-FTIR spectrum whose substance is in the library: correlation of
   the computed IR spectrum with it (both through the library's FTIR recipe), and the
   rank of the true substance when the real spectrum is searched in the computed library.
3. The same for the real acetaminophen (paracetamol) Raman tablet spectrum.
4. Near-duplicates: pairs of substances whose processed spectra correlate above 0.995.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fol.catalogue import load_catalogue  # noqa: E402
from fol.chem.build import ASTM_E1840_BANDS, match_bands  # noqa: E402
from fol.chem.render import SCALE_FACTOR  # noqa: E402
from fol.libtools.tools import sticks_from_store  # noqa: E402
from fol.io.library import load_library  # noqa: E402



def band_errors(sticks, accepted, scale: float) -> np.ndarray:
    """|accepted - nearest strong computed band| at ``scale`` (matching as in the scale-factor fit)."""
    return np.array([abs(c * scale - a) for c, a in match_bands(sticks, accepted, scale)])


def standards_section(lib) -> list[str]:
    out = ["## 1. Reference standards: computed vs accepted Raman shifts", "",
           f"Frequency scaling factor: **{SCALE_FACTOR}** (one factor for all modes, least-squares fit to these "
           f"bands; see `fol/chem/render.py`). Each accepted band is matched to the nearest computed band whose "
           f"785 nm Raman intensity is at least 2% of the molecule's strongest above 150 cm-1 "
           f"(`fol.chem.build.match_bands`).", "",
           "| standard | bands | MAE unscaled (cm-1) | MAE scaled (cm-1) | worst scaled (cm-1) |", "|---|---|---|---|---|"]
    all_raw, all_scaled = [], []
    sticks = sticks_from_store(lib.sticks)
    for name, accepted in ASTM_E1840_BANDS.items():
        st = sticks.get(name)
        if st is None:
            out.append(f"| {name} | – | not in library | | |")
            continue
        raw, scaled = band_errors(st, accepted, 1.0), band_errors(st, accepted, SCALE_FACTOR)
        all_raw.append(raw)
        all_scaled.append(scaled)
        out.append(f"| {name} | {len(accepted)} | {raw.mean():.1f} | {scaled.mean():.1f} | {scaled.max():.1f} |")
    if all_raw:
        r, s = np.concatenate(all_raw), np.concatenate(all_scaled)
        out.append(f"| **all** | {r.size} | **{r.mean():.1f}** | **{s.mean():.1f}** | {s.max():.1f} |")
    out += ["", "Accepted values: ASTM E1840-96(2022) Table 1, as transcribed into `fol/chem/build.py` "
                "(an online copy of the table could not be consulted from the build environment to re-check the "
                "transcription; check against the standard before relying on sub-cm-1 figures).", ""]
    return out


def _search_ranks(section, processed_queries: np.ndarray, true_names: list[str]) -> tuple[list[int], list[float]]:
    scores = processed_queries @ section.processed.T
    ranks, corrs = [], []
    for i, name in enumerate(true_names):
        j = section.names.index(name)
        order = np.argsort(-scores[i])
        ranked_names = list(dict.fromkeys(section.names[k] for k in order))  # rank by substance
        ranks.append(ranked_names.index(name) + 1)
        corrs.append(float(scores[i, j]))
    return ranks, corrs


def enfsi_section(lib, real: Path) -> list[str]:
    from fol.io.formats import read_spectra_file

    cat = load_catalogue()
    sec = lib.section("ftir")
    recipe = sec.recipe
    rows, names, files = [], [], []
    for path in sorted((real / "enfsi_ir").glob("*.json")):
        [(hint, spec)] = read_spectra_file(path)
        name = cat.resolve(hint) or next((cat.resolve(a) for a in spec.metadata.get("aliases", ()) if cat.resolve(a)), None)
        if name in sec.names:
            rows.append(recipe.apply_spectrum(spec, sec.grid).data[0])
            names.append(name)
            files.append(path.name)
    out = ["## 2. Computed IR vs real ENFSI ATR-FTIR spectra", ""]
    if not rows:
        return out + ["No ENFSI record matched a library substance.", ""]
    ranks, corrs = _search_ranks(sec, np.vstack(rows), names)
    r = np.array(ranks)
    out += [f"{len(names)} real spectra whose substance is in the computed library ({len(sec)} substances). "
            f"Correlation = Pearson correlation of the two spectra after the library's FTIR recipe; rank = "
            f"position of the true substance when the real spectrum is searched in the computed library.", "",
            f"- median correlation **{np.median(corrs):.2f}** (min {min(corrs):.2f}, max {max(corrs):.2f})",
            f"- true substance ranked 1st: **{(r == 1).sum()}/{r.size}**, in top 5: {(r <= 5).sum()}/{r.size}, "
            f"in top 10: {(r <= 10).sum()}/{r.size}; median rank {np.median(r):.0f}", "",
            "| ENFSI file | substance | correlation | rank |", "|---|---|---|---|"]
    out += [f"| {f} | {n} | {c:.2f} | {k} |" for f, n, c, k in zip(files, names, corrs, ranks)]
    return out + [""]


def raman_section(lib, real: Path) -> list[str]:
    from fol.io.formats import read_spectra_file

    sec = lib.section("raman")
    path = real / "raman_paracetamol" / "paracetamol_renishaw.txt"
    out = ["## 3. Computed Raman vs the real acetaminophen (paracetamol) tablet spectrum", ""]
    if not path.exists() or "acetaminophen" not in sec.names:
        return out + ["Not available.", ""]
    [(hint, spec)] = read_spectra_file(path, "raman")
    q = sec.recipe.apply_spectrum(spec, sec.grid).data
    [rank], [corr] = _search_ranks(sec, q, ["acetaminophen"])
    top = [sec.names[k] for k in np.argsort(-(q @ sec.processed.T)[0])[:5]]
    return out + [f"Renishaw inVia tablet spectrum ({path.name}) through the library's Raman recipe: correlation "
                  f"with the computed acetaminophen spectrum **{corr:.2f}**, rank of acetaminophen **{rank}** of "
                  f"{len(set(sec.names))}. Top 5: {', '.join(top)}.", ""]


def duplicates_section(lib) -> list[str]:
    out = ["## 4. Distinctness: substance pairs whose processed spectra correlate above 0.995", ""]
    for t, sec in lib.sections.items():
        c = sec.processed @ sec.processed.T
        iu = np.triu_indices(len(sec), 1)
        pairs = [(sec.names[i], sec.names[j], c[i, j]) for i, j in zip(*iu) if c[i, j] > 0.995]
        out.append(f"- {t}: " + ("none" if not pairs else "; ".join(f"{a} / {b} ({v:.4f})" for a, b, v in pairs)))
    return out + [""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", default=str(HERE / "fol-reference.h5"))
    ap.add_argument("--real", default=str(HERE.parent.parent / "shared" / "data" / "real"))
    ap.add_argument("--out", default=str(HERE / "VALIDATION.md"))
    args = ap.parse_args(argv)
    lib = load_library(args.library)
    real = Path(args.real)
    lines = ["# Validation of the computed reference library", "",
             f"Library `{Path(args.library).name}` (sha256 `{lib.sha256[:16]}…`), {lib.description}.",
             f"Produced by `python spectra_library/validate.py` on "
             f"{datetime.now(timezone.utc).strftime('%Y-%m-%d')}. Numbers are reported as they are.", ""]
    lines += standards_section(lib)
    if real.is_dir():
        lines += enfsi_section(lib, real) + raman_section(lib, real)
    else:
        lines += [f"Real data folder {real} not found: sections 2 and 3 skipped.", ""]
    lines += duplicates_section(lib)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
