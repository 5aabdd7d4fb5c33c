"""The device side of docs/analyzer-protocol.md: a simulated analyzer on a pty or TCP port.

``SimulatedAnalyzer`` is the instrument: it takes one command line at a time and
returns the response frame (or none), exactly as the page specifies, including the
simulator-only ``SIM:SAMP "<spec>"`` / ``SIM:SAMP?`` and ``-113`` for unknown headers.
It keeps the last acquisition until the next ``INIT`` (so the host can re-fetch after
a CRC failure) and an acquisition takes (integration x averages + 50 ms) x
``time_scale``. Its spectra come from :mod:`drivers.simulator.model`.

``AnalyzerServer`` puts an analyzer on a byte stream: a pseudo-terminal whose slave
is symlinked at ``link`` (open it like a serial port), or a TCP listener on a loopback
address (open it as ``socket://HOST:PORT``). One thread serves one connection at a
time, like a serial line. Every response frame goes through the fault injector
(:mod:`drivers.simulator.faults`). A ``disconnect`` fault closes the pty (a new one
takes over the link) or drops the TCP client. All waits are bounded and watch the
stop event, so ``stop()`` always returns.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import socket
import threading
import time
import tty
import zlib
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fol.errors import DeviceError, FolError, UsageError

from drivers.protocol import DOCUMENTED_ERRORS, MAX_COMMAND
from drivers.simulator.faults import FaultSpec, Plan, plan
from drivers.simulator.model import (DEFAULT_SETTINGS, NOMINAL_TEMPERATURE_C, WARM_TEMPERATURE_C, Conditions, Instrument,
                    ReferenceSet, make_instrument, mixture, parse_sample, render)

QUEUE_LENGTH = 16
OVERHEAD_MS = 50.0
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
            raise UsageError("time_scale must be >= 0")
        self.refset = refset
        self.instrument = instrument or make_instrument(refset.technique, seed or 0)
        self.faults = faults or FaultSpec()
        self.time_scale = float(time_scale)
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self.errors: deque[tuple[int, str]] = deque()
        self.commands: Counter = Counter()
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
        self._done_at = 0.0

    def set_sample(self, spec: str) -> None:
        """Point the analyzer at another sample (raises UsageError for a bad spec)."""
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
        if acq.saturated:
            self.push(202)
        if acq.warm:
            self.push(203)

    def _start(self) -> None:
        """``INIT``: refuse (201), or measure now and report completion after the acquisition time."""
        if self.state == "BUSY":
            self.push(-200)
            return
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
        self._done_at = self._clock() + seconds * self.time_scale

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

    def _fetch(self) -> Reply:
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
            "STAT:ACQ?": lambda a: _line(self.state),
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


# ----------------------------------------------------------------------------- byte streams


class _Channel:
    """A non-blocking byte stream: ``recv`` and ``send`` with timeouts, over ``_read``/``_write``.

    ``recv`` returns b"" on timeout and None when the peer is gone; ``send`` returns False
    if the data could not all be written before the deadline or the peer is gone.
    """

    fd: object  # what select() waits on

    def _read(self) -> bytes | None:
        raise NotImplementedError

    def _write(self, view: memoryview) -> int:
        raise NotImplementedError

    def recv(self, timeout: float) -> bytes | None:
        if not select.select([self.fd], [], [], timeout)[0]:
            return b""
        try:
            return self._read()
        except BlockingIOError:
            return b""
        except OSError:
            return None

    def send(self, data: bytes, deadline: float) -> bool:
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self.fd], [], left)[1]:
                return False
            try:
                view = view[self._write(view):]
            except BlockingIOError:
                continue
            except OSError:
                return False
        return True


class _PtyChannel(_Channel):
    """The master side of a pseudo-terminal."""

    def __init__(self, link: str):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing, no XON/XOFF: a clean byte pipe
        os.set_blocking(self.master, False)
        tmp = f"{link}.{os.getpid()}.{self.master}.tmp"
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, link)  # atomic: a host opening the link gets the old or the new pty
        self.name = os.ttyname(self.slave)
        self.fd = self.master

    def _read(self) -> bytes | None:
        return os.read(self.master, 4096)

    def _write(self, view: memoryview) -> int:
        return os.write(self.master, view)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class _SocketChannel(_Channel):
    """One accepted TCP connection."""

    def __init__(self, conn: socket.socket):
        self.conn = self.fd = conn
        conn.setblocking(False)

    def _read(self) -> bytes | None:
        return self.conn.recv(4096) or None

    def _write(self, view: memoryview) -> int:
        return self.conn.send(view)

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


def loopback_address(host: str, port: int) -> tuple[str, int]:
    """``(host, port)`` checked to be a loopback address: the simulator never listens on a network."""
    address = "127.0.0.1" if host in ("", "localhost") else host
    try:
        if not ipaddress.ip_address(address).is_loopback:
            raise UsageError(f"the simulator only listens on loopback addresses, not {host}")
    except ValueError:
        raise UsageError(f"not an IP address: {host!r}") from None
    if not 0 <= int(port) <= 65535:
        raise UsageError(f"TCP port {port} is outside 0..65535")
    return address, int(port)


class AnalyzerServer:
    """Serves a ``SimulatedAnalyzer`` on a pty (``link``) or a loopback TCP port (``tcp``).

    ``faults`` (default: the device's) are applied to every response frame with their
    own random stream (``seed``). ``stats`` counts frames, injected faults, connections
    and disconnects; ``failure`` holds an unexpected exception of the serving thread.
    Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(self, device: SimulatedAnalyzer, *, link: str | None = None, tcp: tuple[str, int] | None = None,
                 faults: FaultSpec | None = None, seed: int | None = None, write_timeout: float = 2.0):
        if (link is None) == (tcp is None):
            raise UsageError("give exactly one of link (a pty symlink path) or tcp (host, port)")
        self.device = device
        self.link = None if link is None else os.path.abspath(link)
        self.faults = faults if faults is not None else device.faults
        self.write_timeout = float(write_timeout)
        self.stats: Counter = Counter()
        self.failure: BaseException | None = None
        self._rng = np.random.default_rng(None if seed is None else [seed, 7])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._pty: _PtyChannel | None = None
        if tcp is not None:
            address = loopback_address(*tcp)
            self._listener = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self._listener.bind(address)
            except OSError as e:
                self._listener.close()
                raise DeviceError(f"cannot listen on {address[0]}:{address[1]}: {e.strerror or e}") from None
            self._listener.listen(1)

    @property
    def url(self) -> str:
        """What a host opens: the pty link, or ``socket://HOST:PORT``."""
        if self.link:
            return self.link
        host, port = self._listener.getsockname()[:2]
        return f"socket://{host}:{port}"

    def start(self) -> "AnalyzerServer":
        if self.link:
            if os.path.lexists(self.link) and not os.path.islink(self.link):
                raise UsageError(f"{self.link} exists and is not a symlink: refusing to replace it")
            self._pty = _PtyChannel(self.link)
        self._thread = threading.Thread(target=self._run, name=f"fol-sim {self.url}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the port and remove the link."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._listener is not None:
            self._listener.close()
        if self._pty is not None:
            self._pty.close()
            if self.link and os.path.islink(self.link) and os.readlink(self.link) == self._pty.name:
                os.unlink(self.link)
            self._pty = None

    def __enter__(self) -> "AnalyzerServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- serving

    def _run(self) -> None:
        try:
            if self._pty is not None:
                self._run_pty()
            else:
                self._run_tcp()
        except BaseException as e:  # kept for the tests and `fol simulate serve` to report
            self.failure = e

    def _run_pty(self) -> None:
        while not self._stop.is_set():
            if self._serve(self._pty) == "disconnect":
                old, self._pty = self._pty, _PtyChannel(self.link)  # relink first, then hang up
                old.close()
                self.stats["disconnects"] += 1

    def _run_tcp(self) -> None:
        while not self._stop.is_set():
            if not select.select([self._listener], [], [], 0.05)[0]:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.stats["connections"] += 1
            channel = _SocketChannel(conn)
            try:
                if self._serve(channel) == "disconnect":
                    self.stats["disconnects"] += 1
            finally:
                channel.close()

    def _serve(self, channel) -> str:
        """Answer command lines until stopped, the peer leaves, or a disconnect fault."""
        buf = bytearray()
        while not self._stop.is_set():
            data = channel.recv(0.05)
            if data is None:
                return "closed"
            buf += data
            while (end := buf.find(b"\n")) >= 0:
                line = bytes(buf[:end]).rstrip(b"\r")
                del buf[: end + 1]
                reply = self.device.handle(line)
                if reply is None:
                    continue
                wait = reply.not_before - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return "stopped"
                outcome = self._send(channel, reply.frame)
                if outcome != "ok":
                    return outcome
            if len(buf) >= MAX_COMMAND:  # an over-long line: the device rejects it
                self.device.handle(bytes(buf))
                buf.clear()
        return "stopped"

    def _send(self, channel, frame: bytes) -> str:
        p = plan(frame, self.faults, self._rng) if self.faults.on_wire else Plan(((0.0, frame),), False, ())
        self.stats["frames"] += 1
        self.stats.update(p.faults)
        for pause, data in p.chunks:
            if pause and self._stop.wait(pause):
                return "stopped"
            if data and not channel.send(data, time.monotonic() + self.write_timeout):
                self.stats["write_failures"] += 1
                return "closed" if isinstance(channel, _SocketChannel) else "ok"
        return "disconnect" if p.disconnect else "ok"
