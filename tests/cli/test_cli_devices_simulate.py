"""``fol simulate serve|record`` and ``fol devices``, through the real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from drivers import open_source
from drivers.simulator import AnalyzerServer, ReferenceSet, SimulatedAnalyzer
from fol.cli import main
from fol.errors import DeviceError
from fol.io.library import LibrarySection, write_library
from fol.io.recording import Recording
from fol.preprocess.recipe import default_recipe

pytestmark = pytest.mark.timeout(120)
NAMES = ["fentanyl", "mannitol", "caffeine", "cocaine"]


def _section(technique: str, lo: float, hi: float, seed: int) -> LibrarySection:
    rng = np.random.default_rng(seed)
    grid = np.arange(lo, hi, 2.0)
    raw = np.array([sum(h * np.exp(-0.5 * ((grid - c) / 5.0) ** 2)
                        for c, h in zip(rng.uniform(lo + 50, hi - 50, 6), rng.uniform(0.3, 1.0, 6)))
                    for _ in NAMES], dtype=np.float32)
    n = len(NAMES)
    return LibrarySection(technique, grid, raw, raw, list(NAMES), ["x"] * n, np.zeros(n, bool), ["computed"] * n,
                          ["synthetic test bands"] * n, default_recipe(technique).to_json())


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("lib") / "lib.h5"
    write_library(path, {"raman": _section("raman", 200, 2000, 1), "ftir": _section("ftir", 650, 3900, 2)},
                  name="cli-test")
    return str(path)


def fol(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fol", *argv], capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- record


def test_record_writes_entries_with_ground_truth_reproducibly(library, tmp_path, capsys):
    args = ["simulate", "record", "--sample", "fentanyl:0.05,D-mannitol:0.95", "--n", "4", "--seed", "3",
            "--library", library]
    assert main(args + ["--out", str(tmp_path / "a.h5")]) == 0
    assert "wrote 4 simulated raman spectra" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "b.h5")]) == 0
    with Recording(tmp_path / "a.h5") as a, Recording(tmp_path / "b.h5") as b:
        assert len(a.entries) == 4 and not a.entries[0].stacked
        first = a.read(a.entries[0])
        assert first.expected == [{"fentanyl": 0.05, "mannitol": 0.95}]
        assert first.batch.intensity.shape == (1, 1024) and first.batch.unit == "counts"
        inst = a.entries[0].instrument
        assert inst["serial"] == "SIM00003" and inst["excitation_wavelength_nm"] == 785 and inst["averages"] == 5
        for ea, eb in zip(a.entries, b.entries):
            assert np.array_equal(a.read(ea).batch.intensity, b.read(eb).batch.intensity)
        assert not np.array_equal(a.read(a.entries[0]).batch.intensity, a.read(a.entries[1]).batch.intensity)


def test_record_stack_of_ftir_spectra_in_chunks(library, tmp_path):
    out = tmp_path / "stack.h5"
    assert main(["simulate", "record", "--sample", "blank", "--n", "2500", "--stack", "--technique", "ftir",
                 "--snr", "300", "--seed", "1", "--library", library, "--out", str(out)]) == 0
    with Recording(out) as rec:
        (info,) = rec.entries
        assert info.stacked and info.n_rows == 2500 and info.unit == "absorbance" and info.n_points == 1701
        tail = rec.read(info, 2490)
        assert tail.expected == [{}] * 10 and len(tail.batch) == 10


def test_record_refuses_bad_specs_in_one_line(library, tmp_path, capsys):
    assert main(["simulate", "record", "--sample", "unobtainium:1", "--n", "2", "--library", library,
                 "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fol: error: 'unobtainium' has no raman reference") and err.count("\n") == 1
    assert main(["simulate", "record", "--sample", "blank", "--n", "0", "--library", library,
                 "--out", str(tmp_path / "x.h5")]) == 2


# ----------------------------------------------------------------------------- serve


def test_serve_on_tcp_in_a_subprocess_reached_with_socket_url(library):
    proc = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--tcp", "127.0.0.1:0",
                             "--sample", "caffeine", "--seed", "9", "--time-scale", "0", "--timeout", "60",
                             "--faults", "junk=0.05,corrupt=0.05", "--library", library],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert "serving on socket://127.0.0.1:" in banner, banner + proc.stderr.read()
        url = banner.split("serving on ")[1].split()[0]
        spectra = []
        for _ in range(10):
            try:
                with open_source(url, timeout=1.0) as source:
                    assert source.describe()["serial"] == "SIM00009"
                    spectra.append(source.acquire(integration_ms=20))
            except DeviceError as e:  # documented outcome of a faulty line; anything else fails the test
                assert str(e).startswith(f"port {url}: ")
            if len(spectra) == 3:
                break
        assert len(spectra) == 3 and all(len(s) == 1024 and s.metadata["source"] == url for s in spectra)
        assert not np.array_equal(spectra[0].intensity, spectra[1].intensity)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "fol: interrupted" in err


def test_serve_on_a_pty_link_stops_by_itself_and_cleans_up(library, tmp_path):
    link = tmp_path / "fol-analyzer"
    proc = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--link", str(link), "--technique",
                             "ftir", "--timeout", "20", "--time-scale", "0", "--library", library,
                             "--faults", "warm=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"serving on {link}" in proc.stdout.readline()
        with open_source(str(link), timeout=2.0) as source:
            s = source.acquire(integration_ms=10, averages=2, laser_mw=100)
        assert s.technique == "ftir" and s.unit == "absorbance" and s.metadata["flags"] == ["detector_warm"]
        assert s.metadata["laser_power_mw"] == 0  # FTIR ignores the laser setting
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert not os.path.lexists(link)


def test_serve_with_timeout_exits_cleanly(library, tmp_path):
    run = fol("simulate", "serve", "--link", str(tmp_path / "l"), "--timeout", "0.5", "--library", library)
    assert run.returncode == 0 and "stopped after 0 responses" in run.stdout and run.stderr == ""


def test_serve_refuses_non_loopback_and_bad_faults(library):
    run = fol("simulate", "serve", "--tcp", "0.0.0.0:5025", "--library", library)
    assert run.returncode == 2 and run.stderr.strip() == "fol: error: the simulator only listens on loopback addresses, not 0.0.0.0"
    run = fol("simulate", "serve", "--faults", "drop=2", "--library", library)
    assert run.returncode == 2 and "outside 0..1" in run.stderr and "Traceback" not in run.stderr


# ----------------------------------------------------------------------------- devices


def test_devices_lists_ports_without_tracebacks():
    run = fol("devices")
    assert run.returncode == 0 and run.stdout.strip() and run.stderr == ""


def test_devices_probe_identifies_a_simulator_and_explains_failures(tmp_path):
    grid = np.arange(200.0, 2000.0, 1.0)
    refs = ReferenceSet(grid, ["a"], np.exp(-0.5 * ((grid - 1000) / 5) ** 2)[None, :], "raman")
    with AnalyzerServer(SimulatedAnalyzer(refs, seed=77), link=str(tmp_path / "sim")) as server:
        run = fol("devices", "--port", server.url, "--port", str(tmp_path / "nothing"), "--timeout", "0.3")
    assert run.returncode == 0 and run.stderr == ""
    lines = run.stdout.strip().splitlines()[-2:]
    assert lines[0].startswith(server.url) and lines[0].endswith("fol,SIM-RAMAN-785,SIM00077,1.0.0 (raman)")
    assert lines[1].endswith(f"no analyzer: port {tmp_path / 'nothing'}: not found")


# ----------------------------------------------------------------------------- serve: one server per link


def test_a_second_serve_on_a_live_link_is_refused_and_never_orphans_the_first(library, tmp_path):
    link = tmp_path / "fol-analyzer"
    first = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--link", str(link), "--timeout", "60",
                              "--library", library], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"serving on {link}" in first.stdout.readline()
        target = os.readlink(link)
        second = fol("simulate", "serve", "--link", str(link), "--timeout", "1", "--library", library)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == (f"fol: error: {link} is already served by another simulator (it holds "
                                         f"{link}.lock); stop it first or choose another --link")
        assert os.readlink(link) == target  # untouched: the first server is still reachable
        with open_source(str(link), timeout=2.0) as source:
            assert source.describe()["model"] == "SIM-RAMAN-785"
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert not os.path.lexists(link) and not os.path.exists(f"{link}.lock")


def test_a_link_left_by_a_killed_server_is_taken_over(library, tmp_path):
    link = tmp_path / "fol-analyzer"
    dead = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--link", str(link), "--timeout", "60",
                             "--library", library], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert f"serving on {link}" in dead.stdout.readline()
    dead.kill()
    dead.communicate(timeout=30)
    assert os.path.lexists(link)  # kill -9 leaves the link and the lock file behind
    run = fol("simulate", "serve", "--link", str(link), "--timeout", "0.5", "--library", library)
    assert run.returncode == 0 and f"serving on {link}" in run.stdout, run.stderr


def test_serve_refuses_a_live_link_it_did_not_make(library, tmp_path):
    link = tmp_path / "other"
    os.symlink(os.ttyname(0) if os.isatty(0) else "/dev/null", link)  # e.g. socat's pty
    run = fol("simulate", "serve", "--link", str(link), "--timeout", "0.5", "--library", library)
    assert run.returncode == 2 and "was not made by fol simulate" in run.stderr and run.stderr.count("\n") == 1
    assert os.path.islink(link)


# ----------------------------------------------------------------------------- identify --port: settings, record


@pytest.fixture(scope="module")
def shipped():
    """The shipped library's Raman references (identify needs a library with a recipe)."""
    from fol.io.library import load_library

    return ReferenceSet.from_library(load_library().section("raman"))


