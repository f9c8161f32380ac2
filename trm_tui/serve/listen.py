"""The socket ``trm-tui serve`` listens on, made before the server starts: a TCP port (a port in use is one
line naming it), or a Unix socket that only its owner can connect to (mode 0600 from its first moment), for
``ssh -L 8000:/path/to/sock host``, which no other user on the machine can reach."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import stat
from pathlib import Path

LOOPBACK_NAMES = {"localhost"}


class ListenError(Exception):
    """Cannot listen where asked: one line naming the address and why."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tcp_socket(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(f"port {port} on {host} is in use (another trm-tui serve?); pick another with "
                              f"--port") from None
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def unix_socket(path: Path) -> socket.socket:
    """A Unix socket at ``path`` with mode 0600, bound under a 0177 umask so it is never open to others, not
    even for the instant between bind and chmod. A stale socket (no one listening) is replaced; anything else
    at the path is left alone and refused."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ListenError(f"--unix-socket {path}: something that is not a socket is there; give another path")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
            raise ListenError(f"--unix-socket {path}: another server is listening on it")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink()  # a server that died left it
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ListenError(f"--unix-socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock
