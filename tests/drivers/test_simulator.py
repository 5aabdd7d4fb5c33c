"""The simulated analyzer: its measurement model, its command set, and the real driver
talking to it through pyserial over a real pty and over TCP."""

from __future__ import annotations

import os
import select
import socket
import time
import tty
import zlib

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from drivers import open_source
from drivers.protocol import parse_error
from drivers.simulator import (AnalyzerServer, FaultSpec, ReferenceSet, SimulatedAnalyzer, make_instrument,
                               parse_sample, simulate_batch)
from drivers.simulator.model import FULL_SCALE_COUNTS, Conditions, render
from fol.errors import DeviceError, ConfigError

pytestmark = pytest.mark.timeout(120)

METADATA_KEYS = ("maker", "model", "serial", "firmware", "technique", "excitation_wavelength_nm", "resolution_cm1",
                 "integration_time_ms", "averages", "laser_power_mw", "detector_temperature_c", "unit",
                 "device_errors", "acquired_utc", "source", "flags")


def lorentz(grid, centres, heights, width):
    g = grid[:, None]
    hw = width / 2
    return (np.asarray(heights) * hw**2 / ((g - np.asarray(centres)) ** 2 + hw**2)).sum(axis=1)


def synthetic_refset(technique="raman", n=8, seed=5, names=None) -> ReferenceSet:
    """``n`` references of 5 random Lorentzian bands each, on a library-like grid narrower than the device's."""
    rng = np.random.default_rng(seed)
    lo, hi = (200.0, 2000.0) if technique == "raman" else (650.0, 3900.0)
    grid = np.arange(lo, hi, 1.0)
    rows = [lorentz(grid, rng.uniform(lo + 50, hi - 50, 5), rng.uniform(0.2, 1.0, 5), rng.uniform(6, 14))
            for _ in range(n)]
    return ReferenceSet(grid, names or [f"sub{i}" for i in range(n)], np.array(rows), technique)


@pytest.fixture(scope="module")
def refset():
    return synthetic_refset()


def highpass(y: np.ndarray, px: float = 20.0) -> np.ndarray:
    """Remove broad backgrounds (fluorescence, baseline) so bands can be correlated."""
    return y - gaussian_filter1d(y, px, axis=-1, mode="nearest")


def best_match(spectrum, refset: ReferenceSet) -> str:
    """A simple identification: correlate the high-passed spectrum with the high-passed references."""
    refs = np.stack([np.interp(spectrum.wavenumber, refset.grid, r, left=0, right=0) for r in refset.raw])
    a, b = highpass(spectrum.intensity), highpass(refs)
    a = (a - a.mean()) / np.linalg.norm(a - a.mean())
    b = (b - b.mean(axis=1, keepdims=True))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return refset.names[int(np.argmax(b @ a))]


# ----------------------------------------------------------------------------- the model


def test_sample_specs(refset):
    assert parse_sample("sub1:0.05,SUB2:0.95", refset) == {"sub1": 0.05, "sub2": 0.95}
    assert parse_sample("blank", refset) == {}
    assert parse_sample("sub3", refset) == {"sub3": 1.0}
    for bad, why in [("sub1:0.7,sub2:0.6", "more than 1"), ("nothing:1", "no raman reference"),
                     ("sub1,sub2", "name:fraction"), ("sub1:x", "not a number"), ("sub1:0.5,sub1:0.5", "twice")]:
        with pytest.raises(ConfigError, match=why):
            parse_sample(bad, refset)


def test_sample_names_resolve_through_the_catalogue():
    refs = synthetic_refset(n=2, names=["fentanyl", "mannitol"])
    assert parse_sample("Fentanyl:0.05,D-mannitol:0.95", refs) == {"fentanyl": 0.05, "mannitol": 0.95}


def test_raman_instrument_axis_is_wide_non_uniform_and_miscalibrated():
    ins = make_instrument("raman", 3)
    step = np.diff(ins.axis)
    assert ins.axis.size == 1024 and ins.axis[0] == pytest.approx(150) and ins.axis[-1] == pytest.approx(2200)
    assert np.all(step > 0) and step.max() / step.min() > 1.3  # linear in wavelength, not in shift
    offset = ins.true_axis - ins.axis
    assert 0 < np.abs(offset).max() < 5
    assert make_instrument("raman", 3) is ins and not np.array_equal(make_instrument("raman", 4).true_axis,
                                                                      ins.true_axis)


