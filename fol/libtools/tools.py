"""Making libraries: import measured files, build/re-render computed spectra, export.

These are the operations behind ``fol library import|build|render|export``; the CLI
only parses arguments and prints.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from fol.catalogue import Catalogue, load_catalogue, name_key
from fol.errors import FormatError, LibraryError
from fol.io.library import Library, LibrarySection, make_section, write_library

COMPUTED_PROVENANCE = "computed"
COMPUTED_LABEL = "computed (GFN2-xTB, harmonic)"


from fol.libtools.importing import ImportReport, import_library, read_name_map  # noqa: F401  (moved there)

# ---------------------------------------------------------------------------- computed library


def sections_from_sticks(sticks: dict, catalogue: Catalogue, *, raman_fwhm: float | None = None,
                         ftir_fwhm: float | None = None, excitation_nm: float = 785.0) -> dict[str, LibrarySection]:
    """Render stick spectra onto the default grids of both techniques (one row per substance)."""
    from fol.chem.render import render_sticks
    from fol.preprocess.recipe import default_grid, default_recipe

    sections = {}
    names = list(sticks)
    for tech, fwhm in (("raman", raman_fwhm), ("ftir", ftir_fwhm)):
        grid = default_grid(tech)
        raw = np.vstack([render_sticks(sticks[n], grid, tech, fwhm_cm1=fwhm, excitation_nm=excitation_nm)
                         for n in names]).astype(np.float32)
        subs = [catalogue[n] for n in names]
        src = [f"{COMPUTED_LABEL}; {sticks[n].method}; " + ("; ".join(sticks[n].warnings) if sticks[n].warnings else "ok")
               for n in names]
        sections[tech] = make_section(tech, grid, raw, names, [s.cls for s in subs], [s.alarm for s in subs],
                                      [COMPUTED_PROVENANCE] * len(names), src, default_recipe(tech))
    return sections


def sticks_to_store(sticks: dict) -> dict[str, dict]:
    return {n: {"frequencies_cm1": s.frequencies_cm1, "ir_intensity_km_mol": s.ir_intensity_km_mol,
                "raman_activity_A4_amu": s.raman_activity_A4_amu, "smiles": s.smiles, "method": s.method,
                "n_atoms": int(s.n_atoms), "imaginary_cm1": list(map(float, s.imaginary_cm1)),
                "warnings": list(s.warnings)} for n, s in sticks.items()}


def sticks_from_store(store: dict[str, dict]) -> dict:
    from fol.chem.sticks import StickSpectrum

    return {n: StickSpectrum(name=n, smiles=st["smiles"], frequencies_cm1=np.asarray(st["frequencies_cm1"]),
                             ir_intensity_km_mol=np.asarray(st["ir_intensity_km_mol"]),
                             raman_activity_A4_amu=np.asarray(st["raman_activity_A4_amu"]), method=st["method"],
                             n_atoms=int(st["n_atoms"]), imaginary_cm1=tuple(st["imaginary_cm1"]),
                             warnings=tuple(st["warnings"]))
            for n, st in store.items()}


def build_computed_library(catalogue_path, out, *, cache_dir, jobs: int = 1, only=None, name="fol-reference",
                           progress: bool = True) -> tuple[str, list[str]]:
    """Compute (or take from cache) stick spectra for the catalogue and write the library.

    Returns (sha256, names that failed). Substances that fail are reported and left out.
    """
    from fol.chem.build import build_sticks

    catalogue = Catalogue.load(catalogue_path)
    rows = [{"name": s.name, "smiles": s.smiles} for s in catalogue if s.smiles]
    sticks = build_sticks(rows, cache_dir, jobs=jobs, only=only, progress=progress)
    wanted = [r["name"] for r in rows if not only or r["name"] in only]
    failed = [n for n in wanted if n not in sticks]
    ordered = {n: sticks[n] for n in wanted if n in sticks}
    if not ordered:
        raise LibraryError("no substance could be computed")
    sections = sections_from_sticks(ordered, catalogue)
    sha = write_library(out, sections, name=name, sticks=sticks_to_store(ordered),
                        description=f"{COMPUTED_LABEL} spectra for {len(ordered)} catalogue substances: "
                                    "for simulation, training and tests, not evidence in casework")
    return sha, failed


def render_library(lib: Library, out, *, raman_fwhm: float | None = None, ftir_fwhm: float | None = None,
                   excitation_nm: float = 785.0, catalogue: Catalogue | None = None) -> str:
    """Re-render a computed library's stick spectra for another instrument (no chemistry recomputed)."""
    if not lib.sticks:
        raise LibraryError(f"{lib.path}: library has no stick spectra to re-render (only computed libraries do)")
    catalogue = catalogue or load_catalogue()
    stored = sticks_from_store(lib.sticks)
    order = next(iter(lib.sections.values())).names if lib.sections else sorted(stored)
    sticks = {n: stored[n] for n in order if n in stored}  # keep the library's entry order
    sections = sections_from_sticks(sticks, catalogue, raman_fwhm=raman_fwhm, ftir_fwhm=ftir_fwhm,
                                    excitation_nm=excitation_nm)
    desc = lib.description + f" (re-rendered: Raman FWHM {raman_fwhm or 'default'}, FTIR FWHM {ftir_fwhm or 'default'}, " \
                             f"excitation {excitation_nm} nm)"
    return write_library(out, sections, name=lib.name, sticks=lib.sticks, description=desc)


