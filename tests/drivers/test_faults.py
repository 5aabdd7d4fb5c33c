"""Fault injection, and the driver surviving it.

The acceptance run: for each fault kind (drop, corrupt, delay, junk, disconnect) the
real driver acquires over a real pty from a simulator that injects that fault, for at
least 1,000 response frames (the slow test; the default run does 250). Every
acquisition must either return a CRC-verified spectrum equal to what the simulator
measured, with the simulator's settings in its metadata, or raise the documented
``DeviceError`` naming the port; nothing hangs (pytest-timeout), nothing else escapes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from drivers import open_source
from drivers.simulator import AnalyzerServer, FaultSpec, ReferenceSet, SimulatedAnalyzer
from drivers.simulator.faults import WIRE_KINDS, plan
from fol.errors import DeviceError, UsageError

HOST_TIMEOUT = 0.2


@pytest.fixture(scope="module")
def refset():
    grid = np.arange(200.0, 2000.0, 1.0)
    rng = np.random.default_rng(3)
    rows = [sum(h * np.exp(-0.5 * ((grid - c) / 4.0) ** 2) for c, h in zip(rng.uniform(300, 1900, 5),
                                                                            rng.uniform(0.3, 1, 5)))
            for _ in range(4)]
    return ReferenceSet(grid, ["w", "x", "y", "z"], np.array(rows), "raman")


# ----------------------------------------------------------------------------- the injector


def test_fault_spec_text_round_trip_and_errors():
    spec = FaultSpec.parse("drop=0.1, corrupt=0.2,delay=0.05,delay_s=0.4,junk_max=64,interlock=1")
    assert (spec.drop, spec.corrupt, spec.delay, spec.delay_s, spec.junk_max, spec.interlock) == (
        0.1, 0.2, 0.05, 0.4, 64, 1.0)
    assert FaultSpec.parse(str(spec)) == spec and str(FaultSpec.parse("none")) == "none"
    assert FaultSpec.parse("all=0.01") == FaultSpec(drop=0.01, corrupt=0.01, delay=0.01, junk=0.01, disconnect=0.01)
    assert FaultSpec.parse("warm=1").on_wire is False and FaultSpec.parse("junk=0.5").on_wire
    for bad, why in [("drop", "KIND=PROBABILITY"), ("flood=0.1", "KIND=PROBABILITY"), ("drop=x", "not a number"),
                     ("drop=1.5", "outside 0..1"), ("junk_max=0", "outside 1..65536")]:
        with pytest.raises(UsageError, match=why):
            FaultSpec.parse(bad)


FRAME = b"#41600" + bytes(range(256)) * 6 + bytes(64) + b"\n"


def plans(kind: str, n: int = 300, **extra):
    rng = np.random.default_rng(0)
    spec = FaultSpec(**{kind: 1.0}, **extra)
    return [plan(FRAME, spec, rng) for _ in range(n)]


def test_drop_loses_the_frame_or_a_few_bytes():
    out = [b"".join(c for _, c in p.chunks) for p in plans("drop")]
    whole = sum(o == b"" for o in out)
    assert 100 < whole < 200
    assert all(o == b"" or len(FRAME) - 8 <= len(o) < len(FRAME) for o in out)


def test_corrupt_flips_one_bit_in_one_to_three_bytes():
    for p in plans("corrupt"):
        (pause, data), = p.chunks
        diff = np.frombuffer(data, np.uint8) ^ np.frombuffer(FRAME, np.uint8)
        assert pause == 0 and 1 <= np.count_nonzero(diff) <= 3
        assert all(bin(int(d)).count("1") == 1 for d in diff[diff > 0])


def test_junk_comes_before_the_frame():
    for p in plans("junk", junk_max=100):
        data = p.chunks[0][1]
        assert data.endswith(FRAME) and 1 <= len(data) - len(FRAME) <= 100


def test_delay_splits_the_frame_with_a_pause():
    for p in plans("delay", delay_s=0.4):
        (p0, a), (p1, b) = p.chunks
        assert p0 == 0 and 0.2 <= p1 <= 0.6 and a + b == FRAME


def test_disconnect_cuts_the_frame_and_hangs_up():
    for p in plans("disconnect"):
        assert p.disconnect and FRAME.startswith(p.chunks[0][1])


def test_plans_are_reproducible_and_no_faults_change_nothing():
    spec = FaultSpec.parse("all=0.3")
    a = [plan(FRAME, spec, np.random.default_rng(5)) for _ in range(3)]
    b = [plan(FRAME, spec, np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    assert plan(FRAME, FaultSpec(), np.random.default_rng(0)).chunks == ((0.0, FRAME),)


# ----------------------------------------------------------------------------- the driver under fire


#: per fault kind: probability per frame, and the least fraction of acquisitions that must succeed
#: (a disconnect always ends the acquisition it hits; a delay beyond two timeouts fails its exchange)
RATES = {"drop": (0.04, 0.8), "corrupt": (0.04, 0.8), "delay": (0.04, 0.5), "junk": (0.04, 0.9),
         "disconnect": (0.02, 0.4)}


def hammer(refset, link: str, kind: str, frames: int, budget_s: float) -> Counter:
    """Acquire until the simulator has sent ``frames`` frames with ``kind`` faults; check every outcome."""
    probability, min_ok = RATES[kind]
    spec = FaultSpec.parse(f"{kind}={probability},delay_s={1.5 * HOST_TIMEOUT}")
    device = SimulatedAnalyzer(refset, sample="x:0.3,z:0.7", seed=11, faults=spec, time_scale=0.0)
    outcomes: Counter = Counter()
    deadline = time.monotonic() + budget_s
    with AnalyzerServer(device, link=link, seed=11) as server:
        source = None
        try:
            while server.stats["frames"] < frames and time.monotonic() < deadline:
                try:
                    if source is None:
                        source = open_source(server.url, timeout=HOST_TIMEOUT)
                    s = source.acquire(integration_ms=5, averages=1 + outcomes["ok"] % 2)
                except DeviceError as e:
                    assert str(e).startswith(f"port {server.url}: "), e
                    outcomes["error"] += 1
                    outcomes["disconnected" if "disconnected" in str(e) else "other error"] += 1
                    if source is not None and "disconnected" in str(e):
                        source.close()
                        source = None
                    continue
                acq = device.last  # what the simulator measured for this INIT
                assert np.array_equal(s.intensity, acq.intensity.astype(np.float64)), "corrupted spectrum returned"
                assert np.array_equal(s.wavenumber, device.instrument.axis)
                md = s.metadata
                assert (md["integration_time_ms"], md["averages"], md["laser_power_mw"]) == (
                    acq.settings["integration_ms"], acq.settings["averages"], acq.settings["laser_mw"])
                assert md["detector_temperature_c"] == acq.temperature_c and md["flags"] == []
                assert (md["serial"], md["resolution_cm1"], md["unit"]) == ("SIM00011", 8.0, "counts")
                outcomes["ok"] += 1
        finally:
            if source is not None:
                source.close()
    assert server.failure is None
    assert server.stats["frames"] >= frames, f"only {server.stats['frames']} frames in {budget_s} s: {outcomes}"
    assert server.stats[kind] > 0, "the fault never fired: the test proved nothing"
    assert outcomes["ok"] >= min_ok * (outcomes["ok"] + outcomes["error"]), outcomes
    outcomes["frames"], outcomes["faults"] = server.stats["frames"], server.stats[kind]
    return outcomes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", WIRE_KINDS)
def test_driver_survives_faults_quick(refset, tmp_path, kind):
    hammer(refset, str(tmp_path / "analyzer"), kind, frames=250, budget_s=60)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", WIRE_KINDS)
def test_driver_survives_1000_exchanges_per_fault_kind(refset, tmp_path, kind):
    outcomes = hammer(refset, str(tmp_path / "analyzer"), kind, frames=1000, budget_s=400)
    print(kind, dict(outcomes))


@pytest.mark.timeout(120)
def test_all_faults_at_once_over_tcp(refset):
    spec = FaultSpec.parse(f"all=0.01,delay_s={1.5 * HOST_TIMEOUT}")
    device = SimulatedAnalyzer(refset, sample="y", seed=12, faults=spec, time_scale=0.0)
    ok = 0
    with AnalyzerServer(device, tcp=("127.0.0.1", 0), seed=12) as server:
        for _ in range(8):
            try:
                with open_source(server.url, timeout=HOST_TIMEOUT) as source:
                    s = source.acquire(integration_ms=5)
            except DeviceError as e:
                assert str(e).startswith(f"port {server.url}: ")
                continue
            assert np.array_equal(s.intensity, device.last.intensity.astype(np.float64))
            ok += 1
    assert ok >= 4 and server.failure is None


@pytest.mark.timeout(120)
def test_cli_probe_of_a_faulty_analyzer_prints_no_traceback(refset, tmp_path):
    spec = FaultSpec.parse(f"all=0.05,delay_s={1.5 * HOST_TIMEOUT}")
    device = SimulatedAnalyzer(refset, seed=13, faults=spec, time_scale=0.0)
    answers = Counter()
    with AnalyzerServer(device, link=str(tmp_path / "a"), seed=13) as server:
        for _ in range(4):
            run = subprocess.run([sys.executable, "-m", "fol", "devices", "--probe", "--port", server.url,
                                  "--timeout", str(HOST_TIMEOUT)], capture_output=True, text=True, timeout=60)
            assert run.returncode == 0 and "Traceback" not in run.stderr + run.stdout, run.stderr
            line = run.stdout.strip().splitlines()[-1]
            assert line.startswith(server.url)
            answers["identified" if "fol,SIM-RAMAN-785,SIM00013,1.0.0 (raman)" in line else "no analyzer"] += 1
            assert "identified" in answers or "no analyzer: port" in line
    assert answers["identified"] >= 2