def test_batches_are_reproducible_from_the_seed(refset):
    a = simulate_batch(refset, "sub1:0.3,sub4:0.7", 20, np.random.default_rng(9))
    b = simulate_batch(refset, "sub1:0.3,sub4:0.7", 20, np.random.default_rng(9))
    c = simulate_batch(refset, "sub1:0.3,sub4:0.7", 20, np.random.default_rng(10))
    assert np.array_equal(a.intensity, b.intensity) and not np.array_equal(a.intensity, c.intensity)
    assert a.metadata["sample"] == {"sub1": 0.3, "sub4": 0.7} and a.metadata["serial"] == "SIM00000"
    assert a.technique == "raman" and a.unit == "counts" and a.intensity.shape == (20, 1024)


def test_noise_shrinks_with_averages(refset):
    ins = make_instrument("raman")
    clean = np.zeros(ins.axis.size)

    def noise(averages):
        y, _ = render(ins, clean, 300, np.random.default_rng(1), Conditions(100.0, averages, 100.0))
        d = np.diff(y, axis=1) / np.sqrt(2)
        return np.median(np.abs(d - np.median(d))) * 1.4826  # robust to cosmic-ray spikes

    assert noise(1) / noise(16) == pytest.approx(4.0, rel=0.15)


def test_snr_control_sets_band_to_noise_ratio():
    grid = np.arange(650.0, 3900.0, 1.0)
    refs = ReferenceSet(grid, ["band"], lorentz(grid, [1000.0], [1.0], 8.0)[None, :], "ftir")
    batch = simulate_batch(refs, "band", 200, np.random.default_rng(2), snr=100.0)
    x, y = batch.wavenumber, batch.intensity
    quiet = (x > 1040) & (x < 1110)
    base = np.median(y[:, quiet], axis=1)
    peak = y[:, np.abs(x - 1000) < 6].max(axis=1) - base
    sigma = np.std(np.diff(y[:, quiet], n=2, axis=1), axis=1) / np.sqrt(6)
    assert np.median(peak / sigma) == pytest.approx(100.0, rel=0.2)


def test_saturation_clips_and_is_reported(refset):
    batch = simulate_batch(refset, "sub2", 5, np.random.default_rng(3), integration_ms=60000, laser_mw=500, averages=1)
    assert batch.metadata["saturated_rows"] == [0, 1, 2, 3, 4]
    assert batch.metadata["device_errors"] == [[202, "Detector saturated"]]
    assert batch.intensity.max() == FULL_SCALE_COUNTS
    quiet = simulate_batch(refset, "sub2", 5, np.random.default_rng(3))
    assert quiet.metadata["saturated_rows"] == [] and quiet.metadata["device_errors"] == []


def test_ftir_blank_shows_co2_and_water_bands():
    refs = synthetic_refset("ftir", n=2)
    batch = simulate_batch(refs, "blank", 400, np.random.default_rng(4))
    x, mean = batch.wavenumber, batch.intensity.mean(axis=0)
    at = lambda w: mean[np.argmin(np.abs(x - w))]  # noqa: E731
    assert batch.unit == "absorbance" and x[0] == 600 and x[-1] == 4000
    assert at(2361) - at(2250) > 0.005 and at(667.4) - at(760) > 0.003
    assert np.std(highpass(mean, 10)[(x > 1400) & (x < 1900)]) > 3 * np.std(highpass(mean, 10)[(x > 2500) & (x < 3000)])


def test_batch_simulation_is_vectorised(refset):
    batch = simulate_batch(refset, "sub0:0.5,sub1:0.5", 5000, np.random.default_rng(0))
    assert batch.intensity.shape == (5000, 1024)
    assert len({row.tobytes() for row in batch.intensity[:50]}) == 50  # independent noise per row


# ----------------------------------------------------------------------------- the instrument's command set


class FakeClock:
    t = 0.0

    def __call__(self):
        return self.t


