"""Resumable, parallel build of GFN2-xTB stick spectra for the substance catalogue.

Usage::

    python -m fol.chem.build --catalogue substances.csv --cache spectra_library/.cache \\
        [--jobs N] [--only name1,name2] [--fit-scale]

One ``.npz`` per substance is written to ``<cache>/<key>.npz`` with
``key = sha256(smiles + str(METHOD_VERSION))[:16]``; existing files are reused,
so an interrupted build resumes where it stopped and a change of
``METHOD_VERSION`` invalidates everything.  Substances are computed in a
``ProcessPoolExecutor`` (largest first, for better load balance); a failing
substance is reported and skipped, and all failures are listed at the end.
Worker processes are spawned fresh and run with ``OMP_NUM_THREADS=1``.

``--fit-scale`` re-derives :data:`fol.chem.render.SCALE_FACTOR` from the cached
reference standards (see :func:`fit_scale_factor`).
"""

from __future__ import annotations

import logging

import argparse
import csv
import hashlib
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from fol.chem.sticks import METHOD_VERSION, StickSpectrum

logger = logging.getLogger("fol.chem")

#: Accepted Raman shifts (cm-1) of the ASTM E1840-96(2022) Table 1 standards.
ASTM_E1840_BANDS: dict[str, tuple[float, ...]] = {
    "cyclohexane": (801.3, 1028.3, 1266.4, 1444.4, 2852.9, 2938.3),
    "toluene": (521.7, 786.5, 1003.6, 1030.6, 1210.4, 1605.1, 3057.1),
    "acetonitrile": (918.0, 1376.0, 2253.7, 2940.8),
    "naphthalene": (513.8, 763.8, 1021.6, 1147.2, 1382.2, 1464.5, 1576.6, 3056.4),
    "benzonitrile": (460.9, 1000.7, 1177.9, 1599.4, 2229.4, 3072.3),
    "acetaminophen": (329.2, 465.1, 651.6, 797.2, 857.9, 1168.5, 1236.8, 1323.9,
                      1371.5, 1561.5, 1648.4, 2931.1),
}

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cache_key(smiles: str) -> str:
    return hashlib.sha256((smiles + str(METHOD_VERSION)).encode("utf-8")).hexdigest()[:16]


def cache_path(cache_dir, smiles: str) -> Path:
    return Path(cache_dir) / f"{cache_key(smiles)}.npz"


