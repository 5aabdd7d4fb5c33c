"""SCPI exchanges with an analyzer, exactly as docs/analyzer-protocol.md defines them.

This layer turns a byte transport into checked answers:

* **Framing.** Commands are ASCII lines ending in LF. An answer is one ASCII line
  (a trailing CR is tolerated) or one IEEE 488.2 definite-length block
  (``#`` d n payload LF) holding little-endian float32 values.
* **Stray bytes.** The input buffer is reset before every exchange; up to
  ``MAX_JUNK`` bytes of junk before a block header are skipped.
* **Timeouts.** Every read has a deadline. On a timeout the host sends a bare LF
  and ``*CLS`` (a *resync*) and retries the exchange once, then fails.
* **Integrity.** After every block the host asks ``FETC:CRC?`` and compares the
  device's CRC-32 with ``zlib.crc32`` of what it received. A mismatch, a short
  block or a malformed header re-issues the block query, up to ``retries`` times;
  a block that never passes is discarded and a ``DeviceError`` raised.
* **Garbled lines.** A line that is not printable ASCII or does not parse as the
  expected answer is re-queried (up to ``retries`` times). ASCII answers carry no
  checksum, so values that matter are read with :meth:`Protocol.query_stable`:
  the query is repeated until two consecutive answers agree.
* **Error queue.** :meth:`Protocol.drain_errors` pops ``SYST:ERR?`` until
  ``0,"No error"`` and says whether the report is complete (an entry lost to a
  timeout or garbled on the line cannot be asked for again).

Every wait is bounded, so an exchange never hangs: a silent device costs at most
two timeouts before the ``DeviceError``.
"""

from __future__ import annotations

import operator
import re
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fol.errors import DeviceError

#: junk bytes the host discards before a block header (the page's limit)
MAX_JUNK = 4096
#: longest ASCII answer accepted
MAX_LINE = 1024
#: largest block payload accepted (262,144 float32 values); a larger length field is corruption
MAX_BLOCK = 1 << 20
#: longest command line the page allows, LF included
MAX_COMMAND = 256
CRC_QUERY = "FETC:CRC?"

#: the error codes and messages the page documents (message compared case-insensitively,
#: before any ``;`` detail a device may append, as SCPI allows)
DOCUMENTED_ERRORS = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -113: "Undefined header",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -230: "Data corrupt or stale",
    -350: "Queue overflow",
    201: "Laser interlock open",
    202: "Detector saturated",
    203: "Detector not at temperature",
}
_CODE_OF_MESSAGE = {m.casefold(): c for c, m in DOCUMENTED_ERRORS.items()}

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CRC = re.compile(r"0[xX][0-9A-Fa-f]{8}")
_ERROR = re.compile(r'([+-]?\d+),"(.*)"')


class BadResponse(ValueError):
    """An answer arrived but is not what the page allows (garbled, truncated, malformed)."""


class _ShortBlock(BadResponse):
    """A block whose payload stopped before its announced length."""


class _NoAnswer(Exception):
    """The deadline passed before a complete answer (or block header) arrived."""

    def __init__(self, partial: bytes):
        super().__init__(partial)
        self.partial = partial


# ----------------------------------------------------------------------------- parsers
# Each takes one decoded answer line and returns a value or raises BadResponse.


def parse_text(line: str) -> str:
    return line


def parse_number(line: str) -> float:
    """A decimal number (``.`` separator, optional exponent); NaN/inf and locale forms refused."""
    if not _NUMBER.fullmatch(line):
        raise BadResponse(f"not a number: {line!r}")
    return float(line)


def parse_count(line: str) -> int:
    """A whole number, written as an integer or as a float with no fraction (``16``, ``16.0``)."""
    value = parse_number(line)
    if value != int(value):
        raise BadResponse(f"not a whole number: {line!r}")
    return int(value)


def parse_idn(line: str) -> tuple[str, str, str, str]:
    """``<maker>,<model>,<serial>,<firmware>`` with a non-empty maker and model."""
    fields = tuple(f.strip() for f in line.split(","))
    if len(fields) != 4 or not fields[0] or not fields[1]:
        raise BadResponse(f"not a *IDN? answer (maker,model,serial,firmware): {line!r}")
    return fields  # type: ignore[return-value]


def choice(*options: str) -> Callable[[str], str]:
    """A parser accepting one of ``options`` (case-insensitive), returned upper-case."""

    def parse(line: str) -> str:
        word = line.strip().upper()
        if word not in options:
            raise BadResponse(f"expected one of {', '.join(options)}, got {line!r}")
        return word

    return parse


def parse_crc(line: str) -> int:
    """``0x`` + 8 hex digits."""
    if not _CRC.fullmatch(line):
        raise BadResponse(f"not a CRC-32 (0x + 8 hex digits): {line!r}")
    return int(line[2:], 16)


