"""Benchmark: what a spawned replay worker spends before its first task.

A worker of ``fol replay --workers N`` is a fresh (spawned) interpreter: it imports
what unpickling its task needs (``fol.qa.replay``), runs the pool initializer
(``fol.qa.replay._init_process``: the library loaded and checked against the run's
hash, an ``Identifier`` made), then analyses its first task, which prepares the
technique (search index, class-alarm model and mixture model read from the cache).
This script spawns workers exactly that way and reports, per worker, the time of each
stage, measured inside the worker:

* interpreter start-up (spawn until the worker runs Python code of ours),
* imports (``fol.qa.replay`` and the pipeline modules a task uses),
* library load (``load_library`` + hash check, or mapping the cache),
* ``Identifier`` construction and technique preparation (a first 1-spectrum analysis).

The parent does what ``fol.qa.replay.replay`` does first (loads the library once,
``warm_caches``) so that the workers see the caches a run leaves.

Run: python benchmarks/worker_startup.py [--library PATH] [--recording PATH] [--repeat 3]
(without --library, a 10,000-entry benchmark library is built as in replay_throughput.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path


def _child(fields: dict, recording: str, t_spawn: float) -> dict:
    t0 = time.time()
    import fol.qa.replay as replay  # what unpickling run_task imports

    spec = replay.LibrarySpec(**fields)
    t1 = time.time()
    replay._limit_threads()
    from fol.io.recording import Recording

    with Recording(recording) as r:
        entry = r.entries[0].name
        chunk = r.read(entry, 0, 1)
    t2 = time.time()
    import importlib

    for name in ("fol.io.library", "fol.identification.pipeline", "fol.preprocess.recipe",
                 "fol.identification.quality", "fol.search.searcher", "fol.identification.confidence",
                 *(("fol.identification.mixture", "fol.identification.classalarm") if not spec.options else ())):
        importlib.import_module(name)  # what the first task imports (measured apart from the preparation)
    t3 = time.time()
    identifier = replay._identifier(spec)
    t4 = time.time()
    identifier.analyse(chunk.batch, source=recording, entry=entry)
    t5 = time.time()
    mods = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "sklearn", "h5py", "pybaselines", "fol"))
    return {"interpreter": t0 - t_spawn, "import replay": t1 - t0, "read 1 row": t2 - t1,
            "import pipeline modules": t3 - t2, "library + Identifier()": t4 - t3, "first 1-spectrum analysis": t5 - t4,
            "total": t5 - t_spawn, "modules": mods, "library_mapped": bool(getattr(identifier.library, "mapped", False))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library")
    ap.add_argument("--recording")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir")
    ap.add_argument("--options", choices=("full", "single"), default="full")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    tmp = tempfile.TemporaryDirectory()
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    lib_path, rec = Path(args.library or work / "library.h5"), Path(args.recording or work / "replay.h5")
    if not lib_path.exists() or not rec.exists():
        from replay_throughput import build_library, build_recording

        section = build_library(lib_path, 10_000, 7)
        build_recording(rec, section, 100, 8)
    os.environ.setdefault("FOL_CACHE_DIR", str(work / "cache"))
    from fol.identification.pipeline import Identifier
    from fol.io.library import load_library
    import fol.qa.replay as replay_module
    from fol.qa.replay import LibrarySpec

    options = (("mixture", False), ("class_alarm", False)) if args.options == "single" else ()
    t = time.perf_counter()
    library = load_library(lib_path)
    print(f"parent: load_library {time.perf_counter() - t:.2f} s ({lib_path}, {lib_path.stat().st_size / 1e6:.0f} MB)")
    spec = LibrarySpec(str(lib_path), library.sha256, options=options)
    t = time.perf_counter()
    Identifier(library, **dict(options)).warm_caches()
    if hasattr(replay_module, "prepare_workers"):  # the library cache workers map (absent before issue 16)
        spec = replay_module.prepare_workers(spec, library)
    print(f"parent: warm_caches + prepare_workers {time.perf_counter() - t:.2f} s")
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for _ in range(args.repeat):
        with ctx.Pool(1) as pool:
            rows.append(pool.apply(_child, (dataclasses.asdict(spec), str(rec), time.time())))
    keys = [k for k in rows[0] if k not in ("modules", "library_mapped")]
    print(f"worker start-up, {args.options} pipeline, median of {args.repeat} spawned workers "
          f"(library mapped: {rows[0]['library_mapped']}):")
    for k in keys:
        vals = sorted(r[k] for r in rows)
        print(f"  {k:<28} {vals[len(vals) // 2]:6.3f} s   (min {vals[0]:.3f}, max {vals[-1]:.3f})")
    print(f"  modules loaded in the worker: {len(rows[0]['modules'])} of fol/scipy/sklearn/h5py/pybaselines; "
          f"scipy: {sum(m.startswith('scipy') for m in rows[0]['modules'])}, "
          f"sklearn: {sum(m.startswith('sklearn') for m in rows[0]['modules'])}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
