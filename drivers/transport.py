"""The byte pipe to an analyzer: a thin wrapper over ``serial.serial_for_url``.

Everything pyserial can open works: a device path (``/dev/ttyUSB0``, a pty such as
``/tmp/fol-analyzer``) and pyserial URLs (``socket://127.0.0.1:5025``,
``rfc2217://...``, ``loop://``). This layer only moves bytes; framing, timeouts
policy and retries live in :mod:`drivers.protocol`.

Every failure of the operating system or of pyserial is translated into a
``DeviceError`` whose message names the port and says what happened in words a
field operator can act on ("not found", "busy", "permission denied",
"disconnected"), never a traceback.
"""

from __future__ import annotations

import errno
import os

import serial

from fol.errors import DeviceError

try:  # termios exists on POSIX only; pyserial lets its errors through from tcflush
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - Windows
    _TermiosError = OSError

DEFAULT_BAUDRATE = 115200

_OPEN_REASONS = {
    errno.ENOENT: "not found",
    errno.ENODEV: "not found",
    errno.ENXIO: "not found",
    errno.EBUSY: "busy (in use by another program)",
    errno.EAGAIN: "busy (in use by another program)",
    errno.EACCES: "permission denied (is the user in the dialout group?)",
    errno.EPERM: "permission denied (is the user in the dialout group?)",
    errno.ECONNREFUSED: "connection refused (is the analyzer or simulator listening?)",
}


def _errno_of(exc: BaseException) -> int | None:
    """The errno behind an exception, looking through pyserial's re-raised wrappers."""
    for e in (exc, exc.__cause__, exc.__context__):
        code = getattr(e, "errno", None)
        if isinstance(code, int):
            return code
    return None


def open_reason(exc: BaseException) -> str:
    """Why opening a port failed, in words ("not found", "busy", ...)."""
    code = _errno_of(exc)
    if code in _OPEN_REASONS:
        return _OPEN_REASONS[code]
    detail = getattr(exc, "strerror", None) or str(exc)
    return f"cannot open ({detail})"


class Transport:
    """An open serial port (or pyserial URL) with bounded reads.

    ``read_some`` returns what has arrived (at least one byte) or ``b""`` when
    nothing came within the timeout; ``read_exact`` waits for ``n`` bytes and returns
    fewer only on timeout. Both never block longer than the timeout they are given.
    """

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUDRATE, timeout: float = 2.0, exclusive: bool = True):
        self.port = str(url)
        self.baudrate = int(baudrate)
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=timeout,
                                                 write_timeout=timeout, exclusive=exclusive)
        except ValueError as e:  # unknown URL scheme, unsupported baud rate
            raise DeviceError(f"port {self.port}: {e}") from None
        except (serial.SerialException, OSError) as e:
            raise DeviceError(f"port {self.port}: {open_reason(e)}") from None

    def _lost(self, exc: BaseException) -> DeviceError:
        if isinstance(exc, serial.SerialTimeoutException):
            return DeviceError(f"port {self.port}: write timed out (the analyzer does not accept data)")
        code = _errno_of(exc)
        detail = os.strerror(code) if code else (str(exc) or type(exc).__name__)
        return DeviceError(f"port {self.port}: disconnected ({detail})")

    def write(self, data: bytes) -> None:
        try:
            self._serial.write(data)  # not flush(): tcdrain has no timeout and could hang on a dead line
        except (serial.SerialException, OSError, _TermiosError) as e:
            raise self._lost(e) from None

    def read_some(self, limit: int, timeout: float) -> bytes:
        """Up to ``limit`` bytes of what has arrived, waiting at most ``timeout`` s for the first."""
        try:
            self._serial.timeout = max(0.0, timeout)
            waiting = self._serial.in_waiting
            return self._serial.read(max(1, min(limit, waiting)))
        except (serial.SerialException, OSError, _TermiosError) as e:
            raise self._lost(e) from None

    def read_exact(self, n: int, timeout: float) -> bytes:
        """``n`` bytes, or fewer if the timeout expires first."""
        try:
            self._serial.timeout = max(0.0, timeout)
            return self._serial.read(n)
        except (serial.SerialException, OSError, _TermiosError) as e:
            raise self._lost(e) from None

    def pending(self) -> int:
        """How many received bytes are waiting to be read."""
        try:
            return int(self._serial.in_waiting)
        except (serial.SerialException, OSError, _TermiosError) as e:
            raise self._lost(e) from None

    def reset_input_buffer(self) -> None:
        """Discard stray bytes already received."""
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError, _TermiosError) as e:
            raise self._lost(e) from None

    def close(self) -> None:
        try:
            self._serial.close()
        except (serial.SerialException, OSError, _TermiosError):
            pass  # closing a port that has vanished must not hide the error that led here

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
