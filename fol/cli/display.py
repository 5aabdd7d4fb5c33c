"""What the CLI shows a person: the verdict of one result, one-line error messages, progress.

Shared by the commands (``identify``, ``replay``, ``library``...): nothing here computes,
it only formats. Library code reports progress through callbacks; ``progress`` makes
such a callback that draws a bar on a terminal.
"""

from __future__ import annotations

import re
import sys
import textwrap
import time

#: longest error message shown (characters): a message never echoes megabytes of input
MAX_MESSAGE = 400
#: width of the alarm banner, frame included
BANNER_WIDTH = 64

# h5py/HDF5 driver failures read "[Errno 21] Unable to synchronously open file (file read failed: time = ...,
# filename = ..., errno = 21, error message = 'Is a directory', buf = 0x..., ...)": only the error message
# says anything to a person
_H5_DETAIL = re.compile(r"\([^()]*?error message = '([^']*)'[^()]*\)", re.DOTALL)
_H5_PREFIX = re.compile(r"\[Errno \d+\]\s*|Unable to (?:synchronously )?(?:open|create) file\s*")


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """A message as one bounded line: HDF5 driver details reduced to their error message,
    whitespace (newlines included) collapsed, cut to ``limit`` characters with an ellipsis."""
    s = str(text)
    if len(s) > 20 * limit:  # never run the expressions below over megabytes of echoed input
        s = s[:20 * limit]
    if "error message = " in s:
        s = _H5_DETAIL.sub(lambda m: m.group(1).lower(), s)
    if "Unable to" in s:  # "([Errno 21] Unable to synchronously open file (is a directory))" -> "(is a directory)"
        s = _H5_PREFIX.sub("", s)
        s = re.sub(r"\(\s*\(([^()]*)\)\s*\)", r"(\1)", s)
    s = " ".join(s.split())
    return s if len(s) <= limit else s[:limit - 1].rstrip() + "…"


def banner(text: str, width: int = BANNER_WIDTH) -> list[str]:
    """``text`` framed by asterisks, every line exactly ``width`` characters (long text wraps)."""
    inner = width - 6  # "*  " + text + "  *"
    body = textwrap.wrap(text, inner, break_on_hyphens=False) or [""]
    return ["*" * width] + [f"*  {line:<{inner}}  *" for line in body] + ["*" * width]


def _score(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def settings_line(md: dict) -> str | None:
    """``Settings: integration 100 ms x 5 averages, laser 100 mW`` from a spectrum's metadata (None if absent)."""
    if md.get("integration_time_ms") is None or md.get("averages") is None:
        return None
    text = f"Settings: integration {md['integration_time_ms']:g} ms x {md['averages']} averages"
    if md.get("technique", "raman") == "raman" and md.get("laser_power_mw") is not None:
        text += f", laser {md['laser_power_mw']:g} mW"
    if md.get("detector_temperature_c") is not None:
        text += f"; detector {md['detector_temperature_c']:g} C"
    return text


def format_result(r: dict, acquisition: dict | None = None) -> str:
    """A short human verdict: alarm banner, substance, class, score, every hit, quality, settings
    used (``acquisition``: the spectrum's metadata, for acquired spectra), library.

    Every hit the result carries is listed (``--top N`` asks for N; nothing is cut here).
    """
    lines: list[str] = []
    if r.get("alarm"):
        lines += banner("ALARM: " + ", ".join(r.get("alarm_classes") or ["alarm"]).upper())
    elif r.get("possible_alarm_classes"):
        lines.append(f"!  CAUTION: cannot rule out {', '.join(r['possible_alarm_classes'])}: confirm in the lab")
        for c in r.get("possible_components") or ():
            frac = f", ~{c['fraction']:.0%} of signal" if c.get("fraction") is not None else ""
            conf = f", confidence {c['confidence']:.2f}" if c.get("confidence") is not None else ""
            lines.append(f"!    possibly {c.get('name')} ({c.get('class')}){frac}{conf}")
        if r.get("caution"):
            lines.append(f"!    {one_line(r['caution'])}")
    advice = r.get("advice") or ()
    for text in [advice] if isinstance(advice, str) else advice:
        lines.append(f"!  Measure again: {one_line(text)}")
    flags = r.get("flags") or []
    if "unverified_library" in flags:
        lines.append("!  WARNING: the library's content hash was NOT verified (--allow-unverified): "
                     "this result is not evidence")
    comps = r.get("components") or []
    if r.get("verdict") in ("identified", "mixture"):
        lines.append(f"Verdict: {r['verdict']}")
        for c in comps:
            frac = f", {c['fraction']:.0%} of signal" if c.get("fraction") is not None and len(comps) > 1 else ""
            lines.append(f"  {c['name']} ({c['class']}), score {_score(c.get('score'))}{frac}")
    else:
        lines.append(f"Verdict: {r.get('verdict')}" + (f" ({one_line(r['error'])})" if r.get("error") else ""))
    if "computed_reference" in flags:
        lines.append("  Note: matched a COMPUTED reference spectrum: screening only, not evidence; "
                     "confirm with a measured reference.")
    hits = r.get("hits") or []
    if hits:
        lines.append("Top hits:")
        width = len(str(len(hits)))
        for i, h in enumerate(hits, 1):
            lines.append(f"  {i:>{width}}. {h['name']:<34} {h['class']:<20} {_score(h.get('score'))}  "
                         f"[{h.get('provenance', '')}]")
    q = r.get("quality") or {}
    snr = f"{q['snr']:.0f}" if isinstance(q.get("snr"), (int, float)) else "n/a"
    lines.append(f"Quality: SNR {snr}; flags: {', '.join(q.get('flags') or []) or 'none'}")
    if acquisition is not None and (line := settings_line(acquisition)):
        lines.append(line)
    lib = r.get("library") or {}
    lines.append(f"Library: {lib.get('name')} ({str(lib.get('sha256') or '')[:12]})  "
                 f"source: {r.get('source')}#{r.get('entry')}")
    return "\n".join(lines)


def progress(label: str, stream=None, unit: str = "") -> "ProgressLine":
    """A callback ``cb(done, total)`` that draws ``label [####    ] done/total`` on a terminal.

    Nothing is drawn when ``stream`` (default stderr) is not a terminal; call ``.close()``
    at the end to finish the line.
    """
    return ProgressLine(label, stream, unit)


class ProgressLine:
    """See ``progress``."""

    WIDTH = 24

    def __init__(self, label: str, stream=None, unit: str = ""):
        self.label, self.unit = label, unit
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = 0.0
        self.drawn = False
        self.t0, self.first = time.monotonic(), None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:  # work already done when the bar starts (a resumed run) does not count in the rate
            self.first, self.t0 = done, now
            if done < total:
                return
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * self.WIDTH)
        unit = f" {self.unit}" if self.unit else ""
        rate = (done - self.first) / max(now - self.t0, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        speed = f" {rate:,.0f}{unit}/s  ETA {_clock(eta)}" if self.unit else ""
        self.stream.write(f"\r{self.label} [{bar:<{self.WIDTH}}] {done:,}/{total:,}{unit} {frac:4.0%}{speed} ")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def warn(msg: str) -> None:
    """One warning line on stderr (``fol: warning: ...``)."""
    print(f"fol: warning: {one_line(msg)}", file=sys.stderr)
