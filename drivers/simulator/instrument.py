"""The simulated instrument: the state machine of docs/analyzer-protocol.md, with no I/O.

``SimulatedAnalyzer`` takes one command line at a time and returns the response frame
(or none), exactly as the page specifies, including the simulator-only
``SIM:SAMP "<spec>"`` / ``SIM:SAMP?`` and ``-113`` for unknown headers. It keeps the
last acquisition until the next ``INIT`` (so the host can re-fetch after a CRC failure)
and an acquisition takes (integration x averages + 50 ms) x ``time_scale``, at least
20 ms. Its spectra
come from :mod:`drivers.simulator.model`; the byte stream it is served on is
:mod:`drivers.simulator.server`.

Device faults (``faults``): ``interlock``, ``warm`` and ``stale_done`` (see
:mod:`drivers.simulator.faults`).
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fol.errors import FolError, ConfigError

from drivers.protocol import DOCUMENTED_ERRORS, MAX_COMMAND
from drivers.simulator.faults import FaultSpec
from drivers.simulator.model import (DEFAULT_SETTINGS, NOMINAL_TEMPERATURE_C, WARM_TEMPERATURE_C, Conditions, Instrument,
                                     ReferenceSet, make_instrument, mixture, parse_sample, render)

QUEUE_LENGTH = 16
OVERHEAD_MS = 50.0
#: no acquisition is quicker than this, whatever the time scale (a real detector never reports at once)
MIN_ACQUISITION_S = 0.1
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_LIMITS = {"CONF:INT": ("integration_ms", 1.0, 60000.0), "CONF:AVG": ("averages", 1, 1000),
           "CONF:LAS": ("laser_mw", 0.0, 500.0)}


@dataclass(frozen=True)
class Acquisition:
    """One completed (or running) acquisition: what the simulator measured."""

    number: int
    intensity: np.ndarray  # float32, as sent
    settings: dict
    saturated: bool
    warm: bool
    temperature_c: float
    sample: str


@dataclass(frozen=True)
class Reply:
    """A response frame and the clock time before which it must not be sent."""

    frame: bytes
    not_before: float = 0.0


def _line(text: str) -> Reply:
    return Reply(text.encode("ascii") + b"\n")


def _number(value: float) -> str:
    return f"{value:g}"


class SimulatedAnalyzer:
    """A Raman or FTIR analyzer that answers the protocol page's commands (one line at a time).

    ``sample`` is the initial sample spec; ``seed`` fixes the instrument unit and every
    random draw; ``faults`` supplies the device faults (``interlock``, ``warm``).
    """

    def __init__(self, refset: ReferenceSet, *, sample: str = "blank", seed: int | None = None,
                 faults: FaultSpec | None = None, time_scale: float = 1.0, instrument: Instrument | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if time_scale < 0:
            raise ConfigError("time_scale must be >= 0")
        self.refset = refset
        self.instrument = instrument or make_instrument(refset.technique, seed or 0)
        self.faults = faults or FaultSpec()
        self.time_scale = float(time_scale)
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self.errors: deque[tuple[int, str]] = deque()
        self.commands: Counter = Counter()
        self.stats: Counter = Counter()  # device faults injected
        self.history: deque[str] = deque(maxlen=100_000)
        self._acquisitions = 0
        self._last_crc = zlib.crc32(b"")
        self.sample, self._fractions = "blank", {}
        self.set_sample(sample)
        self._reset()
        self._handlers = self._table()

    # -- state

    def _reset(self) -> None:
        self.settings = dict(DEFAULT_SETTINGS[self.instrument.technique])
        self.state = "IDLE"
        self.temperature_c = NOMINAL_TEMPERATURE_C
        self._pending: Acquisition | None = None
        self._last: Acquisition | None = None
        self._previous: Acquisition | None = None  # what a stale_done firmware bug sends
        self._stale_said_done = False
        self._done_at = 0.0

    def set_sample(self, spec: str) -> None:
        """Point the analyzer at another sample (raises ConfigError for a bad spec)."""
        fractions = parse_sample(spec, self.refset)
        with self._lock:
            self.sample, self._fractions = str(spec).strip(), fractions

    @property
    def last(self) -> Acquisition | None:
        """The last completed acquisition (None before the first or after ``INIT``/``*RST``)."""
        with self._lock:
            self._update()
            return self._last

    def push(self, code: int) -> None:
        """Add an error to the queue; a full queue replaces its newest entry with -350."""
        if len(self.errors) >= QUEUE_LENGTH:
            self.errors[-1] = (-350, DOCUMENTED_ERRORS[-350])
        else:
            self.errors.append((code, DOCUMENTED_ERRORS[code]))

    def _update(self) -> None:
        """Complete a running acquisition whose time is up."""
        if self.state == "BUSY" and self._clock() >= self._done_at:
            self._complete()

    def _complete(self) -> None:
        acq = self._pending
        self.state, self._last, self._pending = "DONE", acq, None
        self._stale_said_done = False
        if acq.saturated:
            self.push(202)
        if acq.warm:
            self.push(203)

    def _start(self) -> None:
        """``INIT``: refuse (201), or measure now and report completion after the acquisition time."""
        if self.state == "BUSY":
            self.push(-200)
            return
        if self._last is not None:
            self._previous = self._last
        self._last = None
        if self.faults.interlock and self._rng.random() < self.faults.interlock:
            self.push(201)
            self.state = "FAIL"
            return
        warm = bool(self.faults.warm and self._rng.random() < self.faults.warm)
        s = dict(self.settings)
        conditions = Conditions(s["integration_ms"], s["averages"], s["laser_mw"], warm)
        y, saturated = render(self.instrument, mixture(self.refset, self.instrument, self._fractions), 1,
                              self._rng, conditions)
        self.temperature_c = round((WARM_TEMPERATURE_C if warm else NOMINAL_TEMPERATURE_C)
                                   + float(self._rng.normal(0.0, 0.03)), 1)
        self._acquisitions += 1
        self._pending = Acquisition(self._acquisitions, y[0].astype("<f4"), s, bool(saturated[0]), warm,
                                    self.temperature_c, self.sample)
        self.state = "BUSY"
        seconds = (s["integration_ms"] * s["averages"] + OVERHEAD_MS) / 1000.0
        self._done_at = self._clock() + max(MIN_ACQUISITION_S, seconds * self.time_scale)

    def _block(self, payload: bytes) -> Reply:
        self._last_crc = zlib.crc32(payload)
        n = str(len(payload)).encode()
        return Reply(b"#" + str(len(n)).encode() + n + payload + b"\n")

    # -- commands

    def _set(self, header: str, arg: str) -> None:
        key, low, high = _LIMITS[header]
        if not _NUMBER.fullmatch(arg):
            self.push(-102)
            return
        value = float(arg)
        if not low <= value <= high or (key == "averages" and value != int(value)):
            self.push(-222)
            return
        if self.state == "BUSY":
            self.push(-221)
            return
        if key == "laser_mw" and self.instrument.technique == "ftir":
            return  # the page: FTIR ignores the laser power
        self.settings[key] = int(value) if key == "averages" else value

    def _status(self) -> Reply:
        """``STAT:ACQ?``; with the ``stale_done`` fault a running acquisition may be reported DONE."""
        if self.state == "BUSY" and self.faults.stale_done and self._rng.random() < self.faults.stale_done:
            self._stale_said_done = True
            self.stats["stale_done"] += 1
            return _line("DONE")
        return _line(self.state)

    def _fetch(self) -> Reply:
        if self.state == "BUSY" and self._stale_said_done and self._previous is not None:
            return self._block(self._previous.intensity.tobytes())  # the firmware bug: the old buffer
        if self._last is None:
            self.push(-230)
            return self._block(b"")
        return self._block(self._last.intensity.tobytes())

    def _measure(self) -> Reply:
        """``MEAS:SPEC?``: INIT, wait, fetch in one query (the answer waits for completion)."""
        self._start()
        if self.state != "BUSY":
            return self._fetch()
        done_at = self._done_at
        self._complete()
        reply = self._fetch()
        return Reply(reply.frame, done_at)

    def _sample(self, arg: str) -> None:
        spec = arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "\"'" else arg
        try:
            self.set_sample(spec)
        except FolError:
            self.push(-222)

    def _table(self) -> dict[str, Callable[[str], Reply | None]]:
        ins = self.instrument
        laser = lambda: 0.0 if ins.technique == "ftir" else self.settings["laser_mw"]  # noqa: E731
        opc_time = lambda: self._done_at if self.state == "BUSY" else 0.0  # noqa: E731
        return {
            "*IDN?": lambda a: _line(f"{ins.maker},{ins.model},{ins.serial},{ins.firmware}"),
            "*RST": lambda a: self._reset(),
            "*CLS": lambda a: self.errors.clear(),
            "*OPC?": lambda a: Reply(b"1\n", opc_time()),
            "SYST:ERR?": lambda a: _line('{},"{}"'.format(*(self.errors.popleft() if self.errors
                                                            else (0, DOCUMENTED_ERRORS[0])))),
            "SYST:TECH?": lambda a: _line(ins.technique.upper()),
            "SYST:TEMP?": lambda a: _line(f"{self.temperature_c:.1f}"),
            "CONF:EXC?": lambda a: _line(_number(ins.excitation_nm)),
            "CONF:RES?": lambda a: _line(_number(ins.resolution_cm1)),
            "CONF:INT": lambda a: self._set("CONF:INT", a),
            "CONF:INT?": lambda a: _line(_number(self.settings["integration_ms"])),
            "CONF:AVG": lambda a: self._set("CONF:AVG", a),
            "CONF:AVG?": lambda a: _line(str(self.settings["averages"])),
            "CONF:LAS": lambda a: self._set("CONF:LAS", a),
            "CONF:LAS?": lambda a: _line(_number(laser())),
            "SENS:UNIT?": lambda a: _line(ins.unit.upper()),
            "SENS:AXIS?": lambda a: self._block(ins.axis.astype("<f4").tobytes()),
            "INIT": lambda a: self._start(),
            "STAT:ACQ?": lambda a: self._status(),
            "FETC:SPEC?": lambda a: self._fetch(),
            "FETC:CRC?": lambda a: _line(f"0x{self._last_crc:08X}"),
            "MEAS:SPEC?": lambda a: self._measure(),
            "SIM:SAMP": self._sample,
            "SIM:SAMP?": lambda a: _line(f'"{self.sample}"'),
        }

    def handle(self, line: bytes) -> Reply | None:
        """Execute one command line (without its LF); the reply to send, or None."""
        with self._lock:
            self._update()
            if len(line) >= MAX_COMMAND:
                self.push(-102)
                return None
            try:
                text = line.decode("ascii").strip()
            except UnicodeDecodeError:
                self.push(-102)
                return None
            if not text:
                return None  # a bare LF (the host's resync) is not a command
            header, _, arg = text.partition(" ")
            header = header.lstrip(":").upper()
            self.commands[header] += 1
            self.history.append(header)
            handler = self._handlers.get(header)
            if handler is None:
                self.push(-113)
                return None
            arg = arg.strip()
            if arg and header not in ("CONF:INT", "CONF:AVG", "CONF:LAS", "SIM:SAMP"):
                self.push(-102)
                return None
            return handler(arg)