def ask(device, line: str) -> str | None:
    reply = device.handle(line.encode())
    return None if reply is None else reply.frame.decode("latin-1")


def errors(device) -> list[tuple[int, str]]:
    out = []
    while (e := parse_error(ask(device, "SYST:ERR?").strip()))[0] != 0:
        out.append(e)
    return out


def test_device_answers_the_page(refset):
    clock = FakeClock()
    dev = SimulatedAnalyzer(refset, sample="sub1", seed=2, clock=clock, time_scale=1.0)
    assert ask(dev, "*IDN?") == "fol,SIM-RAMAN-785,SIM00002,1.0.0\n"
    assert ask(dev, "syst:tech?") == "RAMAN\n" and ask(dev, ":SENS:UNIT?") == "COUNTS\n"
    assert ask(dev, "CONF:EXC?") == "785\n" and ask(dev, "CONF:RES?") == "8\n"
    assert ask(dev, "FETC:SPEC?") == "#10\n" and errors(dev) == [(-230, "Data corrupt or stale")]
    assert ask(dev, "FETC:CRC?") == "0x00000000\n"
    assert ask(dev, "CONF:INT 200") is None and ask(dev, "CONF:INT?") == "200\n"
    assert ask(dev, "CONF:AVG 3") is None and ask(dev, "CONF:AVG?") == "3\n"
    assert ask(dev, "STAT:ACQ?") == "IDLE\n"
    assert ask(dev, "INIT") is None and ask(dev, "STAT:ACQ?") == "BUSY\n"
    opc = dev.handle(b"*OPC?")
    assert opc.frame == b"1\n" and opc.not_before == pytest.approx(0.65)  # 200 ms x 3 + 50 ms overhead
    assert ask(dev, "FETC:SPEC?") == "#10\n"  # nothing completed yet
    assert ask(dev, "INIT") is None and ask(dev, "CONF:INT 5") is None
    assert errors(dev) == [(-230, "Data corrupt or stale"), (-200, "Execution error"), (-221, "Settings conflict")]
    clock.t = 0.7
    assert ask(dev, "STAT:ACQ?") == "DONE\n"
    frame = dev.handle(b"FETC:SPEC?").frame
    assert frame.startswith(b"#44096") and frame.endswith(b"\n") and len(frame) == 6 + 4096 + 1
    assert frame == dev.handle(b"FETC:SPEC?").frame  # kept until the next INIT
    assert ask(dev, "FETC:CRC?") == f"0x{zlib.crc32(frame[6:-1]):08X}\n"
    assert ask(dev, "SIM:SAMP?") == '"sub1"\n'


def test_device_rejects_what_the_page_rejects(refset):
    dev = SimulatedAnalyzer(refset, seed=2)
    assert ask(dev, "SYSTEM:ERROR?") is None  # long forms are not in the page
    assert ask(dev, "FOO:BAR?") is None and ask(dev, "CONF:INT 0") is None and ask(dev, "CONF:INT ten") is None
    assert ask(dev, "CONF:AVG 2.5") is None and ask(dev, "CONF:LAS 600") is None and ask(dev, "*IDN? now") is None
    assert ask(dev, 'SIM:SAMP "unobtainium:1"') is None
    assert [c for c, _ in errors(dev)] == [-113, -113, -222, -102, -222, -222, -102, -222]
    assert ask(dev, 'SIM:SAMP "sub3:0.2,sub5:0.8"') is None and ask(dev, "SIM:SAMP?") == '"sub3:0.2,sub5:0.8"\n'
    for _ in range(20):
        ask(dev, "NOPE")
    queue = errors(dev)
    assert len(queue) == 16 and queue[-1] == (-350, "Queue overflow")
    assert ask(dev, "CONF:INT 10") is None and ask(dev, "*RST") is None and ask(dev, "CONF:INT?") == "100\n"


def test_ftir_device_ignores_laser_power():
    dev = SimulatedAnalyzer(synthetic_refset("ftir", n=2), seed=1)
    assert ask(dev, "SYST:TECH?") == "FTIR\n" and ask(dev, "SENS:UNIT?") == "ABSORBANCE\n"
    assert ask(dev, "CONF:LAS 100") is None and ask(dev, "CONF:LAS?") == "0\n" and ask(dev, "CONF:EXC?") == "0\n"
    assert errors(dev) == []


