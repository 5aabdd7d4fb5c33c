"""Replay recordings through the pipeline at scale: streaming, parallel, resumable, in order.

The work is planned first (``plan``): every entry of every recording, in the order of
recording-format.md, cut into *tasks* of at most ``chunk_rows`` spectra (whole small
entries are grouped, stacks are cut into row ranges). A task names rows, it carries
no data: whoever runs it (``run_task``) opens the recording, reads those rows and
analyses them as batches. Tasks are dispatched in order to one of three executors,
and their outputs are consumed in the same order, so the JSON Lines output is the
same, byte for byte, whichever runs them:

* in-process (``workers=1``);
* ``workers=N``: a pool of N spawned processes; each loads the library once
  (``_init_process``) and limits BLAS to one thread, since the processes already
  fill the cores;
* ``dask``: a Dask cluster (``"local"`` starts a ``LocalCluster`` of ``workers``
  single-threaded processes); the recordings and the library must be readable at
  the same paths on every worker.

At most ``2 x workers`` tasks are in flight, so memory stays bounded whatever the
size of the input. Scores do not depend on how spectra are batched
(``fol.search.topk.top_k``), so neither does any result.

A corrupt file or entry never aborts the run: its spectra get error results (one per
row; one per entry or file when not even its structure can be read), a line on
stderr says what was skipped, and the run goes on. ``--resume`` continues from a
JSON Lines file an interrupted run left: its complete lines must be the first results
of this plan (checked line by line); a partial last line is cut off; the spectra it
already holds are not analysed again, only their ground truth and earlier results
are read back, so the summary covers the whole input.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fol.identification.decide import error_result
from fol.errors import FolError, LibraryError, ConfigError
from fol.qa.metrics import Metrics
from fol.io.recording import Recording
from fol.qa.regression import Regression

#: spectra per task by default: ~1 s of work for the single-substance pipeline (~2,500 spectra/s
#: per core) ...
CHUNK_ROWS = 2048
#: ... and ~2-3 s with mixture analysis (~100 spectra/s per core), so that a few thousand spectra
#: still make tasks for every worker, the progress bar moves and --resume has little to redo
CHUNK_ROWS_MIXTURE = 256
#: spectra of each kind kept (in input order) for the report's plots
KEEP_PER_KIND = 50
#: recordings a worker keeps open
OPEN_RECORDINGS = 4


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Part:
    """Rows ``[start, stop)`` of one entry, or an entry/file known to be unreadable (``error``)."""

    entry: str
    start: int
    stop: int
    error: str | None = None

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Task:
    """Consecutive parts of one recording; ``first`` is the position of its first spectrum in the run."""

    path: str
    parts: tuple[Part, ...]
    first: int
    #: the name results and messages give the file (the input the user named, when ``path`` is a
    #: recording converted from it); empty: ``path``
    source: str = ""

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    @property
    def name(self) -> str:
        return self.source or self.path


def input_problem(path: str) -> str | None:
    """Why ``path`` cannot be an input (one line naming it), or None; nothing is opened.
    A directory "is a directory"; a FIFO or device "is not a regular file" (it could block)."""
    from fol.cli.options import input_problem as problem

    return problem(path)


def open_problem(path: str) -> str | None:
    """Why the recording at ``path`` cannot be opened (one bounded line naming it), or None."""
    problem = input_problem(path)
    if problem:
        return problem
    try:
        Recording(path, skip_invalid=True).close()
    except (FolError, OSError, ValueError, RecursionError, RuntimeError) as e:
        return _line(e, path)
    return None


def plan(paths: Iterable[str], chunk_rows: int = CHUNK_ROWS,
         unreadable: list[tuple[str, str]] | None = None, names: dict[str, str] | None = None) -> list[Task]:
    """The tasks of a run, in output order.

    ``names`` maps a path to the name its results and messages give it (a recording converted
    from a spectrum file carries the spectrum file's name).

    A file that cannot be opened makes no task: it has no spectra. It is appended to
    ``unreadable`` as ``(path, message)`` when a list is given. An entry whose
    structure is invalid is one error part (row 0), placed before the file's readable
    entries.
    """
    if chunk_rows < 1:
        raise ConfigError("the chunk size must be at least 1")
    tasks: list[Task] = []
    first = 0
    names = names or {}
    for path in map(str, paths):
        source = names.get(path, "")
        shown = source or path
        problem = input_problem(path)
        try:
            if problem:
                raise FolError(problem)
            rec = Recording(path, skip_invalid=True)
        except (FolError, OSError, ValueError, RecursionError, RuntimeError) as e:
            if unreadable is not None:
                unreadable.append((shown, _line(e, path).replace(path, shown)))
            continue
        else:
            with rec:
                parts = [Part(name, 0, 1, _line(msg, path).replace(path, shown)) for name, msg in rec.skipped]
                parts += [Part(e.name, a, min(a + chunk_rows, e.n_rows))
                          for e in rec.entries for a in range(0, e.n_rows, chunk_rows)]
        group: list[Part] = []
        for part in parts:
            if group and sum(map(len, group)) + len(part) > chunk_rows:
                tasks.append(Task(path, tuple(group), first, source))
                first += len(tasks[-1])
                group = []
            group.append(part)
        if group:
            tasks.append(Task(path, tuple(group), first, source))
            first += len(tasks[-1])
    return tasks


# ----------------------------------------------------------------------------- running a task (any process)


@dataclass(frozen=True)
class LibrarySpec:
    """How a worker loads the library: path, the hash it must have, identifier options.

    ``options`` are further ``Identifier`` keyword arguments as ``((name, value), ...)``
    (hashable, so a worker can tell whether its cached Identifier fits).
    """

    path: str
    sha256: str
    allow_unverified: bool = False
    similarity: str = "pearson"
    top: int = 10
    options: tuple = ()
    #: map the library from its cache (``fol.io.library.map_library``; the parent checked the hash
    #: and wrote the cache, ``prepare_workers``) instead of loading and hashing the file again
    mapped: bool = False


@dataclass
class TaskOutput:
    """Per spectrum of a task: result (None when not analysed), ground truth, earlier result; and messages."""

    results: list = field(default_factory=list)
    expected: list = field(default_factory=list)
    previous: list = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


_lock = threading.Lock()
_state: dict = {"spec": None, "identifier": None}
_recordings: OrderedDict[str, Recording] = OrderedDict()


def _identifier(spec: LibrarySpec):
    """This process's Identifier for ``spec``, loaded once (and checked against the run's library hash)."""
    with _lock:
        if _state["spec"] != spec:
            from fol.io.library import load_library, map_library
            from fol.identification.pipeline import Identifier

            if spec.mapped:
                library = map_library(spec.path, spec.sha256, allow_unverified=spec.allow_unverified)
            else:
                library = load_library(spec.path, allow_unverified=spec.allow_unverified)
            if library.sha256 != spec.sha256:
                raise LibraryError(f"{spec.path}: library content {library.sha256[:12]} differs from the "
                                   f"{spec.sha256[:12]} this run started with (changed, or another file at that path)")
            _state.update(spec=spec, identifier=Identifier(library, similarity=spec.similarity, top=spec.top, **dict(spec.options)))
        return _state["identifier"]


def prepare_workers(spec: LibrarySpec, library) -> LibrarySpec:
    """The spec worker processes get: the library, loaded and checked here once, written to its
    mapped cache (``fol.io.library.write_library_cache``) so that each worker maps it instead of
    decompressing and hashing the file. Unchanged when no cache can be written (an unverified
    library, a read-only cache directory): the workers then load the file as before."""
    from dataclasses import replace

    from fol.io.library import write_library_cache

    if library is None or library.sha256 != spec.sha256 or write_library_cache(library) is None:
        return spec
    return replace(spec, mapped=True)


def use_identifier(spec: LibrarySpec, identifier) -> None:
    """Make this process use an Identifier already loaded for ``spec`` (the in-process executor)."""
    with _lock:
        _state.update(spec=spec, identifier=identifier)


def _recording(path: str) -> Recording:
    """An open recording, kept for the next tasks of the same file (a few files at a time)."""
    with _lock:
        rec = _recordings.pop(path, None) or Recording(path, skip_invalid=True)
        _recordings[path] = rec
        while len(_recordings) > OPEN_RECORDINGS:
            _recordings.popitem(last=False)[1].close()
        return rec


def _limit_threads() -> None:
    """One BLAS thread per worker process: the processes already occupy the cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _init_process(spec: LibrarySpec) -> None:
    """Worker start-up: one BLAS thread, the library loaded once. A library that fails to
    load is left for the first task to report (a failing initializer only says the pool broke)."""
    _limit_threads()
    try:
        _identifier(spec)
    except FolError:
        pass


