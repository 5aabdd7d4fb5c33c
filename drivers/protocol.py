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
  expected answer is re-queried (up to ``retries`` times), after the line has gone
  quiet (the rest of a garbled frame must not become the next answer).
* **Late, doubled and stale answers.** ASCII answers carry no sequence number, so an
  answer that arrives late would be taken for the answer to the next question. Every
  sign that the stream may be shifted is an *anomaly* (counted in ``anomalies``): a
  timeout, a resync, a garbled answer, bytes already waiting when a question is sent
  (*strays*), more than one answer to one question, a short or corrupt block. After a
  timeout or a garbled answer the host **drains** the line (reads until it stays quiet
  for ``quiet_s``) before it asks again. Values that matter are read with
  :meth:`Protocol.read_confirmed`: the whole set of questions is asked in passes, each
  pass followed by a short settle check (nothing more may arrive), and a set is only
  accepted when two consecutive passes had no anomaly and agree. A shifted answer
  always leaves an anomaly behind (the displaced answer arrives somewhere), so it
  cannot pass two clean passes.
* **Error queue.** :meth:`Protocol.drain_errors` pops ``SYST:ERR?`` until
  ``0,"No error"`` and says whether the report is complete (an entry lost to a
  timeout, garbled, or a stray on the line cannot be asked for again).
