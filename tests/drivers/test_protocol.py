"""The host side of the analyzer protocol against a fake transport that feeds exact bytes.

The fake answers each command line the host writes with scripted bytes, hands them out
one byte per read, and advances a fake clock by the full timeout whenever the host
waits for bytes that never come, so timeout paths run instantly and are bounded.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from drivers.device import Analyzer, check_settings, quality_flags
from drivers.protocol import (MAX_JUNK, BadResponse, Protocol, decode_floats, parse_count, parse_crc, parse_error,
                              parse_idn, parse_number)
from drivers.simulator import ReferenceSet, SimulatedAnalyzer
from drivers.simulator.faults import FaultSpec
from fol.errors import DeviceError, ConfigError

TIMEOUT = 0.5


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class FakeTransport:
    """Calls ``respond(line)`` for every command line written; serves the bytes ``chunk`` at a time."""

    port = "fake0"
    baudrate = 115200

    def __init__(self, respond, clock: Clock, chunk: int = 1):
        self.respond = respond
        self.clock = clock
        self.chunk = chunk
        self.inbox = bytearray()
        self.written: list[bytes] = []
        self.lines: list[str] = []
        self.resets = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)
        for raw in data.split(b"\n")[:-1]:
            line = raw.decode("ascii")
            self.lines.append(line)
            out = self.respond(line)
            if out:
                self.inbox += out

    def pending(self) -> int:
        return len(self.inbox)

    def reset_input_buffer(self) -> None:
        self.resets += 1
        self.inbox.clear()

    def _wait(self, timeout: float) -> bytes:
        self.clock.t += timeout
        return b""

    def read_some(self, limit: int, timeout: float) -> bytes:
        if not self.inbox:
            return self._wait(timeout)
        n = min(limit, self.chunk, len(self.inbox))
        out = bytes(self.inbox[:n])
        del self.inbox[:n]
        return out

    def read_exact(self, n: int, timeout: float) -> bytes:
        if len(self.inbox) < n:
            self.clock.t += timeout  # a real port waits the whole timeout for bytes that do not come
        out = bytes(self.inbox[:n])
        del self.inbox[:n]
        return out


class Script:
    """Answers per command: a list consumed in order (the last one repeats); None = silence."""

    def __init__(self, answers: dict):
        self.answers = {k: list(v) for k, v in answers.items()}

    def __call__(self, line: str):
        queue = self.answers.get(line)
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]


def block(payload: bytes) -> bytes:
    n = str(len(payload)).encode()
    return b"#" + str(len(n)).encode() + n + payload + b"\n"


def crc_line(payload: bytes) -> bytes:
    return b"0x%08X\n" % zlib.crc32(payload)


def make(answers: dict, chunk: int = 1, retries: int = 3):
    clock = Clock()
    t = FakeTransport(Script(answers), clock, chunk)
    return Protocol(t, timeout=TIMEOUT, retries=retries, clock=clock), t, clock


PAYLOAD = np.linspace(100.0, 200.0, 64, dtype="<f4").tobytes()


# ----------------------------------------------------------------------------- lines


def test_line_query_read_one_byte_at_a_time_with_crlf():
    p, t, _ = make({"*IDN?": [b"ACME,R-1,SN42,2.1\r\n"]})
    assert p.query("*IDN?", parse_idn) == ("ACME", "R-1", "SN42", "2.1")
    assert t.resets == 1 and t.written == [b"*IDN?\n"]


def test_stray_bytes_in_the_buffer_are_reset_before_the_exchange():
    p, t, _ = make({"SYST:TECH?": [b"RAMAN\n"]})
    t.inbox += b"garbage from earlier\nBUSY\n"
    assert p.query("SYST:TECH?") == "RAMAN"


def test_timeout_sends_bare_lf_and_cls_then_retries_once():
    p, t, clock = make({"SYST:TEMP?": [None, b"-10.0\n"]})
    start = clock.t
    assert p.query("SYST:TEMP?", parse_number) == -10.0
    assert t.written == [b"SYST:TEMP?\n", b"\n*CLS\n", b"SYST:TEMP?\n"]
    assert p.resyncs == 1 and clock.t - start == pytest.approx(TIMEOUT + p.quiet_s)  # the wait, then the drain


def test_silent_device_fails_after_one_retry_naming_the_port():
    p, t, clock = make({})
    start = clock.t
    with pytest.raises(DeviceError, match=r"port fake0: no answer to \*IDN\? within 0.5 s"):
        p.query("*IDN?", parse_idn)
    assert t.written == [b"*IDN?\n", b"\n*CLS\n", b"*IDN?\n"]
    assert clock.t - start == pytest.approx(2 * TIMEOUT + p.quiet_s)  # bounded: two timeouts and one drain


@pytest.mark.parametrize("garbled", [b"\xc1CME,R-1,SN42,2.1\n", b"ACME R-1\n", b"\n"])
def test_garbled_line_is_requeried_without_resync(garbled):
    p, t, _ = make({"*IDN?": [garbled, b"ACME,R-1,SN42,2.1\n"]})
    assert p.query("*IDN?", parse_idn)[0] == "ACME"
    assert t.lines == ["*IDN?", "*IDN?"] and p.resyncs == 0


def test_persistently_garbled_answers_fail_after_the_retries():
    p, t, _ = make({"STAT:ACQ?": [b"MAYBE\n"]}, retries=2)
    with pytest.raises(DeviceError, match=r"3 unusable answers to STAT:ACQ\?.*MAYBE"):
        from drivers.protocol import choice

        p.query("STAT:ACQ?", choice("IDLE", "BUSY", "DONE", "FAIL"))
    assert t.lines.count("STAT:ACQ?") == 3


def test_query_stable_rereads_until_two_answers_agree():
    # a flipped digit ("190") still parses; the confirmation read exposes it
    p, t, _ = make({"CONF:INT?": [b"190\n", b"100\n", b"100\n"]})
    assert p.query_stable("CONF:INT?", parse_number) == 100.0
    assert t.lines.count("CONF:INT?") == 3


def test_query_stable_gives_up_on_answers_that_never_agree():
    p, _, _ = make({"CONF:INT?": [b"1\n", b"2\n", b"3\n", b"4\n", b"5\n", b"6\n"]})
    with pytest.raises(DeviceError, match="no two clean, agreeing readings of CONF:INT"):
        p.query_stable("CONF:INT?", parse_number, attempts=4)


# ----------------------------------------------------------------------------- blocks


def test_block_with_4096_junk_bytes_before_the_header_is_accepted_and_crc_checked():
    junk = bytes(range(256)).replace(b"#", b"") * 17
    junk = junk[:MAX_JUNK]
    p, t, _ = make({"FETC:SPEC?": [junk + block(PAYLOAD)], "FETC:CRC?": [crc_line(PAYLOAD)]}, chunk=7)
    assert p.query_block("FETC:SPEC?") == PAYLOAD
    assert t.lines == ["FETC:SPEC?", "FETC:CRC?"]


def test_more_than_4096_junk_bytes_is_not_a_block():
    junk = b"x" * (MAX_JUNK + 1)
    p, t, _ = make({"FETC:SPEC?": [junk + block(PAYLOAD)], "FETC:CRC?": [crc_line(PAYLOAD)]}, chunk=512, retries=1)
    with pytest.raises(DeviceError, match="junk before the block header"):
        p.query_block("FETC:SPEC?")
    assert t.lines.count("FETC:SPEC?") == 2


def test_crc_mismatch_requeries_the_block():
    bad = bytearray(PAYLOAD)
    bad[10] ^= 0x04
    p, t, _ = make({"FETC:SPEC?": [block(bytes(bad)), block(PAYLOAD)], "FETC:CRC?": [crc_line(PAYLOAD)]})
    assert p.query_block("FETC:SPEC?") == PAYLOAD
    assert t.lines == ["FETC:SPEC?", "FETC:CRC?", "FETC:SPEC?", "FETC:CRC?"]
    assert p.counters["crc_mismatches"] == 1


def test_block_that_never_passes_its_crc_is_discarded():
    bad = bytearray(PAYLOAD)
    bad[0] ^= 0x80
    p, t, _ = make({"FETC:SPEC?": [block(bytes(bad))], "FETC:CRC?": [crc_line(PAYLOAD)]}, retries=2)
    with pytest.raises(DeviceError, match=r"port fake0: FETC:SPEC\? failed its integrity check 3 times.*CRC-32.*discarded"):
        p.query_block("FETC:SPEC?")
    assert t.lines.count("FETC:SPEC?") == 3


def test_short_block_is_resynced_and_requeried():
    short = block(PAYLOAD)[:-20]
    p, t, clock = make({"FETC:SPEC?": [short, block(PAYLOAD)], "FETC:CRC?": [crc_line(PAYLOAD)]}, chunk=16)
    start = clock.t
    assert p.query_block("FETC:SPEC?") == PAYLOAD
    assert p.counters["short_blocks"] == 1 and b"\n*CLS\n" in t.written
    assert clock.t - start <= 2 * TIMEOUT + p.quiet_s


@pytest.mark.parametrize("bad", [
    b"#0\n",                          # indefinite length: not allowed by the page
    b"#A0064" + PAYLOAD + b"\n",      # digit count not a digit
    b"#2x4" + PAYLOAD[:4] + b"\n",    # length field not digits
    b"#15abcde\n",                    # length not a multiple of 4
    b"#232" + PAYLOAD[:32] + b"X",    # payload not followed by LF (corrupt length)
])
def test_malformed_block_is_requeried(bad):
    p, t, _ = make({"SENS:AXIS?": [bad, block(PAYLOAD)], "FETC:CRC?": [crc_line(PAYLOAD)]})
    assert p.query_block("SENS:AXIS?") == PAYLOAD
    assert t.lines.count("SENS:AXIS?") == 2 and p.counters["malformed"] == 1


def test_absurd_length_field_is_rejected_without_waiting_for_it():
    p, _, clock = make({"FETC:SPEC?": [b"#9999999996" + PAYLOAD + b"\n", block(PAYLOAD)],
                        "FETC:CRC?": [crc_line(PAYLOAD)]}, chunk=64)
    start = clock.t
    assert p.query_block("FETC:SPEC?") == PAYLOAD
    assert clock.t - start < TIMEOUT  # a short drain and settle, never the 1 GB announced


def test_block_followed_by_crlf_is_accepted():
    p, _, _ = make({"FETC:SPEC?": [block(PAYLOAD)[:-1] + b"\r\n"], "FETC:CRC?": [crc_line(PAYLOAD)]})
    assert p.query_block("FETC:SPEC?") == PAYLOAD


def test_empty_block_is_returned_empty_whatever_crc_the_device_kept():
    p, t, _ = make({"FETC:SPEC?": [b"#10\n"], "FETC:CRC?": [crc_line(PAYLOAD)]})
    assert p.query_block("FETC:SPEC?") == b""
    assert t.lines == ["FETC:SPEC?", "FETC:CRC?"]


def test_silent_block_query_is_bounded():
    p, t, clock = make({})
    start = clock.t
    with pytest.raises(DeviceError, match=r"no answer to FETC:SPEC\?"):
        p.query_block("FETC:SPEC?")
    assert clock.t - start == pytest.approx(2 * TIMEOUT + p.quiet_s)


def test_floats_are_little_endian_float32():
    payload = struct.pack("<3f", 1.5, -2.0, 1e6)
    assert decode_floats(payload).tolist() == [1.5, -2.0, 1e6]


# ----------------------------------------------------------------------------- error queue and parsers


def test_drain_errors_until_no_error():
    p, t, _ = make({"SYST:ERR?": [b'202,"Detector saturated"\n', b'203,"Detector not at temperature"\n',
                                  b'0,"No error"\n']})
    report = p.drain_errors()
    assert report.errors == [(202, "Detector saturated"), (203, "Detector not at temperature")]
    assert report.complete and t.lines == ["SYST:ERR?"] * 3


@pytest.mark.parametrize("garbled", [b'203,"Detector saturated"\n',   # code flipped, message intact
                                     b'202,"Detector satuRated\xa0"\n',  # not ASCII
                                     b'2O2,"Detector saturated"\n',
                                     b'7,"No error"\n'])               # message of another code
def test_garbled_error_report_is_not_trusted(garbled):
    p, _, _ = make({"SYST:ERR?": [garbled, b'0,"No error"\n']})
    report = p.drain_errors()
    assert report.errors == [] and not report.complete


def test_error_drain_timeout_resyncs_and_is_incomplete():
    p, t, _ = make({"SYST:ERR?": [b'202,"Detector saturated"\n', None]})
    report = p.drain_errors()
    assert report.errors == [(202, "Detector saturated")] and not report.complete
    assert t.written[-1] == b"\n*CLS\n"


def test_error_parser_accepts_scpi_detail_and_unknown_codes():
    assert parse_error('-113,"Undefined header;FOO:BAR"') == (-113, "Undefined header;FOO:BAR")
    assert parse_error('+202,"DETECTOR SATURATED"') == (202, "DETECTOR SATURATED")
    assert parse_error('204,"Battery low"') == (204, "Battery low")


@pytest.mark.parametrize("text", ["nan", "inf", "1_000", "1,5", "", "12 ms", "0x10"])
def test_number_parser_is_strict(text):
    with pytest.raises(BadResponse):
        parse_number(text)


def test_count_and_crc_parsers():
    assert parse_count("16") == 16 and parse_count("+1.6E+01") == 16
    with pytest.raises(BadResponse):
        parse_count("16.5")
    assert parse_crc("0x00ABCDEF") == 0xABCDEF
    with pytest.raises(BadResponse):
        parse_crc("0xABCDEF")


# ----------------------------------------------------------------------------- the Analyzer, on the simulated device


def _refset() -> ReferenceSet:
    grid = np.arange(100.0, 2400.0, 1.0)
    rows = [np.exp(-0.5 * ((grid - c) / 5.0) ** 2) + 0.5 * np.exp(-0.5 * ((grid - c - 300) / 5.0) ** 2)
            for c in (400.0, 900.0, 1400.0)]
    return ReferenceSet(grid, ["alpha", "beta", "gamma"], np.array(rows), "raman")


def _wired(faults: str = "", tamper: dict | None = None, time_scale: float = 0.0):
    """An Analyzer whose fake transport is answered by a SimulatedAnalyzer (instant acquisitions).

    ``tamper``: {(command, n): bytes or None} -- the n-th answer to that command is
    replaced by those bytes (None: lost).
    """
    clock = Clock()
    device = SimulatedAnalyzer(_refset(), sample="beta", seed=3, faults=FaultSpec.parse(faults),
                               time_scale=time_scale, clock=clock)
    seen: dict[str, int] = {}
    tamper = tamper or {}

    def respond(line: str):
        reply = device.handle(line.encode())
        seen[line] = seen.get(line, 0) + 1
        if (line, seen[line]) in tamper:
            return tamper[(line, seen[line])]
        return None if reply is None else reply.frame

    transport = FakeTransport(respond, clock, chunk=4096)
    analyzer = Analyzer(Protocol(transport, timeout=TIMEOUT, clock=clock), sleep=clock.sleep, clock=clock)
    return analyzer, device, transport


def test_analyzer_acquires_a_verified_spectrum_with_all_metadata():
    analyzer, device, t = _wired()
    s = analyzer.acquire(integration_ms=20, averages=3, laser_mw=50)
    assert np.array_equal(s.intensity, device.last.intensity.astype(float))
    assert np.array_equal(s.wavenumber, device.instrument.axis)
    md = s.metadata
    assert (md["maker"], md["model"], md["serial"], md["firmware"]) == ("fol", "SIM-RAMAN-785", "SIM00003", "1.0.0")
    assert md["technique"] == "raman" and md["unit"] == "counts"
    assert md["integration_time_ms"] == 20 and md["averages"] == 3 and md["laser_power_mw"] == 50
    assert md["excitation_wavelength_nm"] == 785 and md["resolution_cm1"] == 8
    assert md["detector_temperature_c"] == device.last.temperature_c
    assert md["device_errors"] == [] and md["flags"] == [] and md["source"] == "fake0"
    assert md["acquired_utc"].endswith("Z")
    spec_at = t.lines.index("FETC:SPEC?")
    assert t.lines[spec_at + 1] == "FETC:CRC?"


def test_lost_error_report_after_init_repeats_the_acquisition():
    # the first SYST:ERR? after INIT goes unanswered -> resync (*CLS) -> the flags may be gone
    # (SYST:ERR? 1 checks the settings, 2 is the first after INIT)
    analyzer, device, t = _wired(faults="warm=1", tamper={("SYST:ERR?", 2): None})
    s = analyzer.acquire()
    assert device.commands["INIT"] == 2  # the first acquisition could not be trusted
    assert s.metadata["flags"] == ["detector_warm"]
    assert s.metadata["device_errors"] == [[203, "Detector not at temperature"]]
    assert np.array_equal(s.intensity, device.last.intensity.astype(float))


def test_an_acquisition_already_running_is_waited_for_and_polls_are_spaced():
    analyzer, device, t = _wired(time_scale=1.0)
    for line in (b"CONF:INT 1000", b"INIT"):  # left running by an earlier session
        device.handle(line)
    start = t.clock.t
    s = analyzer.acquire(integration_ms=200, averages=1)
    assert device.commands["INIT"] == 2 and s.metadata["device_errors"] == []
    assert t.clock.t - start >= 1.05 + 0.25  # the old acquisition, then the new one
    polls = t.lines.count("STAT:ACQ?")
    assert 10 <= polls <= (t.clock.t - start) / 0.05 + 1


def test_vanished_acquisition_data_is_measured_again():
    analyzer, device, _ = _wired(tamper={("FETC:SPEC?", 1): b"#10\n"})
    s = analyzer.acquire()
    assert device.commands["INIT"] == 2
    assert np.array_equal(s.intensity, device.last.intensity.astype(float))


def test_an_axis_that_is_not_increasing_is_refused():
    axis = np.linspace(2000.0, 200.0, 1024, dtype="<f4").tobytes()
    analyzer, _, _ = _wired(tamper={("SENS:AXIS?", 1): block(axis), ("FETC:CRC?", 1): crc_line(axis)})
    with pytest.raises(DeviceError, match=r"port fake0: the wavenumber axis \(SENS:AXIS\?\) is not finite and strictly"):
        analyzer.acquire()


def test_refused_settings_name_the_device_error():
    analyzer, device, _ = _wired(tamper={("SYST:ERR?", 1): b'-221,"Settings conflict"\n'})
    with pytest.raises(DeviceError, match=r'refused the settings integration_ms=30, averages=5, laser_mw=100: -221,"Settings conflict"'):
        analyzer.acquire(integration_ms=30)


def test_interlock_raises_naming_the_port():
    analyzer, device, _ = _wired(faults="interlock=1")
    with pytest.raises(DeviceError, match=r"port fake0: laser interlock open \(device error 201\)"):
        analyzer.acquire()


def test_saturation_is_kept_and_flagged():
    analyzer, device, _ = _wired()
    s = analyzer.acquire(integration_ms=60000, averages=1, laser_mw=500)
    assert s.metadata["flags"] == ["saturated"] and device.last.saturated
    assert s.intensity.max() <= 65535


def test_settings_outside_the_page_ranges_are_refused_before_sending():
    with pytest.raises(ConfigError, match="outside 1..60000"):
        check_settings(integration_ms=0)
    with pytest.raises(ConfigError, match="whole number"):
        check_settings(averages=2.5)
    with pytest.raises(ConfigError, match="outside 0..500"):
        check_settings(laser_mw=501)


def test_quality_flags_from_device_errors():
    assert quality_flags([[203, "x"], [202, "y"], [-113, "z"]]) == ["detector_warm", "saturated"]
    assert quality_flags([]) == []


# ----------------------------------------------------------------------------- malformed input from the line
# Each broken answer repeats for ever: the exchange must end in a DeviceError naming the port, one line, within a
# bounded (fake) time; never another exception, never a wrong value.

BROKEN_LINES = {
    "empty line": b"\n",
    "not ASCII": b"\xff\xfe\x00\n",
    "no line end (5000 bytes)": b"1" * 5000,
    "NaN": b"nan\n",
    "inf": b"inf\n",
    "overflowing exponent": b"1e999\n",
    "hex": b"0x10\n",
    "decimal comma": b"1,5\n",
    "two answers at once": b"100\n100\n",
    "truncated (no LF)": b"10",
}


@pytest.mark.parametrize("case", sorted(BROKEN_LINES))
def test_broken_line_answers_end_in_one_clear_error(case):
    p, t, clock = make({"CONF:INT?": [BROKEN_LINES[case]]}, chunk=64)
    start = clock.t
    with pytest.raises(DeviceError) as e:
        p.query_stable("CONF:INT?", parse_number)
    message = str(e.value)
    assert message.startswith("port fake0: ") and "\n" not in message and len(message) < 400, message
    assert clock.t - start < 40 * (TIMEOUT + p.quiet_s)


def _blocks():
    full = block(PAYLOAD)
    out = {f"truncated at {k} bytes": full[:k] for k in (1, 2, 3, 6, len(full) // 2, len(full) - 1)}
    out.update({
        "huge declared length": b"#9999999999" + PAYLOAD + b"\n",
        "length field of 9 digits, tiny payload": b"#9000000016" + PAYLOAD[:16] + b"\n",
        "5000 junk bytes before the header": b"\x00" * 5000 + full,
        "header digit count not a digit": b"#x0064" + PAYLOAD + b"\n",
        "payload not a whole number of floats": b"#15abcde\n",
        "two blocks at once": full + full,
        "indefinite-length block": b"#0" + PAYLOAD + b"\n",
    })
    return out


BROKEN_BLOCKS = _blocks()


@pytest.mark.parametrize("case", sorted(BROKEN_BLOCKS))
def test_broken_blocks_end_in_one_clear_error(case):
    p, t, clock = make({"FETC:SPEC?": [BROKEN_BLOCKS[case]], "FETC:CRC?": [crc_line(PAYLOAD)]}, chunk=4096)
    start = clock.t
    with pytest.raises(DeviceError) as e:
        p.query_block("FETC:SPEC?")
    message = str(e.value)
    assert message.startswith("port fake0: ") and "\n" not in message and len(message) < 400, message
    assert clock.t - start < 40 * (TIMEOUT + p.quiet_s)


@pytest.mark.parametrize("values, problem", [
    (np.r_[np.linspace(200, 1800, 255), np.nan], "not finite and strictly increasing"),
    (np.r_[np.linspace(200, 1800, 255), np.inf], "not finite and strictly increasing"),
    (np.linspace(1800, 200, 256), "not finite and strictly increasing"),
])
def test_axis_blocks_with_nan_inf_or_wrong_order_are_refused(values, problem):
    axis = values.astype("<f4").tobytes()
    analyzer, _, _ = _wired(tamper={("SENS:AXIS?", 1): block(axis), ("FETC:CRC?", 1): crc_line(axis)})
    with pytest.raises(DeviceError, match=problem):
        analyzer.acquire()
