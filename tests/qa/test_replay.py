"""``fol replay`` at scale: order, identical output for every executor, resume, corrupt input,
QA metrics and the regression diff, progress, bounded memory."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from builders import bands
from fol.catalogue import load_catalogue
from fol.cli import main
from fol.io.library import make_section, write_library
from fol.preprocess.recipe import default_grid, default_recipe
from fol.io.recording import RecordingWriter
from fol.cli.display import progress
from fol.qa.replay import plan, prepare_resume
from fol.spectrum import Spectrum

NAMES = ["fentanyl", "carfentanil", "xylazine", "heroin", "cocaine", "ketamine", "mannitol", "lactose", "caffeine",
         "lidocaine", "procaine", "sucrose"]
AXIS = np.linspace(150.0, 2100.0, 1024)


class ReplayData:
    """A 12-substance Raman library and recordings measured from it (mixtures, blanks, ground truth)."""

    def __init__(self, root: Path, n_stack: int = 60, seed: int = 5):
        self.root = root
        rng = np.random.default_rng(seed)
        cat = load_catalogue()
        self.bands = {n: (rng.uniform(300, 1900, 7), rng.uniform(0.2, 1, 7), rng.uniform(6, 14, 7)) for n in NAMES}
        grid = default_grid("raman")
        raw = np.stack([bands(grid, *self.bands[n]) + 0.1 for n in NAMES])
        section = make_section("raman", grid, raw, NAMES, [cat[n].cls for n in NAMES], [cat[n].alarm for n in NAMES],
                               ["measured"] * len(NAMES), ["synthetic"] * len(NAMES), default_recipe("raman"))
        self.library = root / "lib.h5"
        self.sha = write_library(self.library, {"raman": section}, name="test-lib")
        self.rng = rng
        rows, self.expected = [], []
        for i in range(n_stack):
            kind = i % 10
            if kind < 7:
                truth = {NAMES[i % len(NAMES)]: 1.0}
            elif kind < 9:
                a, b = rng.choice(NAMES, 2, replace=False)
                truth = {str(a): 0.7, str(b): 0.3}
            else:
                truth = {}
            rows.append(self.measure(truth))
            self.expected.append(truth)
        self.stack = root / "stack.h5"
        with RecordingWriter(self.stack, "w") as w:
            app = w.create_stack("batch", AXIS, "raman", "counts", start_time="2026-03-01T10:00:00Z", chunk_rows=16)
            half = n_stack // 2
            app.append(np.array(rows[:half]), self.expected[:half])
            app.append(np.array(rows[half:]), self.expected[half:])
            for j, name in enumerate(("xylazine", "mannitol")):
                w.add_spectrum(Spectrum(AXIS, self.measure({name: 1.0}), "raman"), name=f"single_{j}",
                               start_time=f"2026-03-01T11:00:0{j}Z", expected={name: 1.0})
        self.n = n_stack + 2

    def measure(self, truth: dict) -> np.ndarray:
        y = 40 + 0.01 * AXIS + sum(f * 200 * bands(AXIS, *self.bands[n]) for n, f in truth.items())
        return y + self.rng.normal(0, 0.5, AXIS.size)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> ReplayData:
    return ReplayData(tmp_path_factory.mktemp("replay"))


def replay_cli(data, *args, out=None, capsys=None):
    """Run ``fol replay`` in this process; returns (exit code, stdout, lines of the JSONL output)."""
    argv = ["replay", *map(str, args), "--library", str(data.library)]
    if out is not None:
        argv += ["--json", str(out)]
    code = main(argv)
    text = capsys.readouterr() if capsys else None
    return code, text, (out.read_bytes() if out is not None else None)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> bytes:
    """The single-process output: every other executor must write exactly these bytes."""
    out = tmp_path_factory.mktemp("ref") / "ref.jsonl"
    assert main(["replay", str(data.stack), "--library", str(data.library), "--json", str(out), "--chunk", "16"]) == 0
    return out.read_bytes()


def test_one_result_per_spectrum_in_input_order_with_metrics(data, reference, tmp_path, capsys):
    code, text, raw = replay_cli(data, data.stack, "--chunk", "16", out=tmp_path / "o.jsonl", capsys=capsys)
    assert code == 0 and raw == reference
    results = [json.loads(line) for line in raw.decode().splitlines()]
    assert len(results) == data.n
    where = [(r["entry"], r["index"]) for r in results]
    assert where == [("batch", i) for i in range(data.n - 2)] + [("single_0", 0), ("single_1", 0)]
    assert all(r["library"]["sha256"] == data.sha for r in results)
    # single-substance rows are identified as what was measured; fentanyl rows raise the alarm
    for r, truth in zip(results, data.expected):
        if len(truth) == 1:
            assert r["components"][0]["name"] == next(iter(truth))
    assert results[0]["alarm"] and results[0]["alarm_classes"] == ["fentanyl-analogue"]
    out = text.out
    assert f"spectra: {data.n}" in out
    assert "alarm sensitivity: 100.0% (" in out and "95% CI" in out
    assert "alarm specificity:" in out and "confusion matrix per substance" in out
    assert "confusion matrix per class" in out and "top-1 accuracy on single-substance samples: 100.0%" in out
    # one-vs-rest per class over every labelled sample, the mixtures included
    table = out[out.index("per class, all labelled samples"):].splitlines()[1:]
    assert table[0].split() == ["class", "TP", "FN", "FP", "recall", "precision"]
    counts = {line.split()[0]: [int(v) for v in line.split()[1:4]] for line in table[1:] if line.startswith("  ")}
    cat = load_catalogue()
    fentanyl_rows = sum(1 for t in data.expected if any(cat[n].cls == "fentanyl-analogue" for n in t))
    assert counts["fentanyl-analogue"][0] + counts["fentanyl-analogue"][1] == fentanyl_rows > 0


def test_chunking_and_workers_do_not_change_a_byte(data, reference, tmp_path):
    for i, args in enumerate((["--chunk", "7"], ["--chunk", "2048"], [], ["--workers", "2", "--chunk", "16"])):
        out = tmp_path / f"o{i}.jsonl"
        assert main(["replay", str(data.stack), "--library", str(data.library), "--json", str(out), *args]) == 0
        assert out.read_bytes() == reference, args


def test_default_task_size_follows_the_pipeline(data):
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier
    from fol.qa.replay import CHUNK_ROWS, CHUNK_ROWS_MIXTURE, default_chunk

    library = load_library(data.library)
    assert default_chunk(Identifier(library)) == CHUNK_ROWS_MIXTURE < CHUNK_ROWS
    assert default_chunk(Identifier(library, mixture=False, class_alarm=False)) == CHUNK_ROWS
    tasks = plan([str(data.stack)] * 10, CHUNK_ROWS_MIXTURE)
    assert max(map(len, tasks)) <= CHUNK_ROWS_MIXTURE and sum(map(len, tasks)) == 10 * data.n


def test_dask_local_cluster_writes_the_same_bytes(data, reference, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "dask.jsonl"
    assert main(["replay", str(data.stack), "--library", str(data.library), "--json", str(out),
                 "--dask", "local", "--workers", "2", "--chunk", "16"]) == 0
    assert out.read_bytes() == reference


def test_resume_after_a_partial_last_line(data, reference, tmp_path, capsys):
    out = tmp_path / "partial.jsonl"
    cut = reference.index(b"\n", len(reference) // 3) + 40  # 40 bytes into a line
    out.write_bytes(reference[:cut])
    complete = reference[:cut].count(b"\n")
    code, text, raw = replay_cli(data, data.stack, "--resume", "--chunk", "16", out=out, capsys=capsys)
    assert code == 0 and raw == reference
    assert f"{complete} taken from the resumed output" in text.out
    assert f"spectra: {data.n}" in text.out  # the summary covers the resumed part too
    code, text, raw = replay_cli(data, data.stack, "--resume", out=out, capsys=capsys)  # nothing left to do
    assert code == 0 and raw == reference and "nothing left to analyse" in text.out


def test_resume_refuses_output_of_other_inputs(data, reference, tmp_path, capsys):
    out = tmp_path / "other.jsonl"
    lines = reference.splitlines(keepends=True)
    out.write_bytes(lines[1] + lines[0])
    code, text, raw = replay_cli(data, data.stack, "--resume", out=out, capsys=capsys)
    assert code == 2 and "line 1" in text.err and "batch[1]" in text.err
    assert raw == lines[1] + lines[0]  # left as it was
    out.write_bytes(b"not json\n")
    assert main(["replay", str(data.stack), "--library", str(data.library), "--json", str(out), "--resume"]) == 2


def test_prepare_resume_cuts_only_the_partial_line(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    assert prepare_resume(f) == 2 and f.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    f.write_bytes(b'{"c": 3')
    assert prepare_resume(f) == 0 and f.read_bytes() == b""
    assert prepare_resume(tmp_path / "absent.jsonl") == 0


def test_resume_after_the_process_is_killed(data, reference, tmp_path):
    out = tmp_path / "killed.jsonl"
    cmd = [sys.executable, "-m", "fol", "replay", str(data.stack), "--library", str(data.library),
           "--json", str(out), "--chunk", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out.exists()
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == reference


def _corrupt_copy(data, tmp_path, rows: dict[int, str], results: dict[int, str] | None = None) -> Path:
    """A copy of the stack with an invalid entry and the given ``sample/expected`` (and ``results/result``) rows."""
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data.stack.read_bytes())
    with h5py.File(bad, "a") as f:
        g = f.create_group("broken")  # an entry without intensity units: structurally invalid
        g.attrs.update(NX_class="NXentry", start_time="2020-01-01T00:00:00Z")
        g.create_group("instrument").attrs["technique"] = "raman"
        d = g.create_group("data")
        d.create_dataset("wavenumber", data=AXIS)
        d.create_dataset("intensity", data=np.ones(AXIS.size))
        for i, text in rows.items():
            f["batch/sample/expected"][i] = text
        if results:
            res = f["batch"].create_group("results")
            res.create_dataset("result", data=[results.get(i, "") for i in range(data.n - 2)],
                               dtype=h5py.string_dtype())
    return bad


def test_corrupt_entries_and_rows_are_reported_and_only_they_skipped(data, tmp_path, capsys):
    bad = _corrupt_copy(data, tmp_path, {5: "{not json"})
    code, text, raw = replay_cli(data, bad, data.stack, "--chunk", "4", "--keep-going", out=tmp_path / "o.jsonl",
                                 capsys=capsys)
    assert code == 0  # --keep-going
    results = [json.loads(line) for line in raw.decode().splitlines()]
    assert len(results) == 1 + data.n + data.n  # broken entry, bad.h5's spectra, stack
    assert results[0]["entry"] == "broken" and "units" in results[0]["error"]
    skipped = [r for r in results[1:1 + data.n] if "error" in r]
    # only the malformed row, not the 4 rows of its task (item 14.18)
    assert [r["index"] for r in skipped] == [5] and "malformed JSON" in skipped[0]["error"]
    assert all("error" not in r for r in results[1 + data.n:])
    assert "'broken'" in text.err and "row 5 of entry 'batch' skipped" in text.err
    assert "errors (spectra not read or not analysed): 2" in text.out
    # without --keep-going the same run ends with exit code 1, saying why
    code, text, raw2 = replay_cli(data, bad, "--chunk", "4", out=tmp_path / "o2.jsonl", capsys=capsys)
    assert code == 1 and raw2 == raw[:len(raw2)] and "could not be read or analysed" in text.err


@pytest.mark.parametrize("where", ["expected", "result"])
def test_deeply_nested_or_huge_rows_skip_one_row_in_one_bounded_line(data, tmp_path, capsys, where):
    """RecursionError on deeply nested JSON, and megabytes of malformed JSON, cost one row and
    print one short line (item 14.18): before, a traceback, or the whole task skipped."""
    deep = "[" * 200_000 + "]" * 200_000
    huge = '{"' + "x" * 3_000_000
    if where == "expected":
        bad = _corrupt_copy(data, tmp_path, {3: '{"a": ' + deep + "}", 9: huge})
    else:
        bad = _corrupt_copy(data, tmp_path, {}, results={3: '{"a": ' + deep + "}", 9: huge})
    code, text, raw = replay_cli(data, bad, "--chunk", "8", "--keep-going", out=tmp_path / "o.jsonl", capsys=capsys)
    assert code == 0 and "Traceback" not in text.err
    results = [json.loads(line) for line in raw.decode().splitlines()]
    assert [r["index"] for r in results if "error" in r and r["entry"] == "batch"] == [3, 9]
    assert len(results) == 1 + data.n
    for line in text.err.splitlines():
        assert len(line) < 600, line[:200]
    assert "row 3 of entry 'batch' skipped" in text.err and "row 9 of entry 'batch' skipped" in text.err
    assert all(len(r.get("error", "")) < 600 for r in results)


def test_unreadable_inputs_are_files_not_spectra(data, tmp_path, capsys):
    """Item 14.6: a directory, a missing file, a non-recording and a FIFO are unreadable files:
    refused before any work (exit 1, an earlier output left alone) unless --keep-going, which
    lists them as files and counts only real spectra."""
    import os

    adir = tmp_path / "adir"
    adir.mkdir()
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an HDF5 file" * 10)
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    missing = tmp_path / "nothere.h5"
    out = tmp_path / "o.jsonl"
    out.write_text("earlier output\n")
    code, text, raw = replay_cli(data, data.stack, adir, junk, fifo, missing, out=out, capsys=capsys)
    assert code == 1 and raw == b"earlier output\n"
    assert text.err.splitlines() == [f"fol: error: {adir}: is a directory",
                                     f"fol: error: {junk}: not a readable HDF5 file (file signature not found)",
                                     f"fol: error: {fifo}: is not a regular file",
                                     f"fol: error: {missing}: no such file",
                                     "fol: error: 4 input file(s) cannot be read (listed above): nothing analysed; "
                                     "--keep-going replays the others"]
    code, text, raw = replay_cli(data, data.stack, adir, junk, fifo, missing, "--keep-going", out=out, capsys=capsys)
    assert code == 0
    assert len(raw.decode().splitlines()) == data.n and f"spectra: {data.n}" in text.out
    assert "unreadable files (no spectra read): 4" in text.out
    assert f"  {adir}: is a directory" in text.out and "errors (spectra not read or not analysed): 0" in text.out
    assert "per file:" in text.out and f"{junk}" in text.out.split("per file:")[1]


def test_regression_diff_lists_every_change_with_library_hashes(data, reference, tmp_path, capsys):
    earlier = tmp_path / "earlier.h5"
    earlier.write_bytes(data.stack.read_bytes())
    results = [json.loads(line) for line in reference.decode().splitlines()]
    old = [json.loads(json.dumps(r)) for r in results]
    for r in old:
        r["library"]["sha256"] = "0ldc0ffee" * 7
    old[3]["components"][0]["name"] = "caffeine"  # top component changed
    old[0].update(verdict="no-match", alarm=False, components=[])  # verdict, alarm and top changed (fentanyl)
    with RecordingWriter(earlier, "a") as w:
        w.set_results("batch", old[:-2], {"fol_version": "0.0.1", "library_sha256": "0ldc0ffee" * 7})
    code, text, _ = replay_cli(data, earlier, capsys=capsys)
    assert code == 0
    out = text.out
    assert f"regression: {data.n - 2} spectra compared" in out and ": 2 changed" in out
    assert "0ldc0ffee0ld" in out and data.sha[:12] in out
    assert f"{earlier}#batch[3]: was identified, " in out and "top caffeine; now identified, " in out
    assert (f"{earlier}#batch[0]: was no-match, no alarm, top none; now identified, ALARM (fentanyl-analogue), "
            "top fentanyl (changed: verdict, alarm, top component;") in out
    assert "alarm True" not in out and "alarm False" not in out


def test_plan_groups_small_entries_and_cuts_stacks(data):
    tasks = plan([data.stack], chunk_rows=25)
    assert [len(t) for t in tasks] == [25, 25, 12]
    assert [t.first for t in tasks] == [0, 25, 50]
    assert [(p.entry, p.start, p.stop) for p in tasks[-1].parts] == [("batch", 50, 60), ("single_0", 0, 1),
                                                                      ("single_1", 0, 1)]
    assert [len(t) for t in plan([data.stack], chunk_rows=1)] == [1] * data.n


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_rate_and_eta_on_a_terminal_only():
    tty = _Terminal()
    bar = progress("replay", stream=tty, unit="spectra")
    for done in (0, 400, 1000):
        bar(done, 1000)
    bar.close()
    text = tty.getvalue()
    assert "1,000/1,000" in text and "spectra/s" in text and "ETA" in text and "100%" in text
    pipe = io.StringIO()
    bar = progress("replay", stream=pipe, unit="spectra")
    bar(0, 1000)
    bar(1000, 1000)
    bar.close()
    assert pipe.getvalue() == ""


def test_memory_stays_bounded_by_the_chunk_not_the_file(data, tmp_path):
    """Peak memory of a replay of 5x more spectra grows far less than 5x: the input is streamed."""
    import tracemalloc

    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier
    from fol.qa.replay import LibrarySpec, replay
    from fol.spectrum import SpectrumBatch

    library = load_library(data.library)
    identifier = Identifier(library)
    spec = LibrarySpec(str(data.library), library.sha256)
    identifier.analyse(SpectrumBatch(AXIS, data.measure({"caffeine": 1.0}), "raman"), source="warm-up", entry="")
    peaks = []
    for n in (40, 200):
        rec = tmp_path / f"big{n}.h5"
        with RecordingWriter(rec, "w") as w:
            app = w.create_stack("s", AXIS, "raman", "counts")
            for a in range(0, n, 40):
                app.append(np.array([data.measure({NAMES[i % 12]: 1.0}) for i in range(a, a + 40)]))
        tracemalloc.start()
        summary = replay([rec], identifier, spec, lambda s: None, chunk_rows=20, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert summary.n == n
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_a_worker_refuses_a_library_that_changed_since_the_run_started(data):
    from fol.errors import LibraryError
    from fol.io.library import load_library
    from fol.identification.pipeline import Identifier
    from fol.qa.replay import LibrarySpec, replay

    identifier = Identifier(load_library(data.library))
    spec = LibrarySpec(str(data.library), "f" * 64)  # as if the file had been replaced after the main process read it
    with pytest.raises(LibraryError, match="differs from the ffffffffffff this run started with"):
        replay([data.stack], identifier, spec, lambda s: None, workers=2, progress=False)


def test_workers_find_the_class_model_already_cached(data, reference, tmp_path, monkeypatch):
    """With workers, replay makes the library's derived models once, before starting them."""
    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "o.jsonl"
    assert main(["replay", str(data.stack), "--library", str(data.library), "--json", str(out),
                 "--workers", "2", "--chunk", "16"]) == 0
    assert out.read_bytes() == reference
    cached = list((tmp_path / "cache").glob(f"classalarm-*-raman-{data.sha}.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    screens = list((tmp_path / "cache").glob("mixscreen-v*.npy"))  # the mixture model's screening matrix
    assert len(screens) == 1
    screen_stamp = screens[0].stat().st_mtime_ns
    assert main(["replay", str(data.stack), "--library", str(data.library), "--json", str(out),
                 "--workers", "2", "--chunk", "16"]) == 0
    assert out.read_bytes() == reference
    assert cached[0].stat().st_mtime_ns == stamp  # read back, not trained and written again
    assert screens[0].stat().st_mtime_ns == screen_stamp


def test_a_worker_with_the_caches_written_imports_neither_scipy_optimize_nor_interpolate(data, tmp_path):
    """Issue 16 (worker start-up < 0.5 s): once the parent has written the caches (library, class model,
    screening matrix, bases), a fresh interpreter set up as a worker analyses its first spectrum without
    importing ``scipy.optimize`` or ``scipy.interpolate`` (~0.2 s of a worker's start-up)."""
    import dataclasses
    import os

    from fol.identification.pipeline import Identifier
    from fol.io.library import load_library
    from fol.qa import replay as replay_module

    env = {**os.environ, "FOL_CACHE_DIR": str(tmp_path / "cache")}
    library = load_library(data.library)
    os.environ["FOL_CACHE_DIR"], old = str(tmp_path / "cache"), os.environ.get("FOL_CACHE_DIR")
    try:
        Identifier(library).warm_caches()
        spec = replay_module.prepare_workers(replay_module.LibrarySpec(str(data.library), data.sha), library)
    finally:
        os.environ.pop("FOL_CACHE_DIR") if old is None else os.environ.__setitem__("FOL_CACHE_DIR", old)
    assert spec.mapped
    code = (
        "import json, sys\n"
        "import fol.qa.replay as r\n"
        "from fol.io.recording import Recording\n"
        "spec = r.LibrarySpec(**json.loads(sys.argv[1]))\n"
        "with Recording(sys.argv[2]) as rec:\n"
        "    e = rec.entries[0].name\n"
        "    chunk = rec.read(e, 0, 1)\n"
        "res = r._identifier(spec).analyse(chunk.batch, source=sys.argv[2], entry=e)\n"
        "assert len(res) == 1\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('scipy.optimize', 'scipy.interpolate')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(dataclasses.asdict(spec)), str(data.stack)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []


def _labelled(data, path: Path, rows: list[tuple[dict, dict]]) -> Path:
    """A recording of spectra measured as ``truth`` but labelled ``label``: ``[(truth, label), ...]``."""
    with RecordingWriter(path, "w") as w:
        app = w.create_stack("s", AXIS, "raman", "counts", start_time="2026-03-01T10:00:00Z")
        app.append(np.array([data.measure(t) for t, _ in rows]), [label for _, label in rows])
    return path


def test_summary_names_missed_false_alarm_and_disagreeing_spectra_per_file(data, tmp_path, capsys):
    """Items 14.5 and 14.16: every spectrum whose components differ from the ground truth is named
    (missed, extra, wrong member of the right class), as are missed alarms and false alarms; a
    per-file breakdown; the first 10 unless --show-all; JSON Lines carry the ground truth."""
    agree = ({"caffeine": 1.0}, {"caffeine": 1.0})
    a = _labelled(data, tmp_path / "a.h5", [
        agree,
        ({"fentanyl": 1.0}, {"carfentanil": 1.0}),            # right class, wrong member: alarm right
        ({"xylazine": 0.5, "lidocaine": 0.5}, {"xylazine": 1.0}),  # lidocaine is extra (spurious)
        ({"caffeine": 1.0}, {"caffeine": 0.8, "heroin": 0.2}),    # heroin missed: a missed alarm
        ({"fentanyl": 1.0}, {}),                                # a blank that alarms: false alarm
    ] + [({"mannitol": 1.0}, {"lactose": 1.0})] * 12)          # 12 more: the list is cut at 10
    b = _labelled(data, tmp_path / "b.h5", [agree, agree])
    out = tmp_path / "o.jsonl"
    code, text, raw = replay_cli(data, a, b, out=out, capsys=capsys)
    assert code == 0, text.err
    s = text.out
    assert "missed alarms: 1\n" in s and f"  {a}#s[3]: expected caffeine:0.8, heroin:0.2; reported caffeine " \
                                            "(missed alarm; missed: heroin)" in s
    assert "false alarms: 1\n" in s
    assert f"  {a}#s[4]: expected blank; reported fentanyl (false alarm; extra: fentanyl)" in s
    block = s.split("spectra whose components differ from the ground truth: ")[1]
    assert block.startswith("16\n")
    listed = [line for line in block.splitlines()[1:] if line.startswith(f"  {a}#")]
    assert len(listed) == 10 and "... and 6 more (--show-all lists every one)" in block
    assert f"  {a}#s[1]: expected carfentanil:1; reported fentanyl (wrong member: fentanyl reported for " \
           "carfentanil (fentanyl-analogue))" in s
    assert f"  {a}#s[2]: expected xylazine:1; reported xylazine, lidocaine (extra: lidocaine)" in s
    assert "components differ from the ground truth in 16 spectra (missed 1, wrong member 13, extra 2)" in s
    # per file: one row each, with the counts of that file
    table = s.split("per file:\n")[1].splitlines()
    assert table[0].split()[:4] == ["file", "spectra", "errors", "alarms"]
    row_a = table[1].split()
    assert row_a[0] == str(a) and row_a[1] == "17" and table[2].split()[:2] == [str(b), "2"]
    # JSON Lines: the ground truth travels with each result
    lines = [json.loads(x) for x in raw.decode().splitlines()]
    assert lines[1]["expected"] == {"carfentanil": 1.0} and lines[4]["expected"] == {}
    assert len(lines) == 19
    code, text, _ = replay_cli(data, a, b, "--show-all", capsys=capsys)
    block = text.out.split("spectra whose components differ from the ground truth: ")[1]
    assert len([line for line in block.splitlines() if line.startswith(f"  {a}#")]) == 16 and "more (" not in block


def test_rows_skipped_for_one_reason_make_one_message():
    from fol.qa.replay import _merge_row_messages

    msgs = [f"r.h5, entry 'b': chunk damaged (row {i} of entry 'b' skipped)" for i in (4, 5, 6, 7, 9)]
    msgs.insert(2, "r.h5, entry 'b': analysis failed (ValueError: x)")
    assert _merge_row_messages(msgs) == ["r.h5, entry 'b': chunk damaged (rows 4-5 of entry 'b' skipped)",
                                         "r.h5, entry 'b': analysis failed (ValueError: x)",
                                         "r.h5, entry 'b': chunk damaged (rows 6-7 of entry 'b' skipped)",
                                         "r.h5, entry 'b': chunk damaged (row 9 of entry 'b' skipped)"]


def test_workers_map_the_library_cache_the_parent_wrote(data, reference, tmp_path, monkeypatch):
    """Issue 16: the parent checks the library hash once and writes the mapped cache; workers map it
    (no decompressing, no hashing) and the output is byte-identical to the 1-worker run's."""
    from fol.io.library import library_cache_path, load_library
    from fol.identification.pipeline import Identifier
    from fol.qa import replay as replay_module

    monkeypatch.setenv("FOL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "o.jsonl"
    assert main(["replay", str(data.stack), "--library", str(data.library), "--json", str(out),
                 "--workers", "2", "--chunk", "16"]) == 0
    assert out.read_bytes() == reference
    assert (library_cache_path(data.sha) / "library.json").exists()
    library = load_library(data.library)
    spec = replay_module.prepare_workers(replay_module.LibrarySpec(str(data.library), data.sha), library)
    assert spec.mapped
    assert replay_module._identifier(spec).library.mapped  # what a worker gets
    lines = []
    replay_module.replay([data.stack], Identifier(library), spec, lines.append, chunk_rows=16, progress=False)
    assert "".join(lines).encode() == reference
