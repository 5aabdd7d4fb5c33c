"""Benchmark: end-to-end replay throughput of the full default pipeline, and where the time goes.

Builds a 10,000-entry Raman library (the catalogue's substances, four instrument
variants each, plus synthetic compounds up to the size; Lorentzian bands, half of
them at shared positions, on a small baseline; processed by the default recipe) and
a stacked recording of 20,000 spectra simulated from it by the simulated analyzer's
measurement model (``drivers.simulator.model.simulate_batch``: detector response,
fluorescence, shot/read noise, cosmic rays, calibration error): single substances,
binary mixtures of a controlled substance with a cutting agent, and blanks, with
ground truth.

The class-alarm model of the library is trained once first and kept in a cache
directory of the run's own (``FOL_CACHE_DIR``), as it is for a lab replaying against
the same library again and again; its one-off cost is printed.

Then, in the same run:

1. ``fol.qa.replay.replay`` end to end (plan, read, quality, preprocess, search,
   mixture analysis, class alarm, decide, metrics, JSON Lines written to disk; library
   load and worker start-up included) with 1 and 2 worker processes on all spectra:
   first the full default pipeline (``Identifier()``: mixtures and class alarm, the
   configuration QA uses), then the single-substance path (``Identifier(mixture=False,
   class_alarm=False)``: read -> preprocess -> search -> decide -> write);
2. the arithmetic floor: the time of the matrix products the pipeline cannot avoid,
   measured here with one BLAS thread (as a worker runs): the single-substance search
   (library [N, n] x batch) and five screening rounds of the mixture's forward selection
   (a [N, n] float32 matrix x residuals, at most five rounds per spectrum), per spectrum
   and as spectra/s on 1 and 2 cores;
3. the share of time per stage: cProfile of an in-process run of ``--profile`` spectra
   of each configuration (profiling overhead included; the shares are what matters);
4. a straightforward peer pipeline, RamanSPy-style: per spectrum Whitaker-Hayes
   despiking, interpolation onto the library grid, Savitzky-Golay smoothing,
   pybaselines imodpoly, min-max normalisation, then ``scipy.stats.pearsonr`` in a
   Python loop over the 10,000 library rows, on ``--peer`` spectra (extrapolated);
5. with ``--memory N``: peak RSS (parent and workers apart) of a 2-worker replay of the
   recording's spectra against one of N spectra (the recording replayed N / spectra times,
   ``--memory-options`` pipeline, single-substance by default), each in a fresh process.

Targets (issue 16): full pipeline >= 1,000 spectra/s on 2 cores, >= 600/s with 1 worker;
single-substance >= 2,000 spectra/s on 2 cores; replay peak RSS for 1,000,000 spectra
within 1.5x of that for 20,000.

Run: python benchmarks/replay_throughput.py [--spectra 20000] [--profile 1000] [--peer 20] [--memory 1000000]
     python benchmarks/replay_throughput.py --quick     (2,000 spectra, short profiles: a few minutes)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_scale import band_parameters, machine, render  # noqa: E402

SINGLE_SUBSTANCE = (("mixture", False), ("class_alarm", False))


# ----------------------------------------------------------------------------- data


def build_library(path: Path, size: int, seed: int):
    """A ``size``-entry Raman library file; returns its section."""
    from fol.catalogue import load_catalogue
    from fol.io.library import make_section, write_library
    from fol.preprocess.recipe import default_grid, default_recipe

    rng = np.random.default_rng(seed)
    cat = load_catalogue()
    grid = default_grid("raman")
    known = [s for s in cat]
    variants = 4
    n_other = size - variants * len(known)
    params = band_parameters(len(known) + n_other, grid[0], grid[-1], rng, n_bands=10)
    names, classes, alarm, rows = [], [], [], []
    for v in range(variants):  # each catalogue substance as four instruments saw it
        c, h, w = (p[:len(known)] for p in params)
        rows.append(render(grid, c + rng.normal(0, 1.0), h * rng.uniform(0.9, 1.1, h.shape), w * rng.uniform(0.9, 1.15)))
        names += [s.name for s in known]
        classes += [s.cls for s in known]
        alarm += [s.alarm for s in known]
    rows.append(render(grid, *(p[len(known):] for p in params)))
    names += [f"compound-{i:05d}" for i in range(n_other)]
    classes += ["other"] * n_other
    alarm += [False] * n_other
    raw = np.vstack(rows) + 0.05 + 0.02 * rng.random((size, 1)) * np.linspace(0, 1, grid.size)
    section = make_section("raman", grid, raw, names, classes, alarm, ["measured"] * size, ["synthetic"] * size,
                           default_recipe("raman"))
    write_library(path, {"raman": section}, name="benchmark-10k")
    return section


def build_recording(path: Path, section, n: int, seed: int, per_sample: int = 100) -> None:
    """``n`` simulated spectra in one stacked entry, with ground truth."""
    from drivers.simulator.model import ReferenceSet, make_instrument, simulate_batch
    from fol.catalogue import load_catalogue
    from fol.io.recording import RecordingWriter

    rng = np.random.default_rng(seed)
    cat = load_catalogue()
    refset = ReferenceSet.from_library(section)
    instrument = make_instrument("raman", 1)
    controlled = [s.name for s in cat if s.alarm]
    cutting = [s.name for s in cat if not s.alarm]
    with RecordingWriter(path, "w") as w:
        stack = w.create_stack("replay", instrument.axis, "raman", "counts", instrument=instrument.metadata())
        for a in range(0, n, per_sample):
            kind = rng.random()
            if kind < 0.6:
                spec = str(rng.choice(controlled + cutting))
            elif kind < 0.9:
                spec = f"{rng.choice(controlled)}:0.3,{rng.choice(cutting)}:0.7"
            else:
                spec = "blank"
            batch = simulate_batch(refset, spec, min(per_sample, n - a), rng, instrument=instrument)
            truth = {k: v for k, v in batch.metadata["sample"].items() if v}
            stack.append(np.asarray(batch.intensity, np.float32), [truth] * len(batch))


# ----------------------------------------------------------------------------- runs


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_replay(recording: Path, library_path: Path, workers: int, options: tuple, out: Path):
    """One end-to-end replay (library load and worker start-up included); (wall s, CPU s, summary)."""
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier
    from fol.qa.replay import LibrarySpec, replay

    t0, c0 = time.perf_counter(), cpu_seconds()
    library = load_library(library_path)
    spec = LibrarySpec(str(library_path), library.sha256, options=options)
    identifier = Identifier(library, **dict(options))
    with open(out, "w", encoding="utf-8") as f:
        summary = replay([recording], identifier, spec, f.write, workers=workers, progress=False)
    return time.perf_counter() - t0, cpu_seconds() - c0, summary


def peer_identify(x, y, grid, library_rows):
    """RamanSPy-style per-spectrum pipeline and a pearsonr loop over the library; returns the best row."""
    from pybaselines import Baseline
    from scipy.signal import savgol_filter
    from scipy.stats import pearsonr

    d = np.diff(y)
    z = 0.6745 * (d - np.median(d)) / max(np.median(np.abs(d - np.median(d))), 1e-12)
    spikes = np.flatnonzero(np.abs(z) > 6) + 1
    y = y.copy()
    for i in spikes:  # Whitaker-Hayes: replace by the mean of the neighbours that are not spikes
        near = [j for j in range(max(0, i - 3), min(len(y), i + 4)) if j not in set(spikes)]
        y[i] = np.mean(y[near]) if near else y[i]
    y = np.interp(grid, x, y)
    y = savgol_filter(y, 7, 3)
    y = y - Baseline(x_data=grid).imodpoly(y, poly_order=5, tol=0.01)[0]
    y = (y - y.min()) / (y.max() - y.min())
    scores = [pearsonr(y, row)[0] for row in library_rows]
    return int(np.argmax(scores))


def stage_table(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Cumulative seconds of each pipeline stage, from a profile of an in-process replay."""
    table = stats.stats

    def cum(module: str, name: str, caller: str | None = None) -> float:
        total = 0.0
        for (file, _, func), (_, _, _, ct, callers) in table.items():
            if func == name and file.replace(os.sep, "/").endswith(module):
                total += ct if caller is None else sum(v[3] for (_, _, c), v in callers.items() if c == caller)
        return total

    rows = [("library load (+ hash check)", cum("fol/io/library.py", "load_library")),
            ("technique preparation (models)", cum("fol/identification/pipeline.py", "_prepare")),
            ("read recording (h5py)", cum("fol/io/recording.py", "read")),
            ("quality checks", cum("fol/identification/quality.py", "assess"))]
    for step in ("fill_nan", "despike", "resample", "baseline", "smooth", "normalize"):
        rows.append((f"preprocess: {step}", cum("fol/preprocess/steps.py", step, caller="_run")))
    rows += [("search (GEMM + exact top-k)", cum("fol/search/topk.py", "top_k", caller="search")),
             ("hit lists", cum("fol/search/searcher.py", "hits")),
             ("mixture analysis (all)", cum("fol/identification/mixture.py", "fit_many")),
             ("  of which screening (GEMM + top-k)", cum("fol/search/topk.py", "top_k_indices", caller="fit_many")),
             ("  of which batched NNLS (nnls_gram)", cum("fol/identification/nnls.py", "nnls_gram", caller="fit_many")),
             ("  of which scipy.optimize.nnls", cum("scipy/optimize/_nnls.py", "nnls")),
             ("confidence (all components of a batch)", cum("fol/identification/pipeline.py", "_components")),
             ("class alarm (a batch's remainders)", cum("fol/identification/pipeline.py", "_class_alarm")),
             ("decision", cum("fol/identification/decide.py", "decide")),
             ("JSON serialisation", cum("json/__init__.py", "dumps")),
             ("summary: metrics, regression", cum("fol/qa/replay.py", "add"))]
    calls = sum(v[1] for (file, _, func), v in table.items()
                if func == "nnls" and file.replace(os.sep, "/").endswith("scipy/optimize/_nnls.py"))
    return rows, calls