# ---------------------------------------------------------------------------- export


def export_section(section: LibrarySection, out_dir: str | Path, fmt: str, which: str = "raw",
                   names=None) -> list[Path]:
    """Write each entry (or those whose name or synonym matches ``names``) as CSV or JCAMP-DX into ``out_dir``.

    The files say their technique (CSV: ``# technique:`` line and column names; JCAMP-DX:
    ``DATA TYPE``), name and class, so that they re-import without options.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = section.raw if which == "raw" else section.processed
    written, seen = [], defaultdict(int)
    wanted = None
    if names:
        cat = load_catalogue()
        wanted = {name_key(n) for n in names} | {name_key(cat.resolve(n)) for n in names if cat.resolve(n)}
    for i, name in enumerate(section.names):
        if wanted is not None and name_key(name) not in wanted:
            continue
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        seen[stem] += 1
        if seen[stem] > 1:
            stem += f"_{seen[stem]}"
        path = out_dir / f"{stem}_{section.technique}.{'csv' if fmt == 'csv' else 'jdx'}"
        y = data[i].astype(np.float64)
        if fmt == "csv":
            ycol = "intensity" if section.technique == "raman" else "absorbance"
            xcol = "raman_shift_cm-1" if section.technique == "raman" else "wavenumber_cm-1"
            head = [f"# technique: {section.technique}", f"# name: {name}", f"# class: {section.classes[i]}",
                    f"# alarm: {'true' if section.alarm[i] else 'false'}", f"# provenance: {section.provenance[i]}",
                    f"# spectrum: {which}", f"{xcol},{ycol}"]
            np.savetxt(path, np.column_stack([section.grid, y]), delimiter=",", fmt="%.6g",
                       header="\n".join(head), comments="")
        elif fmt == "jcamp":
            path.write_text(_jcamp_text(name, section, i, y), encoding="ascii", errors="replace")
        else:
            raise FormatError(f"unknown export format {fmt!r} (csv or jcamp)")
        written.append(path)
    return written


def _jcamp_text(name: str, section: LibrarySection, i: int, y: np.ndarray) -> str:
    """A JCAMP-DX 4.24 AFFN file: ##XYDATA=(X++(Y..Y)) with 10 values a line.

    Written here rather than with ``jcamp.write`` because jcamp 1.3.2's writer prints a
    debug line per data point to stdout; the files are read back with ``jcamp.readfile``
    in the tests.
    """
    x = section.grid
    factor = float(np.max(np.abs(y))) / 1e6 or 1.0
    yi = np.rint(y / factor).astype(np.int64)
    lines = [f"##TITLE={name}", "##JCAMP-DX=4.24", f"##$FOL CLASS={section.classes[i]}",
             f"##$FOL ALARM={'true' if section.alarm[i] else 'false'}",
             f"##DATA TYPE={'RAMAN SPECTRUM' if section.technique == 'raman' else 'INFRARED SPECTRUM'}",
             f"##ORIGIN={section.provenance[i]}: {section.source[i]}", "##OWNER=fol reference library",
             "##XUNITS=1/CM", f"##YUNITS={'ARBITRARY UNITS' if section.technique == 'raman' else 'ABSORBANCE'}",
             "##XFACTOR=1", f"##YFACTOR={factor:.10g}", f"##FIRSTX={x[0]:.6g}", f"##LASTX={x[-1]:.6g}",
             f"##DELTAX={(x[-1] - x[0]) / (x.size - 1):.10g}", f"##FIRSTY={yi[0] * factor:.10g}",
             f"##NPOINTS={x.size}", "##XYDATA=(X++(Y..Y))"]
    for a in range(0, x.size, 10):
        lines.append(f"{x[a]:.6g} " + " ".join(str(v) for v in yi[a:a + 10]))
    lines.append("##END=")
    return "\n".join(lines) + "\n"