#: what reading rows can raise on bad data (RecursionError: JSON nested thousands deep)
READ_ERRORS = (FolError, OSError, ValueError, TypeError, KeyError, RecursionError, RuntimeError)


def _line(message, path: str | None = None) -> str:
    """One bounded line (``fol.cli.display.one_line``), naming ``path`` if it does not already."""
    from fol.cli.display import one_line

    if isinstance(message, RecursionError):
        message = "ground truth or result JSON nested too deeply"
    text = one_line(message)
    return text if path is None or path in text else one_line(f"{path}: {text}")


_ROW_SKIPPED = re.compile(r"^(?P<base>.*) \(row (?P<row>\d+) of entry (?P<entry>'.*') skipped\)$")


def _merge_row_messages(messages: list[str]) -> list[str]:
    """Consecutive rows skipped for the same reason make one message (``rows 4-2047 ...``): a damaged
    chunk of a big stack says so once, not once per row."""
    out: list[str] = []
    run = None  # (base, entry, first, last)

    def flush():
        if run:
            base, entry, a, b = run
            rows = f"row {a}" if a == b else f"rows {a}-{b}"
            out.append(f"{base} ({rows} of entry {entry} skipped)")

    for text in messages:
        m = _ROW_SKIPPED.match(text)
        if m and run and (m["base"], m["entry"]) == run[:2] and int(m["row"]) == run[3] + 1:
            run = (run[0], run[1], run[2], int(m["row"]))
            continue
        flush()
        run = (m["base"], m["entry"], int(m["row"]), int(m["row"])) if m else None
        if not m:
            out.append(text)
    flush()
    return out


def run_task(spec: LibrarySpec, task: Task, analyse: bool = True) -> TaskOutput:
    """Read and (if ``analyse``) analyse the spectra of a task; never raises for bad data.

    A part that cannot be read or analysed yields error results for its rows and a
    message. Only a library that cannot be loaded raises (nothing could be analysed).
    """
    identifier = _identifier(spec) if analyse else None
    out = TaskOutput()

    def failed(part: Part, message: str, technique: str = "") -> None:
        for i in range(part.start, part.stop):
            out.results.append(error_result(message, source=task.name, entry=part.entry, index=i,
                                            technique=technique, library_ref=identifier.library_ref)
                               if analyse else None)
        out.expected.extend([None] * len(part))
        out.previous.extend([None] * len(part))

    for part in task.parts:
        if part.error:
            failed(part, part.error)
            out.messages.append(f"{part.error} (skipped)")
            continue
        try:
            chunk = _recording(task.path).read(part.entry, part.start, part.stop)
        except READ_ERRORS as e:
            if len(part) == 1:
                message = re.sub(r"(sample/expected|results/result) row 0:", r"\1:",
                                 _line(e, task.path).replace(task.path, task.name))
                failed(part, message)
                out.messages.append(f"{message} (row {part.start} of entry {part.entry!r} skipped)")
                continue
            # one bad row (malformed ground truth, a damaged chunk) must not cost its neighbours:
            # read the part row by row, so that only the rows that cannot be read are skipped
            rows = tuple(Part(part.entry, i, i + 1) for i in range(part.start, part.stop))
            sub = run_task(spec, Task(task.path, rows, task.first, task.source), analyse)
            out.results.extend(sub.results)
            out.expected.extend(sub.expected)
            out.previous.extend(sub.previous)
            out.messages.extend(_merge_row_messages(sub.messages))
            continue
        n = len(part)
        if analyse:
            try:
                out.results.extend(identifier.analyse(chunk.batch, source=task.name, entry=part.entry,
                                                      start_index=part.start))
            except Exception as e:  # a bug or unforeseen data must not end a run over millions of spectra
                message = _line(f"{task.name}, entry {part.entry!r}: analysis failed ({type(e).__name__}: {e})")
                out.results.extend(error_result(message, source=task.name, entry=part.entry, index=i,
                                                technique=chunk.batch.technique, library_ref=identifier.library_ref)
                                   for i in range(part.start, part.stop))
                out.messages.append(message)
        else:
            out.results.extend([None] * n)
        out.expected.extend(chunk.expected or [None] * n)
        out.previous.extend(chunk.results or [None] * n)
    return out


# ----------------------------------------------------------------------------- executors