* **Progress.** ``notify(event)`` (optional) is called with a ``ProtocolEvent`` for
  every timeout, resync, drain and re-query, so a user interface can show that the
  line is faulty while the host is still trying.

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
        raise BadResponse(f"not a number: {line[:40]!r}")
    value = float(line)
    if not np.isfinite(value):  # "1e999" has the form of a number but overflows
        raise BadResponse(f"number out of range: {line[:40]!r}")
    return value


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
class ProtocolEvent:
    """Something the host did to survive the line: ``kind`` is timeout, resync, requery, drain or stray."""

    kind: str
    port: str
    command: str
    detail: str

    def __str__(self) -> str:
        return f"port {self.port}: {self.detail}"


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
                 clock: Callable[[], float] = time.monotonic, quiet_s: float | None = None, settle_s: float = 0.03,
                 notify: Callable[[ProtocolEvent], None] | None = None):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.transport = transport
        self.timeout = float(timeout)
        self.retries = int(retries)
        #: how long the line must stay silent before a drain ends (default: the read timeout, at most 1 s)
        self.quiet_s = min(self.timeout, 1.0) if quiet_s is None else float(quiet_s)
        #: how long a pass of confirmed reads waits for a late extra answer
        self.settle_s = float(settle_s)
        self.notify = notify
        self._clock = clock
        self._buf = bytearray()
        self.counters: Counter = Counter()
        #: every sign that answers may have been shifted (see the module docstring)
        self.anomalies = 0

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
        if self._buf or self._waiting():
            self._anomaly("strays", line, "bytes were waiting before the question (a late or doubled answer)")
        self._buf.clear()
        self.transport.reset_input_buffer()
        self.transport.write(data)

    def _waiting(self) -> int:
        pending = getattr(self.transport, "pending", None)
        return int(pending()) if pending is not None else 0

    def _anomaly(self, kind: str, command: str, detail: str) -> None:
        self.counters[kind] += 1
        self.anomalies += 1
        if self.notify is not None:
            self.notify(ProtocolEvent(kind, self.port, command, detail))

    def drain(self, quiet: float | None = None, command: str = "") -> int:
        """Read and discard until nothing arrives for ``quiet`` s; returns the bytes discarded.

        A line that keeps sending for more than four timeouts is an error (a device
        streaming garbage cannot be talked to).
        """
        quiet = self.quiet_s if quiet is None else quiet
        self._buf.clear()
        end = self._clock() + 4 * self.timeout + quiet
        discarded = 0
        while True:
            chunk = self.transport.read_some(65536, quiet)
            if not chunk:
                break
            discarded += len(chunk)
            if self._clock() > end:
                raise DeviceError(f"port {self.port}: the analyzer keeps sending ({discarded} bytes without a pause "
                                  f"of {quiet:g} s after {command or 'a question'}): not a protocol answer")
        if discarded:
            self.counters["drained_bytes"] += discarded
            if self.notify is not None:
                self.notify(ProtocolEvent("drain", self.port, command, f"discarded {discarded} late bytes"))
        return discarded

    def settle(self, command: str = "") -> bool:
        """Wait ``settle_s`` and check that nothing more arrived (True: the line is quiet)."""
        if self._buf or self._waiting():
            self._anomaly("strays", command, "more bytes followed the answer")
            self.drain(command=command)
            return False
        extra = self.transport.read_some(4096, self.settle_s) if self.settle_s > 0 else b""
        if extra or self._waiting():
            self._anomaly("strays", command, "more bytes followed the answer")
            self.drain(command=command)
            return False
        return True

    def resync(self, command: str = "") -> None:
        """The page's recovery after a timeout: a bare LF (ends any partial command), ``*CLS``, then a drain.

        The drain waits until the line has been quiet for ``quiet_s``, so an answer
        that was merely late is discarded instead of being taken for the next one.
        """
        self._anomaly("resyncs", command, f"no complete answer to {command or 'a question'} within "
                                          f"{self.timeout:g} s; resyncing and asking again")
        self._buf.clear()
        self.transport.write(b"\n*CLS\n")
        self.drain(command=command)

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
        if self._buf:
            raise BadResponse(f"more than one answer arrived ({raw[:20]!r}, then {bytes(self._buf[:20])!r})")
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
        if self._buf:
            raise BadResponse(f"more data followed the block of {n} bytes ({bytes(self._buf[:20])!r})")
        return payload

    def _no_answer(self, command: str, e: _NoAnswer, retried: bool) -> None:
        """Count a timeout; resync before the one retry, or fail after it."""
        self.counters["timeouts"] += 1
        if retried:
            self.anomalies += 1
            what = f"an incomplete answer ({e.partial[:40]!r})" if e.partial else "no answer"
            raise DeviceError(f"port {self.port}: {what} to {command} within {self.timeout:g} s "
                              "(after a resync and one retry): is the analyzer on, connected, at this baud rate?")
        self.resync(command)

    def _garbled(self, kind: str, command: str, problem: str) -> None:
        """A garbled answer: count it, let the rest of the frame arrive and be discarded, then ask again."""
        self._anomaly(kind, command, f"unusable answer to {command} ({problem}); asking again")
        self.drain(min(self.quiet_s, 0.1), command)

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
                self._garbled("malformed", line, str(e))
                if bad >= self.retries:
                    raise self._give_up(line, bad + 1, str(e)) from None
                bad += 1

    def query_stable(self, line: str, parse: Callable[[str], object] = parse_text,
                     same: Callable[[object, object], bool] = operator.eq, attempts: int = 8):
        """One value read with :meth:`read_confirmed` (two clean passes that agree)."""
        return self.read_confirmed({line: (line, parse, same)}, attempts)[line]

    def read_confirmed(self, questions: dict, attempts: int = 8) -> dict:
        """``{key: value}`` for ``{key: (query, parse[, same])}``, asked in passes until two clean passes agree.

        A pass is clean when no anomaly happened from its first question to the end of
        its settle check. ASCII answers have no checksum: a flipped digit still parses,
        and an answer may belong to an earlier question; two clean, agreeing passes are
        the confirmation (see the module docstring). The two need not be consecutive:
        a clean pass that agrees with any earlier clean pass confirms it.
        """
        items = [(key, spec[0], spec[1], spec[2] if len(spec) > 2 else operator.eq) for key, spec in questions.items()]
        clean: list[dict] = []
        for _ in range(attempts):
            mark = self.anomalies
            values = {key: self.query(line, parse) for key, line, parse, _ in items}
            self.settle(items[-1][1])
            if self.anomalies != mark:
                continue
            for earlier in clean:
                if all(same(earlier[k], values[k]) for k, _, _, same in items):
                    return values
            clean.append(values)
        names = ", ".join(line for _, line, _, _ in items)
        raise DeviceError(f"port {self.port}: no two clean, agreeing readings of {names} in {attempts} tries; "
                          "the serial line is unreliable")

    def query_block(self, line: str) -> bytes:
        """A block query whose payload passed the CRC-32 check (``b""`` for an empty ``#10`` block).

        An empty block carries no data to protect; ``FETC:CRC?`` is still asked, as the
        page says, but not compared, so a device that leaves the CRC of its previous
        block in place after ``#10`` is not mistaken for a corrupt line.
        """
        retried, bad = False, 0
        while True:
            mark = self.anomalies
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
                    self.resync(line)  # a read timed out: the page's recovery applies
                else:
                    self._garbled("malformed", line, problem)
            else:
                crc = self.query(CRC_QUERY, parse_crc)
                got = zlib.crc32(payload)
                quiet = self.settle(CRC_QUERY)
                if not payload or (got == crc and quiet and self.anomalies == mark):
                    return payload
                if got != crc:
                    self._anomaly("crc_mismatches", line, f"{line}: CRC-32 mismatch; asking again")
                    problem = f"CRC-32 of the data received 0x{got:08X}, device says 0x{crc:08X}"
                else:
                    problem = "the line was not clean around the block (late or extra answers)"
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
        mark = self.anomalies
        for _ in range(limit):
            self._begin("SYST:ERR?")
            try:
                code, message = parse_error(self._line(self._clock() + self.timeout))
            except _NoAnswer:
                self.counters["timeouts"] += 1
                self.resync("SYST:ERR?")
                return ErrorReport(errors, False)
            except BadResponse as e:
                self._garbled("malformed", "SYST:ERR?", str(e))
                continue
            if code == 0:
                quiet = self.settle("SYST:ERR?")
                return ErrorReport(errors, quiet and self.anomalies == mark)
            errors.append((code, message))
        return ErrorReport(errors, False)