def test_interlock_refuses_init(refset):
    dev = SimulatedAnalyzer(refset, seed=2, faults=FaultSpec(interlock=1.0))
    assert ask(dev, "INIT") is None and ask(dev, "STAT:ACQ?") == "FAIL\n"
    assert errors(dev) == [(201, "Laser interlock open")]
    assert ask(dev, "MEAS:SPEC?") == "#10\n"


# ----------------------------------------------------------------------------- the real driver over a real pty


@pytest.fixture
def pty_server(refset, tmp_path):
    device = SimulatedAnalyzer(refset, sample="sub0", seed=21, time_scale=0.0)
    with AnalyzerServer(device, link=str(tmp_path / "analyzer")) as server:
        yield server
    assert server.failure is None and not os.path.lexists(tmp_path / "analyzer")


def test_fifty_acquisitions_over_a_pty_are_verified_identified_and_fully_described(pty_server, refset):
    device = pty_server.device
    assert os.path.realpath(pty_server.url).startswith("/dev/pts/")
    with open_source(pty_server.url, timeout=1.0) as source:
        for i in range(50):
            name = refset.names[i % len(refset.names)]
            device.set_sample(name)  # the test points the analyzer; the host never uses SIM:
            s = source.acquire(integration_ms=10 + i, averages=1 + i % 3, laser_mw=80)
            acq = device.last
            assert np.array_equal(s.intensity, acq.intensity.astype(np.float64))
            assert np.array_equal(s.wavenumber, device.instrument.axis.astype(np.float32).astype(np.float64))
            assert set(METADATA_KEYS) <= set(s.metadata)
            assert (s.metadata["integration_time_ms"], s.metadata["averages"], s.metadata["laser_power_mw"]) == \
                (10 + i, 1 + i % 3, 80)
            assert s.metadata["detector_temperature_c"] == acq.temperature_c and s.metadata["source"] == pty_server.url
            assert best_match(s, refset) == name, f"acquisition {i} of {name}"
    history = list(device.history)
    fetches = [k for k, h in enumerate(history) if h == "FETC:SPEC?"]
    assert len(fetches) == 50 and all(history[k + 1] == "FETC:CRC?" for k in fetches)
    assert "SIM:SAMP" not in device.commands and device.commands["INIT"] == 50


def test_crlf_lines_and_raw_bytes_over_the_pty(pty_server):
    fd = os.open(pty_server.url, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        os.write(fd, b"\x00\xff junk\n*IDN?\r\n")
        deadline, got = time.monotonic() + 5, b""
        while not got.endswith(b"\n") and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                got += os.read(fd, 100)
        assert got == b"fol,SIM-RAMAN-785,SIM00021,1.0.0\n"
    finally:
        os.close(fd)


def test_describe_reports_device_metadata(pty_server):
    with open_source(pty_server.url, timeout=1.0) as source:
        d = source.describe()
    assert d["model"] == "SIM-RAMAN-785" and d["technique"] == "raman" and d["unit"] == "counts"
    assert d["integration_time_ms"] == 100 and d["averages"] == 5 and d["port"] == pty_server.url


def test_flags_from_warm_detector_and_saturation(refset, tmp_path):
    device = SimulatedAnalyzer(refset, sample="sub4", seed=8, faults=FaultSpec(warm=1.0), time_scale=0.0)
    with AnalyzerServer(device, link=str(tmp_path / "a")) as server, open_source(server.url, timeout=1.0) as source:
        s = source.acquire(integration_ms=1500, averages=1, laser_mw=500)  # the host waits the real 1.5 s
    assert s.metadata["flags"] == ["detector_warm", "saturated"]
    assert s.metadata["device_errors"] == [[202, "Detector saturated"], [203, "Detector not at temperature"]]
    assert s.metadata["detector_temperature_c"] > 5


def test_interlock_error_names_the_port(refset, tmp_path):
    device = SimulatedAnalyzer(refset, seed=8, faults=FaultSpec(interlock=1.0), time_scale=0.0)
    with AnalyzerServer(device, link=str(tmp_path / "a")) as server, open_source(server.url, timeout=1.0) as source:
        with pytest.raises(DeviceError, match=f"port {server.url}: laser interlock open"):
            source.acquire()


def test_vanished_port_is_a_clear_error(refset, tmp_path):
    device = SimulatedAnalyzer(refset, seed=8, time_scale=0.0)
    server = AnalyzerServer(device, link=str(tmp_path / "a")).start()
    with open_source(server.url, timeout=0.5) as source:
        source.acquire(integration_ms=5)
        server.stop()  # the cable is pulled
        with pytest.raises(DeviceError, match=f"port {server.url}: disconnected"):
            source.acquire(integration_ms=5)


def test_port_not_found_busy_and_not_an_analyzer(pty_server, tmp_path):
    with pytest.raises(DeviceError, match=f"port {tmp_path}/ttyNOPE: not found"):
        open_source(str(tmp_path / "ttyNOPE"))
    with open_source(pty_server.url, timeout=0.5):
        with pytest.raises(DeviceError, match=f"port {pty_server.url}: busy"):
            open_source(pty_server.url, timeout=0.5)
    with pytest.raises(DeviceError, match=r"port loop://: .*\*IDN\?"):
        open_source("loop://", timeout=0.2)
    with pytest.raises(DeviceError, match="unknown URL|protocol"):
        open_source("nosuch://x")


def test_connection_refused_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeviceError, match=f"port socket://127.0.0.1:{port}: connection refused"):
        open_source(f"socket://127.0.0.1:{port}")


def test_driver_over_tcp(refset):
    device = SimulatedAnalyzer(refset, sample="sub6", seed=4, time_scale=0.0)
    with AnalyzerServer(device, tcp=("127.0.0.1", 0)) as server:
        assert server.url.startswith("socket://127.0.0.1:")
        with open_source(server.url, timeout=1.0) as source:
            for _ in range(3):
                s = source.acquire(integration_ms=20)
                assert np.array_equal(s.intensity, device.last.intensity.astype(np.float64))
                assert best_match(s, refset) == "sub6"
        with open_source(server.url, timeout=1.0) as again:  # the next client is served after the first leaves
            assert again.describe()["serial"] == "SIM00004"
    assert server.failure is None and server.stats["connections"] == 2


def test_server_listens_on_loopback_only(refset):
    device = SimulatedAnalyzer(refset, seed=4)
    with pytest.raises(ConfigError, match="loopback"):
        AnalyzerServer(device, tcp=("0.0.0.0", 0))


def test_sim_uri_runs_the_real_driver_on_a_private_pty(refset):
    with open_source("sim:sub5", refset=refset, seed=1, time_scale=0.0, timeout=1.0) as source:
        link = source.port
        assert os.path.realpath(link).startswith("/dev/pts/")
        s = source.acquire(integration_ms=30, averages=2)
        assert best_match(s, refset) == "sub5" and s.metadata["serial"] == "SIM00001"
        assert source.device.commands["FETC:CRC?"] >= 2
    assert not os.path.lexists(link)
    with pytest.raises(ConfigError, match="do not apply"):
        open_source("sim:sub5", refset=refset, colour="red")


def test_file_uri_replays_a_recording(refset, tmp_path):
    from fol.io.recording import RecordingWriter

    batch = simulate_batch(refset, "sub2", 3, np.random.default_rng(0))
    path = tmp_path / "rec.h5"
    with RecordingWriter(path) as w:
        first = w.add_spectrum(batch[0], expected={"sub2": 1.0}, device_errors=[[202, "Detector saturated"]])
        stack = w.add_stack(batch)
    with open_source(f"file:{path}", timeout=3) as source:
        assert source.describe()["spectra"] == 4
        got = [source.acquire(integration_ms=1) for _ in range(4)]
        with pytest.raises(DeviceError, match="all 4 spectra"):
            source.acquire()
    assert got[0].metadata["flags"] == ["saturated"] and got[0].metadata["entry"] == first
    assert [g.metadata["index"] for g in got] == [0, 0, 1, 2]
    assert np.allclose(got[3].intensity, batch.intensity[2])
    with open_source(f"file:{path}#{stack}") as source:
        assert source.describe()["spectra"] == 3 and source.acquire().metadata["entry"] == stack