@pytest.fixture()
def analyzer(shipped, tmp_path):
    refset = shipped
    device = SimulatedAnalyzer(refset, sample="fentanyl", seed=4, time_scale=0.05)
    with AnalyzerServer(device, link=str(tmp_path / "port")) as server:
        yield device, server


def test_identify_sets_every_setting_and_prints_the_settings_used(library, analyzer, tmp_path):
    device, server = analyzer
    for line in (b"CONF:INT 3000", b"CONF:AVG 3", b"CONF:LAS 300"):  # left on the device by an earlier session
        device.handle(line)
    run = fol("identify", "--port", server.url, "--record", str(tmp_path / "persist.h5"))
    assert run.returncode == 0, run.stderr
    assert device.last.settings == {"integration_ms": 100.0, "averages": 5, "laser_mw": 100.0}  # the defaults
    assert "Settings: integration 100 ms x 5 averages, laser 100 mW" in run.stdout
    with Recording(tmp_path / "persist.h5") as rec:
        inst = rec.entries[0].instrument
        assert (inst["integration_time_ms"], inst["averages"], inst["laser_power_mw"]) == (100, 5, 100)
    run = fol("identify", "--port", server.url, "--integration", "200", "--averages", "2")
    assert run.returncode == 0 and "Settings: integration 200 ms x 2 averages, laser 100 mW" in run.stdout
    assert device.last.settings == {"integration_ms": 200.0, "averages": 2, "laser_mw": 100.0}


def test_a_bad_record_target_is_refused_before_acquiring(library, analyzer, tmp_path):
    device, server = analyzer
    run = fol("identify", "--port", server.url, "--record", library)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"fol: error: {library}: not a fol recording (format is 'fol-library'")
    run = fol("identify", "--port", server.url, "--record", str(tmp_path / "nodir" / "r.h5"))
    assert run.returncode == 1 and "cannot write a recording there" in run.stderr
    assert device.commands["INIT"] == 0  # nothing was measured for nothing


def test_a_record_that_fails_after_acquiring_still_shows_the_verdict_and_saves_a_fallback(library, analyzer,
                                                                                            tmp_path):
    from fol.io.recording import RecordingWriter

    device, server = analyzer
    target = tmp_path / "busy.h5"
    with RecordingWriter(target, "w"):  # another process keeps writing it: the record cannot be appended
        run = fol("identify", "--port", server.url, "--record", str(target))
    assert run.returncode == 1
    assert "Verdict:" in run.stdout and "ALARM" in run.stdout
    (err,) = run.stderr.strip().splitlines()
    assert err.startswith(f"fol: error: could not record to {target} (")
    fallback = err.split("were saved to ")[1].rsplit("#", 1)[0]
    assert os.path.dirname(fallback) == str(tmp_path) and "busy.unsaved-" in fallback
    with Recording(fallback) as rec:
        chunk = rec.read(rec.entries[0])
        assert np.array_equal(chunk.batch.intensity[0], device.last.intensity.astype(float))
        assert chunk.results[0]["alarm"] is True


