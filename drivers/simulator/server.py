"""The byte stream of the simulated analyzer: a pty or a loopback TCP port.

``AnalyzerServer`` puts a :class:`drivers.simulator.instrument.SimulatedAnalyzer` on a
byte stream: a pseudo-terminal whose slave is symlinked at ``link`` (open it like a
serial port), or a TCP listener on a loopback address (open it as
``socket://HOST:PORT``). One thread serves one connection at a time, like a serial
line. Every response frame goes through the fault injector
(:mod:`drivers.simulator.faults`). A ``disconnect`` fault closes the pty (a new one
takes over the link) or drops the TCP client. All waits are bounded and watch the stop
event, so ``stop()`` always returns.

A link is claimed with a lock file beside it (``LINK.lock``, held for as long as the
server runs): a second server on a link that is being served is refused, never
allowed to replace it; a link left behind by a server that died is taken over.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import select
import socket
import threading
import time
import tty
from collections import Counter, deque

import numpy as np

from fol.errors import DeviceError, ConfigError

from drivers.protocol import MAX_COMMAND
from drivers.simulator.faults import FaultSpec, Plan, plan
from drivers.simulator.instrument import Acquisition, Reply, SimulatedAnalyzer  # noqa: F401 (re-exported)


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
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(f"not an IP address: {host!r}") from None
    if not ip.is_loopback:
        raise ConfigError(f"the simulator only listens on loopback addresses, not {host}")
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"TCP port {port} is outside 0..65535")
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
            raise ConfigError("give exactly one of link (a pty symlink path) or tcp (host, port)")
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
        self._sent: deque[bytes] = deque(maxlen=8)  # recent frames, for the stale and interleave faults
        self._lock_fd: int | None = None
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

    def _claim_link(self) -> None:
        """Take ``LINK.lock`` (held while serving); refuse a link another server holds or a stranger's link."""
        if os.path.lexists(self.link) and not os.path.islink(self.link):
            raise ConfigError(f"{self.link} exists and is not a symlink: refusing to replace it")
        lock_path = self.link + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise DeviceError(f"{lock_path}: cannot create the link's lock file ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"{self.link} is already served by another simulator (it holds {lock_path}); "
                                 "stop it first or choose another --link") from None
            raise DeviceError(f"{lock_path}: cannot lock ({e.strerror})") from None
        previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if os.path.islink(self.link) and not previous and os.path.exists(self.link):
            os.close(fd)  # a live link that no simulator of ours made (socat, another tool): not ours to replace
            raise ConfigError(f"{self.link} is a link to {os.readlink(self.link)}, which exists and was not made by "
                             "fol simulate; remove the link if nothing serves it, or choose another --link")
        self._lock_fd = fd

    def _record_link(self) -> None:
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{os.getpid()} {self._pty.name}\n".encode(), 0)

    def _release_link(self) -> None:
        if self._lock_fd is None:
            return
        try:
            os.unlink(self.link + ".lock")  # still holding the lock: nobody else can have claimed it
        except OSError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None

    def start(self) -> "AnalyzerServer":
        if self.link:
            self._claim_link()
            try:
                self._pty = _PtyChannel(self.link)
                self._record_link()
            except BaseException:
                self._release_link()
                raise
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
        self._release_link()

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
                self._record_link()
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
        p = (plan(frame, self.faults, self._rng, self._sent) if self.faults.on_wire
             else Plan(((0.0, frame),), False, ()))
        self._sent.append(frame)
        self.stats["frames"] += 1
        self.stats.update(p.faults)
        for pause, data in p.chunks:
            if pause and self._stop.wait(pause):
                return "stopped"
            if data and not channel.send(data, time.monotonic() + self.write_timeout):
                self.stats["write_failures"] += 1
                return "closed" if isinstance(channel, _SocketChannel) else "ok"
        return "disconnect" if p.disconnect else "ok"