def parse_error(line: str) -> tuple[int, str]:
    """``<code>,"<message>"``; a documented code with another code's or a wrong message is garbled."""
    m = _ERROR.fullmatch(line)
    if not m:
        raise BadResponse(f'not a SYST:ERR? answer (<code>,"<message>"): {line!r}')
    code, message = int(m.group(1)), m.group(2).replace('""', '"')
    head = message.split(";", 1)[0].strip().casefold()
    documented = DOCUMENTED_ERRORS.get(code)
    if documented is not None and head != documented.casefold():
        raise BadResponse(f"error code {code} does not go with message {message!r}")
    if documented is None and _CODE_OF_MESSAGE.get(head, code) != code:
        raise BadResponse(f"message {message!r} belongs to another error code than {code}")
    return code, message


def decode_floats(payload: bytes) -> np.ndarray:
    """A block payload as float32 values (little-endian, as the page specifies)."""
    return np.frombuffer(payload, dtype="<f4")


@dataclass(frozen=True)
class ErrorReport:
    """Errors popped from the queue; ``complete`` is False if any may have been lost."""

    errors: list[tuple[int, str]]
    complete: bool


# ----------------------------------------------------------------------------- exchanges


class Protocol:
    """Checked SCPI exchanges over a transport (see the module docstring for the rules).

    ``transport`` needs ``port``, ``write``, ``read_some(limit, timeout)``,
    ``read_exact(n, timeout)`` and ``reset_input_buffer()``; ``baudrate`` (if it has
    one) stretches the deadline of long blocks. ``counters`` counts what went wrong
    (``timeouts``, ``resyncs``, ``malformed``, ``short_blocks``, ``crc_mismatches``).
    """

    def __init__(self, transport, *, timeout: float = 2.0, retries: int = 3,
                 clock: Callable[[], float] = time.monotonic):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.transport = transport
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._clock = clock
        self._buf = bytearray()
        self.counters: Counter = Counter()

    @property
    def port(self) -> str:
        return self.transport.port

    @property
    def resyncs(self) -> int:
        """How many times a bare LF + ``*CLS`` was sent (each one empties the error queue)."""
        return self.counters["resyncs"]

    # -- low level

    def _begin(self, line: str) -> None:
        """Discard stray input, then send one command line."""
        data = line.encode("ascii") + b"\n"
        if len(data) > MAX_COMMAND:
            raise ValueError(f"command longer than {MAX_COMMAND} bytes: {line[:40]!r}...")
        self._buf.clear()
        self.transport.reset_input_buffer()
        self.transport.write(data)

    def resync(self) -> None:
        """The page's recovery after a timeout: a bare LF (ends any partial command), then ``*CLS``."""
        self.counters["resyncs"] += 1
        self._buf.clear()
        self.transport.write(b"\n*CLS\n")

    def _fill(self, deadline: float, limit: int = 4096) -> None:
        left = deadline - self._clock()
        if left <= 0:
            raise _NoAnswer(bytes(self._buf))
        self._buf += self.transport.read_some(limit, left)

    def _line(self, deadline: float) -> str:
        """One answer line, CR/LF stripped, checked to be printable ASCII."""
        while (end := self._buf.find(b"\n")) < 0:
            if len(self._buf) > MAX_LINE:
                raise BadResponse(f"no line end within {MAX_LINE} bytes")
            self._fill(deadline)
        raw = bytes(self._buf[:end]).rstrip(b"\r")
        del self._buf[: end + 1]
        if any(b < 0x20 or b > 0x7E for b in raw):
            raise BadResponse(f"answer is not printable ASCII: {raw[:40]!r}")
        return raw.decode("ascii").strip()

    def _take(self, k: int, end: float) -> bytes:
        """``k`` bytes of a block; a stall of one timeout, or passing ``end``, makes it short."""
        while len(self._buf) < k:
            left = min(self.timeout, end - self._clock())
            chunk = self.transport.read_exact(k - len(self._buf), left) if left > 0 else b""
            if not chunk:
                raise _ShortBlock(f"block stopped after {len(self._buf)} of {k} bytes")
            self._buf += chunk
        out = bytes(self._buf[:k])
        del self._buf[:k]
        return out

    def _block(self) -> bytes:
        """One definite-length block: skip junk to ``#``, parse the header, read payload and LF."""
        deadline = self._clock() + self.timeout
        skipped = 0
        while (start := self._buf.find(b"#")) < 0:
            skipped += len(self._buf)
            self._buf.clear()
            if skipped > MAX_JUNK:
                raise BadResponse(f"more than {MAX_JUNK} bytes of junk before the block header")
            self._fill(deadline, MAX_JUNK)
        if skipped + start > MAX_JUNK:
            raise BadResponse(f"more than {MAX_JUNK} bytes of junk before the block header")
        del self._buf[: start + 1]
        while not self._buf:
            self._fill(deadline)
        digits = self._buf[0] - 0x30
        if not 1 <= digits <= 9:
            raise BadResponse(f"malformed block header: '#' followed by {bytes(self._buf[:1])!r}")
        while len(self._buf) < 1 + digits:
            self._fill(deadline)
        field = bytes(self._buf[1: 1 + digits])
        del self._buf[: 1 + digits]
        if not field.isdigit():
            raise BadResponse(f"malformed block length field {field!r}")
        n = int(field)
        if n % 4 or n > MAX_BLOCK:
            raise BadResponse(f"block length {n} is not a whole number of float32 values up to {MAX_BLOCK} bytes")
        transfer = (n + 2) * 10 / float(getattr(self.transport, "baudrate", 115200) or 115200)
        end = self._clock() + self.timeout + 1.5 * transfer
        data = self._take(n + 1, end)
        payload, last = data[:n], data[n:]
        if last == b"\r":
            last = self._take(1, end)
        if last != b"\n":
            raise BadResponse(f"block of {n} bytes is not followed by LF (got {last!r}): corrupt length field?")
        return payload

    def _no_answer(self, command: str, e: _NoAnswer, retried: bool) -> None:
        """Count a timeout; resync before the one retry, or fail after it."""
        self.counters["timeouts"] += 1
        if retried:
            what = f"an incomplete answer ({e.partial[:40]!r})" if e.partial else "no answer"
            raise DeviceError(f"port {self.port}: {what} to {command} within {self.timeout:g} s "
                              "(after a resync and one retry): is the analyzer on, connected, at this baud rate?")
        self.resync()

    def _give_up(self, command: str, attempts: int, problem: str) -> DeviceError:
        return DeviceError(f"port {self.port}: {attempts} unusable answers to {command} (last: {problem}): "
                           "not an analyzer that follows the protocol, or a very noisy line")

    # -- exchanges

    def command(self, line: str) -> None:
        """Send a command that has no response."""
        self._begin(line)

    def query(self, line: str, parse: Callable[[str], object] = parse_text):
        """One line query, parsed; garbled answers re-queried, a timeout resynced and retried once."""
        retried, bad = False, 0
        while True:
            self._begin(line)
            try:
                return parse(self._line(self._clock() + self.timeout))
            except _NoAnswer as e:
                self._no_answer(line, e, retried)
                retried = True
            except BadResponse as e:
                self.counters["malformed"] += 1
                if bad >= self.retries:
                    raise self._give_up(line, bad + 1, str(e)) from None
                bad += 1

    def query_stable(self, line: str, parse: Callable[[str], object] = parse_text,
                     same: Callable[[object, object], bool] = operator.eq, attempts: int = 5):
        """A line query repeated until two consecutive answers agree (``same``).

        ASCII answers have no checksum: a flipped digit still parses. Two independent
        corruptions that agree are very unlikely, so agreement is the confirmation.
        """
        previous = self.query(line, parse)
        for _ in range(attempts - 1):
            value = self.query(line, parse)
            if same(previous, value):
                return value
            previous = value
        raise DeviceError(f"port {self.port}: {attempts} answers to {line} disagree (last {previous!r}); "
                          "the serial line is unreliable")

    def query_block(self, line: str) -> bytes:
        """A block query whose payload passed the CRC-32 check (``b""`` for an empty ``#10`` block).

        An empty block carries no data to protect; ``FETC:CRC?`` is still asked, as the
        page says, but not compared, so a device that leaves the CRC of its previous
        block in place after ``#10`` is not mistaken for a corrupt line.
        """
        retried, bad = False, 0
        while True:
            self._begin(line)
            try:
                payload = self._block()
            except _NoAnswer as e:
                self._no_answer(line, e, retried)
                retried = True
                continue
            except BadResponse as e:
                problem = str(e)
                if isinstance(e, _ShortBlock):
                    self.counters["short_blocks"] += 1
                    self.resync()  # a read timed out: the page's recovery applies
                else:
                    self.counters["malformed"] += 1
            else:
                crc = self.query(CRC_QUERY, parse_crc)
                got = zlib.crc32(payload)
                if not payload or got == crc:
                    return payload
                self.counters["crc_mismatches"] += 1
                problem = f"CRC-32 of the data received 0x{got:08X}, device says 0x{crc:08X}"
            if bad >= self.retries:
                raise DeviceError(f"port {self.port}: {line} failed its integrity check {bad + 1} times "
                                  f"(last: {problem}); the data was discarded")
            bad += 1

    def drain_errors(self, limit: int = 64) -> ErrorReport:
        """Pop ``SYST:ERR?`` until ``0,...``; ``complete`` is False if an entry may be lost.

        ``SYST:ERR?`` is not repeatable (each answer pops the queue), so a garbled
        answer is not re-asked: it is skipped and the report marked incomplete. A
        timeout is resynced as the page requires; ``*CLS`` then empties the queue, so
        the drain ends there, incomplete.
        """
        errors: list[tuple[int, str]] = []
        complete = True
        for _ in range(limit):
            self._begin("SYST:ERR?")
            try:
                code, message = parse_error(self._line(self._clock() + self.timeout))
            except _NoAnswer:
                self.counters["timeouts"] += 1
                self.resync()
                return ErrorReport(errors, False)
            except BadResponse:
                self.counters["malformed"] += 1
                complete = False
                continue
            if code == 0:
                return ErrorReport(errors, complete)
            errors.append((code, message))
        return ErrorReport(errors, False)