def arithmetic_floor(section, batch: int = 256, rounds: int = 5, repeats: int = 5) -> dict:
    """Seconds per spectrum of the products the pipeline cannot avoid, with one BLAS thread."""
    from threadpoolctl import threadpool_limits

    lib = np.ascontiguousarray(section.processed, dtype=np.float32)
    q = np.random.default_rng(0).standard_normal((batch, lib.shape[1])).astype(np.float32)
    with threadpool_limits(1):
        lib @ q.T
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            lib @ q.T
            best = min(best, time.perf_counter() - t)
    flops = 2.0 * lib.shape[0] * lib.shape[1] * batch
    return {"gemm_s": best / batch, "gflops": flops / best / 1e9, "rounds": rounds,
            "single": best / batch, "full": (1 + rounds) * best / batch}


def _hwm_mb(pid: int | str = "self") -> float:
    """Peak resident set of a process (``VmHWM``: of its own address space, unlike ``ru_maxrss``, which
    after fork + exec also counts what the parent had resident), in MB; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children() -> list[int]:
    pids = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def memory_child(argv) -> int:
    """``--memory-child REC LIB REPEAT WORKERS OPTIONS``: one replay; prints its peak RSS as JSON."""
    import json
    import threading

    rec, lib_path, repeat, workers, which = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    from fol.identification.pipeline import Identifier
    from fol.io.library import load_library
    from fol.qa.replay import LibrarySpec, replay

    options = SINGLE_SUBSTANCE if which == "single" else ()
    library = load_library(lib_path)
    spec = LibrarySpec(lib_path, library.sha256, options=options)
    identifier = Identifier(library, **dict(options))
    peaks: dict[int, float] = {}
    stop = threading.Event()

    def watch():  # the workers' peaks, read while they live
        while not stop.wait(0.2):
            for pid in _children():
                peaks[pid] = max(peaks.get(pid, 0.0), _hwm_mb(pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t = time.perf_counter()
    with open(os.devnull, "w", encoding="utf-8") as f:
        summary = replay([rec] * repeat, identifier, spec, f.write, workers=workers, progress=False)
    seconds = time.perf_counter() - t
    stop.set()
    watcher.join()
    print(json.dumps({"spectra": summary.n, "errors": summary.errors, "seconds": seconds,
                      "parent_mb": _hwm_mb(), "worker_mb": max(peaks.values(), default=0.0)}))
    return 0


def measure_memory(rec: Path, lib_path: Path, n_rec: int, total: int, which: str) -> None:
    import json
    import subprocess

    print(f"\nreplay memory ({which} pipeline, 2 workers, output to /dev/null; peak RSS of the parent "
          "process and of the largest worker, each run in a fresh process):")
    rows = {}
    for n in (n_rec, total):
        repeat = max(1, round(n / n_rec))
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(rec), str(lib_path), str(repeat), "2",
                              which], capture_output=True, text=True, check=True, env=os.environ.copy())
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows[n] = r
        print(f"  {r['spectra']:>9,} spectra ({repeat} x the recording): parent {r['parent_mb']:7.0f} MB, "
              f"worker {r['worker_mb']:7.0f} MB, {r['seconds']:.0f} s ({r['spectra'] / r['seconds']:,.0f}/s), "
              f"errors {r['errors']}")
    a, b = rows[n_rec], rows[total]
    print(f"  ratio {total:,} / {n_rec:,}: parent {b['parent_mb'] / a['parent_mb']:.2f}x, "
          f"worker {b['worker_mb'] / a['worker_mb']:.2f}x (target <= 1.5x)")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--memory-child"]:
        return memory_child(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spectra", type=int, default=20_000)
    ap.add_argument("--library-size", type=int, default=10_000)
    ap.add_argument("--peer", type=int, default=20, help="spectra through the peer pipeline")
    ap.add_argument("--profile", type=int, default=1_000, help="spectra in each profiled run")
    ap.add_argument("--memory", type=int, default=0, help="also measure peak RSS replaying this many spectra")
    ap.add_argument("--memory-options", choices=("single", "full"), default="single")
    ap.add_argument("--quick", action="store_true", help="2,000 spectra, 200 profiled, 5 peer (a short run)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", help="keep the generated files here (default: a temporary directory)")
    args = ap.parse_args(argv)
    if args.quick:
        args.spectra, args.profile, args.peer = min(args.spectra, 2_000), min(args.profile, 200), min(args.peer, 5)
    from fol.io.recording import Recording, RecordingWriter

    print(f"machine: {machine()}")
    tmp = tempfile.TemporaryDirectory()
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    lib_path = work / "library.h5"
    section = build_library(lib_path, args.library_size, args.seed)
    print(f"library: {len(section)} entries x {section.grid.size} points, built in {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    rec = work / "replay.h5"
    build_recording(rec, section, args.spectra, args.seed + 1)
    with Recording(rec) as r:
        x = r.entries[0]
        print(f"recording: {x.n_rows} spectra x {x.n_points} points, simulated in {time.perf_counter() - t:.0f} s")
        subsets = {}
        for n in (args.profile, args.peer):
            chunk = r.read(x.name, 0, n)
            subsets[n] = work / f"subset{n}.h5"
            with RecordingWriter(subsets[n], "w") as w:
                w.add_stack(chunk.batch, name="replay", expected=chunk.expected)

    # what is derived from the library (class-alarm model) is made once and cached, as in
    # a lab's repeated QA runs; a cache of this run's own, so the user's is not touched
    os.environ["FOL_CACHE_DIR"] = str(work / "cache")
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier

    t = time.perf_counter()
    Identifier(load_library(lib_path)).warm_caches()
    print(f"class-alarm model trained and cached once (later runs and workers read it): {time.perf_counter() - t:.1f} s")

    n = args.spectra
    floor = arithmetic_floor(section)
    print("\nwall: elapsed time, library load and worker start-up included; CPU: user+system of all processes")
    print(f"{'configuration':<44} {'spectra':>7} {'wall s':>7} {'spectra/s':>9} {'vs 1 worker':>11} "
          f"{'CPU s':>7} {'per CPU-s':>9}")
    rates, summaries = {}, {}
    for label, options in (("full default pipeline (mixture, class alarm)", ()),
                           ("single-substance pipeline", SINGLE_SUBSTANCE)):
        for workers in (1, 2):
            seconds, cpu, summary = run_replay(rec, lib_path, workers, options, work / "out.jsonl")
            assert summary.n == n and summary.errors == 0, (summary.n, summary.errors)
            rates[label, workers] = n / seconds
            print(f"{label + f', {workers} worker' + ('s' if workers > 1 else ''):<44} {n:>7} {seconds:>7.1f} "
                  f"{n / seconds:>9.0f} {rates[label, workers] / rates[label, 1]:>10.2f}x {cpu:>7.1f} {n / cpu:>9.0f}")
        summaries[label] = summary
    for label, key in (("arithmetic floor, full (search + 5 screening GEMMs)", "full"),
                       ("arithmetic floor, single-substance (search GEMM)", "single")):
        for workers in (1, 2):
            print(f"{label + f', {workers} core' + ('s' if workers > 1 else ''):<44} {'':>7} {'':>7} "
                  f"{workers / floor[key]:>9,.0f}")
    print(f"   (one [{len(section)} x {section.grid.size}] float32 x [{section.grid.size} x 256] GEMM: "
          f"{1e6 * floor['gemm_s']:.0f} us per spectrum, {floor['gflops']:.0f} GFLOP/s on one thread)")
    for label, summary in summaries.items():
        print(f"   {label}:\n      " + "\n      ".join(summary.lines()[:4]))
    full2, full1 = rates["full default pipeline (mixture, class alarm)", 2], rates["full default pipeline (mixture, class alarm)", 1]
    print(f"targets: full pipeline >= 1,000/s on 2 cores: {full2:,.0f}/s {'met' if full2 >= 1000 else 'NOT met'}; "
          f">= 600/s with 1 worker: {full1:,.0f}/s {'met' if full1 >= 600 else 'NOT met'}; single-substance >= 2,000/s: "
          f"{rates['single-substance pipeline', 2]:,.0f}/s "
          f"{'met' if rates['single-substance pipeline', 2] >= 2000 else 'NOT met'}")

    # the fixed part of a run (library load, worker start-up): a run of a few spectra
    print("\nstart-up (a run of the first", args.peer, "spectra) and the rate once running:")
    for label, options in (("full", ()), ("single-substance", SINGLE_SUBSTANCE)):
        key = "full default pipeline (mixture, class alarm)" if label == "full" else "single-substance pipeline"
        for workers in (1, 2):
            startup, _, _ = run_replay(subsets[args.peer], lib_path, workers, options, work / "out.jsonl")
            wall = n / rates[key, workers]
            print(f"  {label}, {workers} worker{'s' if workers > 1 else ' '}: start-up {startup:.1f} s of "
                  f"{wall:.1f} s; once running {n / max(wall - startup, 1e-9):,.0f} spectra/s")

    for label, options in (("full default pipeline", ()), ("single-substance pipeline", SINGLE_SUBSTANCE)):
        prof = cProfile.Profile()
        prof.enable()
        seconds, _, _ = run_replay(subsets[args.profile], lib_path, 1, options, work / "out.jsonl")
        prof.disable()
        rows, nnls_calls = stage_table(pstats.Stats(prof))
        print(f"\nwhere the time goes, {label}: in-process replay of {args.profile} spectra under cProfile "
              f"({seconds:.1f} s with profiling overhead; {nnls_calls / args.profile:.0f} scipy nnls calls per spectrum)")
        for name, sec in rows:
            if sec or not name.startswith("  "):
                print(f"  {name:<36} {sec:>7.2f} s {100 * sec / seconds:>5.1f} %  "
                      f"{1e6 * sec / args.profile:>7.0f} us/spectrum")

    with Recording(subsets[args.peer]) as r:
        chunk = r.read("replay")
    rows = section.processed.astype(np.float64)
    t = time.perf_counter()
    for y in chunk.batch.intensity:
        peer_identify(chunk.batch.wavenumber, y, section.grid, rows)
    peer_rate = args.peer / (time.perf_counter() - t)
    best = max(rates["single-substance pipeline", w] for w in (1, 2))
    print(f"\npeer pipeline (RamanSPy-style + pearsonr loop): {peer_rate:.2f} spectra/s "
          f"(measured on {args.peer}; {n / peer_rate / 3600:.1f} h extrapolated for {n})")
    print(f"fol (single-substance, best of 1 and 2 workers) / peer: {best / peer_rate:,.0f}x (target >= 20x)")
    if args.memory:
        measure_memory(rec, lib_path, n, args.memory, args.memory_options)
    print(f"machine after the run: {machine()}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