def read_catalogue(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def _worker_init() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def _compute(name: str, smiles: str, out: str) -> tuple[str, float, int]:
    """Worker: compute one substance and write its cache file."""
    _worker_init()
    from fol.chem.xtb import compute_sticks

    t0 = time.perf_counter()
    st = compute_sticks(name, smiles)
    st.save_npz(out)
    return name, time.perf_counter() - t0, st.n_atoms


def _n_atoms_estimate(smiles: str) -> int:
    try:
        from rdkit import Chem

        m = Chem.MolFromSmiles(smiles)
        return Chem.AddHs(m).GetNumAtoms() if m is not None else 0
    except Exception:
        return len(smiles)


def _fmt_s(s: float) -> str:
    s = max(0.0, float(s))
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def build_sticks(
    rows: Iterable[Mapping[str, str]],
    cache_dir,
    jobs: int = 1,
    only: Sequence[str] | str | None = None,
    progress: "bool | Callable[[str], None]" = True,
) -> dict[str, StickSpectrum]:
    """Compute (or load from cache) stick spectra for catalogue ``rows``.

    ``rows``: mappings with at least ``name`` and ``smiles``.  ``only``: names
    (list or comma-separated string) to restrict to.  Returns ``{name: sticks}``
    for every substance that succeeded; failures are reported and skipped.
    Progress and failures go to the ``fol.chem`` logger and, when ``progress`` is a
    callable, to it as one line each (``False``: logger only). Library code prints nothing.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(only, str):
        only = [s.strip() for s in only.split(",") if s.strip()]
    rows = [dict(r) for r in rows]
    if only:
        wanted = set(only)
        missing = wanted - {r["name"] for r in rows}
        if missing:
            raise KeyError(f"not in catalogue: {', '.join(sorted(missing))}")
        rows = [r for r in rows if r["name"] in wanted]

    def log(msg: str) -> None:
        logger.info(msg)
        if callable(progress):
            progress(msg)

    result: dict[str, StickSpectrum] = {}
    todo: list[dict[str, str]] = []
    for r in rows:
        p = cache_path(cache_dir, r["smiles"])
        if p.exists():
            try:
                st = StickSpectrum.load_npz(p)
                if st.smiles == r["smiles"]:
                    result[r["name"]] = st if st.name == r["name"] else _renamed(st, r["name"])
                    continue
            except Exception as exc:  # corrupt cache file: recompute
                log(f"cache file {p} unreadable ({exc}); recomputing")
        todo.append(r)

    total = len(rows)
    done = len(result)
    log(f"[chem] {total} substances: {done} cached, {len(todo)} to compute with {jobs} job(s)")
    failures: dict[str, str] = {}
    if not todo:
        return result

    # largest molecules first: better load balance at the end of the run
    size = {r["name"]: _n_atoms_estimate(r["smiles"]) for r in todo}
    todo.sort(key=lambda r: -size[r["name"]])
    work_units = {r["name"]: float(size[r["name"]]) ** 2 for r in todo}  # rough cost model
    remaining_units = sum(work_units.values())
    t_start = time.perf_counter()
    units_done = 0.0

    def finished(r, ok_payload=None, err=None):
        nonlocal done, units_done, remaining_units
        name = r["name"]
        done += 1
        units_done += work_units[name]
        remaining_units -= work_units[name]
        elapsed = time.perf_counter() - t_start
        eta = elapsed / units_done * remaining_units if units_done > 0 else float("nan")
        if err is None:
            _, secs, nat = ok_payload
            st = StickSpectrum.load_npz(cache_path(cache_dir, r["smiles"]))
            result[name] = st
            extra = f" [{len(st.warnings)} warning(s)]" if st.warnings else ""
            log(f"[chem] {done}/{total} {name} ({nat} atoms) {secs:.1f} s, ETA {_fmt_s(eta)}{extra}")
        else:
            failures[name] = err
            log(f"[chem] {done}/{total} {name} FAILED: {err.strip().splitlines()[-1]}  ETA {_fmt_s(eta)}")

    if jobs <= 1:
        for r in todo:
            try:
                payload = _compute(r["name"], r["smiles"], str(cache_path(cache_dir, r["smiles"])))
                finished(r, payload)
            except Exception:
                finished(r, err=traceback.format_exc())
    else:
        # "spawn": fresh interpreters, so OMP_NUM_THREADS=1 (set by the
        # initializer) is in place before tblite/libgomp is loaded, and no
        # OpenMP runtime state is inherited through fork().
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=ctx, initializer=_worker_init) as pool:
            futs = {
                pool.submit(_compute, r["name"], r["smiles"], str(cache_path(cache_dir, r["smiles"]))): r
                for r in todo
            }
            pending = set(futs)
            while pending:
                complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in complete:
                    r = futs[fut]
                    try:
                        finished(r, fut.result())
                    except Exception:
                        finished(r, err=traceback.format_exc())

    log(f"[chem] finished in {_fmt_s(time.perf_counter() - t_start)}: "
        f"{len(result)} ok, {len(failures)} failed")
    if failures:
        log("[chem] failed substances: " + ", ".join(sorted(failures)))
        for name, tb in sorted(failures.items()):
            log(f"--- {name}\n{tb.rstrip()}")
    return result


def _renamed(st: StickSpectrum, name: str) -> StickSpectrum:
    from dataclasses import replace

    return replace(st, name=name)


# ------------------------------------------------------------ scale factor
def match_bands(
    sticks: StickSpectrum,
    accepted: Sequence[float],
    scale: float,
    *,
    min_rel_intensity: float = 0.02,
    excitation_nm: float = 785.0,
    min_shift_cm1: float = 150.0,
) -> list[tuple[float, float]]:
    """Pair each accepted band with the nearest strong computed Raman band.

    Strong = Raman intensity (:func:`fol.chem.render.raman_intensity` at the
    scaled wavenumber) >= ``min_rel_intensity`` x the molecule's strongest band
    with a scaled shift >= ``min_shift_cm1`` (the measured range of the
    instruments; below it torsions such as the toluene methyl rotor get huge
    thermal/1/nu factors and would dominate).
    Returns ``[(unscaled computed, accepted), ...]``.
    """
    from fol.chem.render import raman_intensity

    f = np.asarray(sticks.frequencies_cm1)
    inten = raman_intensity(f * scale, sticks.raman_activity_A4_amu, excitation_nm)
    inrange = f * scale >= min_shift_cm1
    inten = np.where(inrange, inten, 0.0)
    strong = f[(inten >= min_rel_intensity * inten.max()) & inrange]
    pairs = []
    for v in accepted:
        i = int(np.argmin(np.abs(strong * scale - v)))
        pairs.append((float(strong[i]), float(v)))
    return pairs


def fit_scale_factor(
    sticks_by_name: Mapping[str, StickSpectrum],
    bands: Mapping[str, Sequence[float]] = ASTM_E1840_BANDS,
    *,
    min_rel_intensity: float = 0.02,
    max_iter: int = 50,
) -> dict:
    """Least-squares scale factor s = sum(c e) / sum(c^2) with iterated matching.

    Returns a dict with ``scale``, ``mae_unscaled``, ``mae_scaled``,
    ``rmse_scaled``, ``n_bands`` and ``pairs`` (name, computed, accepted).
    """
    def pairs_for(scale):
        out = []
        for name, acc in bands.items():
            for c, e in match_bands(sticks_by_name[name], acc, scale,
                                    min_rel_intensity=min_rel_intensity):
                out.append((name, c, e))
        return out

    pairs0 = pairs_for(1.0)
    c0 = np.array([p[1] for p in pairs0])
    e0 = np.array([p[2] for p in pairs0])
    scale = 1.0
    pairs = pairs0
    for _ in range(max_iter):
        c = np.array([p[1] for p in pairs])
        e = np.array([p[2] for p in pairs])
        new = float(np.dot(c, e) / np.dot(c, c))
        new_pairs = pairs_for(new)
        converged = new_pairs == pairs and abs(new - scale) < 1e-7
        scale, pairs = new, new_pairs
        if converged:
            break
    c = np.array([p[1] for p in pairs])
    e = np.array([p[2] for p in pairs])
    return {
        "scale": scale,
        "n_bands": len(pairs),
        "mae_unscaled": float(np.mean(np.abs(c0 - e0))),
        "mae_scaled": float(np.mean(np.abs(scale * c - e))),
        "rmse_scaled": float(np.sqrt(np.mean((scale * c - e) ** 2))),
        "pairs": pairs,
        "pairs_unscaled": pairs0,
    }


def _print_fit(fit: dict) -> None:
    print(f"scale factor  : {fit['scale']:.4f}  ({fit['n_bands']} bands)")
    print(f"MAE unscaled  : {fit['mae_unscaled']:.1f} cm-1 (matching at scale 1)")
    print(f"MAE scaled    : {fit['mae_scaled']:.1f} cm-1, RMSE {fit['rmse_scaled']:.1f} cm-1")
    s = fit["scale"]
    for name, c, e in fit["pairs"]:
        print(f"  {name:14s} accepted {e:7.1f}  computed {c:7.1f}  scaled {s * c:7.1f}  "
              f"residual {s * c - e:+6.1f}")


# --------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fol.chem.build", description=__doc__.split("\n")[0])
    ap.add_argument("--catalogue", required=True, help="substances.csv (name,...,smiles,...)")
    ap.add_argument("--cache", required=True, help="cache directory for per-substance .npz files")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--only", default=None, help="comma-separated substance names")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--fit-scale", action="store_true",
                    help="(re)compute the ASTM E1840 reference standards and fit SCALE_FACTOR")
    args = ap.parse_args(argv)

    rows = read_catalogue(args.catalogue)
    only = args.only
    if args.fit_scale:
        only = ",".join(ASTM_E1840_BANDS)
    res = build_sticks(rows, args.cache, jobs=args.jobs, only=only,
                       progress=False if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    wanted = len(rows) if not only else len([s for s in only.split(",") if s.strip()])
    if args.fit_scale:
        _print_fit(fit_scale_factor(res))
    return 0 if len(res) == wanted else 1


if __name__ == "__main__":
    sys.exit(main())