def _in_order(submit: Callable, tasks: Iterable[Task], window: int) -> Iterator[tuple[Task, TaskOutput]]:
    """Submit tasks keeping at most ``window`` in flight; yield outputs in task order."""
    pending: deque = deque()
    for task in tasks:
        pending.append((task, submit(task)))
        if len(pending) >= window:
            t, fut = pending.popleft()
            yield t, fut.result()
    while pending:
        t, fut = pending.popleft()
        yield t, fut.result()


_WORKER_DIED = ("a worker process died (out of memory, or killed); the results written so far are complete: "
                "run the same command with --resume to continue")


class _Done:
    """A completed 'future' for the in-process executor."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def execute(tasks: list[Task], spec: LibrarySpec, *, workers: int = 1,
            dask: str | None = None) -> Iterator[tuple[Task, TaskOutput]]:
    """Run tasks in-process, on ``workers`` processes, or on Dask; outputs in task order."""
    if dask:
        yield from _execute_dask(tasks, spec, dask, workers)
    elif workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from concurrent.futures.process import BrokenProcessPool

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_process, initargs=(spec,))
        try:
            yield from _in_order(lambda t: pool.submit(run_task, spec, t), tasks, 2 * workers)
        except BrokenProcessPool:
            raise FolError(_WORKER_DIED) from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        yield from _in_order(lambda t: _Done(run_task(spec, t)), tasks, 1)


def _execute_dask(tasks: list[Task], spec: LibrarySpec, address: str, workers: int):
    import logging

    from dask.distributed import Client, LocalCluster

    if address == "local":
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        client.run(_limit_threads)
    else:
        cluster, client = None, Client(address)
    try:
        from distributed.scheduler import KilledWorker

        n = max(1, len(client.scheduler_info().get("workers", {})))
        yield from _in_order(lambda t: client.submit(run_task, spec, t, pure=False), tasks, 2 * n)
    except KilledWorker:
        raise FolError(_WORKER_DIED) from None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ----------------------------------------------------------------------------- summary


#: ground-truth problem categories named in the summary, in order
CATEGORIES = ("missed alarm", "false alarm", "components differ")
#: spectra named per category in the summary unless --show-all
SHOW = 10
#: the report's examples: at most this many per (file, verdict, substance), sampled uniformly over the
#: file (reservoir sampling, seeded by the key: the same choice on every run), and this many keys, per kind
PER_KEY = 8
MAX_KEYS = 200


def where(result: dict) -> str:
    return f"{result.get('source')}#{result.get('entry')}[{result.get('index')}]"


def _truth_text(expected: dict) -> str:
    if not expected:
        return "blank"
    return ", ".join(f"{n}:{f:g}" if isinstance(f, (int, float)) else n for n, f in expected.items())


def _reported_text(result: dict) -> str:
    comps = result.get("components") or []
    if not comps:
        return result.get("verdict") or "-"
    return ", ".join(c["name"] for c in comps)


class _Reservoir:
    """A uniform sample of at most ``size`` of the items offered (Algorithm R), in offer order;
    the generator is seeded from ``key``, so a run makes the same choice every time."""

    def __init__(self, size: int, key: tuple):
        import random
        import zlib

        self.size, self.seen = size, 0
        self.rng = random.Random(zlib.crc32(json.dumps(key).encode()))
        self.kept: list[tuple[int, dict]] = []

    def add(self, item: dict) -> None:
        if len(self.kept) < self.size:
            self.kept.append((self.seen, item))
        else:
            j = self.rng.randrange(self.seen + 1)
            if j < self.size:
                self.kept[j] = (self.seen, item)
        self.seen += 1

    def items(self) -> list[dict]:
        return [item for _, item in sorted(self.kept, key=lambda x: x[0])]


class Summary:
    """Counts, QA metrics, regression diff, per-file breakdown, the spectra that disagree with
    the ground truth (named), and examples worth a plot, over a whole run."""

    KINDS = ("problem", "changed", "alarm")
    FILE_COLUMNS = ("spectra", "errors", "alarms", "labelled", "missed alarm", "false alarm",
                    "components differ", "changed")

    def __init__(self, catalogue, library_ref: dict, keep: int = KEEP_PER_KIND):
        self.library_ref = library_ref
        self.n = 0
        self.verdicts: Counter = Counter()
        self.alarms = 0
        self.cautions = 0
        self.errors = 0
        self.metrics = Metrics(catalogue)
        self.regression = Regression()
        self.keep = keep
        #: input files that could not be read at all: (path, message); they have no spectra
        self.unreadable: list[tuple[str, str]] = []
        #: per input file: counts of FILE_COLUMNS
        self.files: OrderedDict[str, Counter] = OrderedDict()
        #: per category: spectra counted; every one is spooled (for --show-all), the first SHOW kept
        self.named_total: Counter = Counter()
        self._named: dict[str, list[str]] = {c: [] for c in CATEGORIES}
        self._spool = tempfile.TemporaryFile("w+", encoding="utf-8")
        #: per kind: {key: [items]}, key = (file, verdict, substance); see ``examples``
        self._candidates: dict[str, OrderedDict] = {k: OrderedDict() for k in self.KINDS}
        self.flagged_total: Counter = Counter()
        self.resumed = 0
        self.elapsed = 0.0

    def add(self, result: dict, expected: dict | None, previous: dict | None) -> None:
        self.n += 1
        source = str(result.get("source"))
        row = self.files.setdefault(source, Counter())
        row["spectra"] += 1
        self.verdicts[result["verdict"]] += 1
        self.alarms += bool(result["alarm"])
        row["alarms"] += bool(result["alarm"])
        self.cautions += bool(result.get("possible_alarm_classes")) and not result["alarm"]
        self.errors += "error" in result
        row["errors"] += "error" in result
        row["labelled"] += expected is not None
        problems = self.metrics.add(result, expected)
        change = self.regression.add(previous, result)
        row["changed"] += change is not None
        if "error" in result:
            return
        categories = [c for c in CATEGORIES[:2] if c in problems]
        if any(":" in p for p in problems):
            categories.append("components differ")
        if categories:
            line = (f"{where(result)}: expected {_truth_text(expected)}; reported {_reported_text(result)}"
                    + (f" ({'; '.join(problems)})" if problems else ""))
            for c in categories:
                row[c] += 1
                self.named_total[c] += 1
                if len(self._named[c]) < SHOW:
                    self._named[c].append(line)
                self._spool.write(json.dumps([c, line]) + "\n")
        reasons = problems + [r for r in (change and "changed: " + ", ".join(change["changed"]),
                                          "alarm" if result["alarm"] else None,
                                          "caution" if result.get("possible_alarm_classes") else None) if r]
        kind = "problem" if problems else "changed" if change else "alarm" if reasons else None
        if kind:
            self.flagged_total[kind] += 1
            top = (result.get("components") or [{}])[0].get("name") or _truth_text(expected or {})
            key = (source, result["verdict"], top)
            pool = self._candidates[kind]
            slot = pool.get(key)
            if slot is None and len(pool) < MAX_KEYS:
                slot = pool[key] = _Reservoir(PER_KEY, key)
            if slot is not None:
                slot.add({"result": result, "expected": expected, "previous": previous, "reasons": reasons})

    def examples(self, kind: str, n: int | None = None) -> list[dict]:
        """Up to ``n`` (default ``keep``) flagged spectra of ``kind`` chosen across files, then across
        verdicts and substances within a file (round robin), rather than the first ones."""
        n = self.keep if n is None else n
        by_file: OrderedDict[str, list[list[dict]]] = OrderedDict()
        for (source, _, _), slot in self._candidates[kind].items():
            by_file.setdefault(source, []).append(slot.items())
        per_file = []
        for groups in by_file.values():  # round robin over the keys of a file
            per_file.append([g[i] for i in range(PER_KEY) for g in groups if i < len(g)])
        chosen = [f[i] for i in range(max(map(len, per_file), default=0)) for f in per_file if i < len(f)]
        return chosen[:n]

    @property
    def flagged(self) -> dict[str, list[dict]]:
        """The examples of every kind (``examples``)."""
        return {k: self.examples(k) for k in self.KINDS}

    def named(self, category: str, limit: int | None = SHOW) -> list[str]:
        """The spectra of a ground-truth ``category`` in input order: the first ``limit`` (all: None)."""
        if limit is not None and limit <= SHOW:
            return self._named[category][:limit]
        self._spool.flush()
        self._spool.seek(0)
        out = []
        for text in self._spool:
            c, line = json.loads(text)
            if c == category:
                out.append(line)
                if limit is not None and len(out) == limit:
                    break
        self._spool.seek(0, 2)
        return out

    def close(self) -> None:
        self._spool.close()
        self.regression.close()

    def file_lines(self) -> list[str]:
        """The per-file breakdown as an aligned table (unreadable files included)."""
        names = list(self.files) + [p for p, _ in self.unreadable if p not in self.files]
        width = max([len("file")] + [len(n) for n in names])
        cols = [c for c in self.FILE_COLUMNS if c in ("spectra", "errors", "alarms")
                or any(r[c] for r in self.files.values())]
        out = [f"{'file':<{width}} " + " ".join(f"{c:>{max(6, len(c))}}" for c in cols)]
        for name, row in self.files.items():
            out.append(f"{name:<{width}} " + " ".join(f"{row[c]:>{max(6, len(c))}}" for c in cols))
        for path, message in self.unreadable:
            out.append(f"{path:<{width}} unreadable: {message.removeprefix(path + ': ')}")
        return out

    def lines(self, show: int | None = SHOW) -> list[str]:
        """The text summary; ``show`` spectra named per list (None: all of them)."""
        out = [f"spectra: {self.n}" + "".join(f"  {k}: {v}" for k, v in sorted(self.verdicts.items())),
               f"alarms: {self.alarms}  cautions (alarm class not ruled out): {self.cautions}  "
               f"errors (spectra not read or not analysed): {self.errors}"]
        if self.unreadable:
            out.append(f"unreadable files (no spectra read): {len(self.unreadable)}")
            out += [f"  {message}" for _, message in self.unreadable]
        if len(self.files) + len(self.unreadable) > 1:
            out.append("per file:")
            out += ["  " + line for line in self.file_lines()]
        out += self.metrics.lines()
        titles = {"missed alarm": "missed alarms", "false alarm": "false alarms",
                  "components differ": "spectra whose components differ from the ground truth"}
        for c in CATEGORIES:
            total = self.named_total[c]
            if not total:
                continue
            out.append(f"{titles[c]}: {total}")
            named = self.named(c, show)
            out += [f"  {line}" for line in named]
            if len(named) < total:
                out.append(f"  ... and {total - len(named)} more (--show-all lists every one)")
        out += self.regression.lines(show)
        done = self.n - self.resumed
        if done and self.elapsed > 0:
            out.append(f"analysed {done} spectra in {self.elapsed:.1f} s ({done / self.elapsed:,.0f}/s)"
                       + (f"; {self.resumed} taken from the resumed output" if self.resumed else ""))
        elif self.resumed:
            out.append(f"nothing left to analyse: all {self.resumed} results were in the resumed output")
        return out


# ----------------------------------------------------------------------------- resume


def prepare_resume(path: str | Path) -> int:
    """Cut a partial last line off an interrupted JSON Lines output; return its complete lines.

    A complete line that is not a JSON object means the file is not a replay output:
    refused rather than overwritten.
    """
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        data_end = f.seek(0, os.SEEK_END)
        keep = 0
        if data_end:
            # find the end of the last complete line without reading the whole file
            pos, tail = data_end, b""
            while pos > 0 and b"\n" not in tail:
                step = min(pos, 1 << 16)
                pos -= step
                f.seek(pos)
                tail = f.read(step) + tail
            keep = pos + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        if keep < data_end:
            f.truncate(keep)
    count = 0
    with open(path, encoding="utf-8") as f:
        for count, line in enumerate(f, 1):
            try:
                ok = isinstance(json.loads(line), dict)
            except json.JSONDecodeError:
                ok = False
            if not ok:
                raise ConfigError(f"{path}, line {count}: not a result object; cannot resume from this file")
    return count


def _check_resumed(line_no: int, old: dict, task: Task, row: int, path) -> None:
    """The resumed line must be the result of the spectrum this run puts there."""
    where = _row_identity(task, row)
    got = (old.get("source"), old.get("entry"), old.get("index"))
    if got != where:
        raise ConfigError(f"{path}, line {line_no}: holds {got[0]}#{got[1]}[{got[2]}] but this run puts "
                         f"{where[0]}#{where[1]}[{where[2]}] there: resume with the same inputs, "
                         "or start a new output")


def _row_identity(task: Task, row: int) -> tuple[str, str, int]:
    for part in task.parts:
        if row < len(part):
            return task.name, part.entry, part.start + row
        row -= len(part)
    raise IndexError(row)


# ----------------------------------------------------------------------------- the run


def default_chunk(identifier) -> int:
    """Spectra per task when none is given: fewer when every spectrum gets mixture analysis."""
    return CHUNK_ROWS_MIXTURE if getattr(identifier, "mixture", False) else CHUNK_ROWS


def replay(paths: Iterable[str], identifier, spec: LibrarySpec, write: Callable[[str], None], *,
           workers: int = 1, dask: str | None = None, chunk_rows: int | None = None,
           resume_lines: Iterator[str] | None = None, resume_count: int = 0,
           catalogue=None, progress: Callable[[int, int], None] | None = None, flush: Callable[[], None] | None = None,
           refused: Iterable[tuple[str, str]] = (), names: dict[str, str] | None = None,
           keep_going: bool = True, message: Callable[[str], None] | None = None) -> Summary:
    """Replay recordings; ``write`` gets one JSON line per spectrum, in input order.

    ``identifier`` (loaded from ``spec``) serves the in-process executor and gives the
    library reference. With ``resume_count`` > 0, ``resume_lines`` yields the lines an
    earlier run wrote for the first ``resume_count`` spectra; they are checked, counted
    and not written again. ``flush`` is called after each task's lines are written.

    ``refused``: ``(path, message)`` of inputs the caller already found unreadable (e.g. spectrum
    files it could not convert); they are reported like the others. Input files that cannot be read
    have no spectra: they are listed in
    ``Summary.unreadable``; with ``keep_going=False`` they stop the run before any work
    (``FolError`` naming each). ``message`` gets each "skipped" line (default: the ``fol.qa`` logger; the CLI prints them).
    A result line carries the ground truth as ``expected`` when the recording has it.
    ``names``: the name a path's results and messages give it (``plan``), e.g. the spectrum file a
    recording in ``paths`` was converted from.
    """
    from fol.catalogue import load_catalogue

    summary = Summary(catalogue or load_catalogue(), identifier.library_ref)
    use_identifier(spec, identifier)
    summary.unreadable.extend(refused)
    tasks = plan(paths, chunk_rows or default_chunk(identifier), unreadable=summary.unreadable, names=names)
    say = message or logging.getLogger("fol.qa").error
    if summary.unreadable and not keep_going:
        summary.close()
        for _, text in summary.unreadable:
            say(text)
        raise FolError(f"{len(summary.unreadable)} input file(s) cannot be read (listed above): nothing analysed; "
                       "--keep-going replays the others")
    total = sum(map(len, tasks))
    if resume_count > total:
        raise ConfigError(f"the output already holds {resume_count} results but the inputs have {total} spectra")
    summary.resumed = resume_count
    done = resume_count
    if progress:
        progress(min(done, total), total)
    t0 = time.monotonic()
    line_no = 0
    done_tasks = [t for t in tasks if t.first + len(t) <= resume_count]
    todo = tasks[len(done_tasks):]
    worker_spec = spec
    if todo and (workers > 1 or dask):
        identifier.warm_caches()  # class model and search index made once here, not once per worker
        worker_spec = prepare_workers(spec, getattr(identifier, "library", None))
    try:
        # spectra already in the output: ground truth and earlier results only
        for task in done_tasks:
            out = run_task(spec, task, analyse=False)
            for row, (expected, previous) in enumerate(zip(out.expected, out.previous)):
                line_no += 1
                old = json.loads(next(resume_lines))
                _check_resumed(line_no, old, task, row, getattr(resume_lines, "name", "output"))
                summary.add(old, expected, previous)
        for task, out in execute(todo, worker_spec, workers=workers, dask=dask):
            for text in out.messages:
                say(text)
            lines = []
            for row, (result, expected, previous) in enumerate(zip(out.results, out.expected, out.previous)):
                if task.first + row < resume_count:  # the task straddles the resume point
                    line_no += 1
                    old = json.loads(next(resume_lines))
                    _check_resumed(line_no, old, task, row, getattr(resume_lines, "name", "output"))
                    summary.add(old, expected, previous)
                    continue
                if expected is not None:  # the ground truth travels with the result (docs/replay.md)
                    result = {**result, "expected": expected}
                lines.append(json.dumps(result) + "\n")
                summary.add(result, expected, previous)
            write("".join(lines))
            if flush:
                flush()
            if progress:
                done += len(task) - max(0, min(len(task), resume_count - task.first))
                progress(min(done, total), total)
    finally:
        summary.elapsed = time.monotonic() - t0
    return summary
