"""Fault injection for the simulated analyzer, seeded so that a failing run can be replayed.

A fault spec is a comma-separated list of ``kind=probability`` and ``parameter=value``
items, e.g. ``"drop=0.02,corrupt=0.02,delay=0.05,delay_s=0.4,junk=0.02,disconnect=0.001"``.
``all=P`` sets every wire fault to P; ``""`` or ``"none"`` means no faults.

Wire faults act on each response frame the simulator sends (one ASCII line or one
block, terminator included), each with its own probability, independently:

* ``drop`` -- half the time the whole frame is lost, otherwise 1-8 bytes at a random place;
* ``corrupt`` -- 1-3 bytes each get one bit flipped;
* ``junk`` -- 1..``junk_max`` random bytes are sent before the frame;
* ``disconnect`` -- the frame is cut at a random point and the connection closed (the
  pty disappears and a new one takes its link; a TCP client is dropped);
* ``delay`` -- the frame stops at a random point for ``delay_s`` x U(0.5, 1.5) seconds,
  then the rest follows (a split at 0 delays the whole frame);
* ``stale`` -- one of the last 8 frames sent comes again before this one (an old answer
  surfacing from a buffer: the host sees an answer that belongs to an earlier question);
* ``duplicate`` -- the frame is sent twice;
* ``interleave`` -- one of the last 8 frames is sent in the middle of this one;
* ``split`` -- the frame goes out in 2-4 pieces with pauses of up to ``split_s`` seconds;
* ``truncate`` -- the frame stops at a random point and the rest is never sent.

Device faults act on acquisitions: ``interlock`` -- ``INIT`` is refused with error 201;
``warm`` -- the acquisition completes with a warm detector (error 203, more noise);
``stale_done`` -- while an acquisition runs, each ``STAT:ACQ?`` answers ``DONE`` with
this probability, and a ``FETC:SPEC?`` before the real end then sends the *previous*
acquisition (a firmware that reports its old buffer as new).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from fol.errors import ConfigError

WIRE_KINDS = ("drop", "corrupt", "delay", "junk", "disconnect", "stale", "duplicate", "interleave", "split",
              "truncate")
DEVICE_KINDS = ("interlock", "warm", "stale_done")
#: how many earlier frames ``stale`` and ``interleave`` choose from
HISTORY = 8


@dataclass(frozen=True)
class FaultSpec:
    """Probabilities of each fault (per frame or per acquisition) and their parameters."""

    drop: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    junk: float = 0.0
    disconnect: float = 0.0
    stale: float = 0.0
    duplicate: float = 0.0
    interleave: float = 0.0
    split: float = 0.0
    truncate: float = 0.0
    interlock: float = 0.0
    warm: float = 0.0
    stale_done: float = 0.0
    delay_s: float = 0.5
    split_s: float = 0.05
    junk_max: int = 256

    def __post_init__(self):
        for kind in WIRE_KINDS + DEVICE_KINDS:
            p = getattr(self, kind)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"fault probability {kind}={p:g} is outside 0..1")
        if not 0.0 <= self.delay_s <= 60.0:
            raise ConfigError(f"delay_s={self.delay_s:g} is outside 0..60 seconds")
        if not 0.0 <= self.split_s <= 60.0:
            raise ConfigError(f"split_s={self.split_s:g} is outside 0..60 seconds")
        if not 1 <= self.junk_max <= 65536:
            raise ConfigError(f"junk_max={self.junk_max} is outside 1..65536 bytes")

    @classmethod
    def parse(cls, text: str | None) -> "FaultSpec":
        """A spec from its text form (see the module docstring)."""
        text = (text or "").strip()
        if text.lower() in ("", "none"):
            return cls()
        names = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for item in text.split(","):
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            if not sep or (key not in names and key != "all"):
                raise ConfigError(f"bad fault item {item.strip()!r}: expected KIND=PROBABILITY with KIND one of "
                                 f"{', '.join(WIRE_KINDS + DEVICE_KINDS)}, all, delay_s, split_s, junk_max")
            try:
                value = int(raw) if key == "junk_max" else float(raw)
            except ValueError:
                raise ConfigError(f"bad fault item {item.strip()!r}: {raw.strip()!r} is not a number") from None
            values.update(dict.fromkeys(WIRE_KINDS, value) if key == "all" else {key: value})
        return replace(cls(), **values)

    def __str__(self) -> str:
        items = [f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if getattr(self, f.name) != f.default]
        return ",".join(items) or "none"

    @property
    def on_wire(self) -> bool:
        return any(getattr(self, k) > 0 for k in WIRE_KINDS)


@dataclass(frozen=True)
class Plan:
    """How to send one frame: ``chunks`` of (pause before, bytes), then maybe disconnect."""

    chunks: tuple[tuple[float, bytes], ...]
    disconnect: bool
    faults: tuple[str, ...]


def plan(frame: bytes, spec: FaultSpec, rng: np.random.Generator, history=()) -> Plan:
    """The faults (if any) applied to one outgoing frame; ``history``: frames sent before (newest last)."""
    data = bytearray(frame)
    applied = []
    earlier = list(history)[-HISTORY:]
    if spec.stale and earlier and rng.random() < spec.stale:
        applied.append("stale")
        data[:0] = earlier[int(rng.integers(0, len(earlier)))]
    if spec.duplicate and rng.random() < spec.duplicate:
        applied.append("duplicate")
        data += frame
    if spec.interleave and earlier and rng.random() < spec.interleave:
        applied.append("interleave")
        at = int(rng.integers(0, len(data) + 1))
        data[at:at] = earlier[int(rng.integers(0, len(earlier)))]
    if spec.truncate and len(data) > 1 and rng.random() < spec.truncate:
        applied.append("truncate")
        del data[int(rng.integers(1, len(data))):]
    if spec.drop and rng.random() < spec.drop:
        applied.append("drop")
        if rng.random() < 0.5 or len(data) <= 1:
            data.clear()
        else:
            at = int(rng.integers(0, len(data)))
            del data[at: at + int(rng.integers(1, 9))]
    if spec.corrupt and data and rng.random() < spec.corrupt:
        applied.append("corrupt")
        for at in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            data[at] ^= 1 << int(rng.integers(0, 8))
    if spec.junk and rng.random() < spec.junk:
        applied.append("junk")
        data[:0] = rng.integers(0, 256, size=int(rng.integers(1, spec.junk_max + 1)), dtype=np.uint8).tobytes()
    disconnect = bool(spec.disconnect and rng.random() < spec.disconnect)
    if disconnect:
        applied.append("disconnect")
        del data[int(rng.integers(0, len(data) + 1)):]
    chunks: tuple[tuple[float, bytes], ...] = ((0.0, bytes(data)),)
    if spec.delay and rng.random() < spec.delay:
        applied.append("delay")
        split = int(rng.integers(0, len(data) + 1))
        chunks = ((0.0, bytes(data[:split])), (spec.delay_s * float(rng.uniform(0.5, 1.5)), bytes(data[split:])))
    if spec.split and len(data) > 1 and rng.random() < spec.split:
        applied.append("split")
        pieces = []
        for pause, part in chunks:
            cuts = sorted(int(c) for c in rng.integers(0, len(part) + 1, size=int(rng.integers(1, 4))))
            bounds = [0, *cuts, len(part)]
            pieces.append((pause, part[bounds[0]:bounds[1]]))
            pieces += [(spec.split_s * float(rng.random()), part[a:b]) for a, b in zip(bounds[1:], bounds[2:])]
        chunks = tuple(pieces)
    return Plan(chunks, disconnect, tuple(applied))