def _on_a_terminal(argv, timeout=90) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pty (a terminal): returns (exit code, stdout, what the terminal showed)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fol", *argv], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = bytearray()
    while True:
        ready = select.select([master], [], [], timeout)[0]
        if not ready:
            proc.kill()
            raise AssertionError("no output in time")
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    out = proc.stdout.read().decode()
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, out, shown.decode(errors="replace")


def test_progress_and_retries_are_shown_on_a_terminal(shipped, tmp_path):
    from drivers.simulator import FaultSpec

    refset = shipped
    device = SimulatedAnalyzer(refset, sample="caffeine", seed=6, time_scale=1.0)
    with AnalyzerServer(device, link=str(tmp_path / "port")) as server:
        code, out, shown = _on_a_terminal(["identify", "--port", server.url,
                                           "--integration", "600", "--averages", "2", "--timeout", "0.5"])
        assert code == 0 and "Verdict:" in out
        assert "acquiring:" in shown and "of 1.2 s" in shown
        server.faults = FaultSpec(drop=0.15)  # a faulty line: answers lost
        code, out, shown = _on_a_terminal(["identify", "--port", server.url,
                                           "--integration", "50", "--timeout", "0.3"])
        assert f"fol: port {server.url}: no complete answer to" in shown and "resyncing and asking again" in shown
    run = fol("identify", "--file", str(tmp_path / "none.h5"))  # not a terminal: no noise
    assert run.stderr.count("\n") == 1


def test_a_stale_done_through_the_real_executables_never_reports_the_previous_sample(tmp_path):
    """The issue's reproduction end to end: fentanyl measured, the sample changed to caffeine, a stale DONE."""
    import tty

    link = tmp_path / "fol-analyzer"
    server = subprocess.Popen([sys.executable, "-m", "fol", "simulate", "serve", "--link", str(link), "--sample",
                               "fentanyl", "--seed", "3", "--faults", "stale_done=0.7", "--timeout", "100"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f"serving on {link}" in server.stdout.readline()
        first = fol("identify", "--port", str(link), "--integration", "300", "--averages", "1", "--json",
                    timeout=90)
        if first.returncode == 0:
            assert json.loads(first.stdout)["alarm"] is True
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)  # the bench officer swaps the sample
        tty.setraw(fd)
        os.write(fd, b'SIM:SAMP "caffeine"\n')
        os.close(fd)
        verdicts = []
        for _ in range(3):
            run = fol("identify", "--port", str(link), "--integration", "300", "--averages", "1", "--json",
                      timeout=90)
            assert "Traceback" not in run.stderr
            if run.returncode == 0:
                verdicts.append(json.loads(run.stdout))
            else:
                assert run.stderr.startswith(f"fol: error: port {link}: ") and run.stderr.count("\n") == 1
        assert verdicts, "no acquisition got through"
        assert all(not v["alarm"] and "fentanyl" not in {c["name"] for c in v["components"]} for v in verdicts)
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
