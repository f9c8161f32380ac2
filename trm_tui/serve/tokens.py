"""Who may open the page, and as what: a secret token per role, as Jupyter does, because on a shared machine
127.0.0.1 is reachable by every user logged into it.

``trm-tui serve`` makes a full-control token (or reads it from ``--token-file``) and, with ``--share`` or
``--read-only``, a read-only one. A request carries its token in the URL (``?token=``) the first time and in
a cookie after that (HttpOnly, SameSite=Strict: no script and no other site can use it). Tokens compare in
constant time, every known one each time, so neither a token nor its role leaks through timing.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

TOKEN_BYTES = 24      # 192 bits from the OS's generator (the issue asks at least 128)
MIN_FILE_TOKEN = 16   # a --token-file token shorter than this is refused as guessable


class Role(str, Enum):
    FULL = "full"            # the dashboard as in a terminal: s, r, a, K act
    READ_ONLY = "read-only"  # the dashboard with every acting key refused on screen


class TokenError(Exception):
    """A --token-file that cannot be used: names the file and what is wrong with it."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def read_token_file(path: Path) -> str:
    """The token in ``path`` (its first line), which only its owner may read: a token others can read is no
    secret. Refused with the reason: missing, not a regular file, not ours, readable by others, too short."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TokenError(f"--token-file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TokenError(f"--token-file {path}: not a regular file")
    if st.st_uid != os.geteuid():
        raise TokenError(f"--token-file {path}: owned by uid {st.st_uid}, not by you (uid {os.geteuid()})")
    if st.st_mode & 0o077:
        raise TokenError(f"--token-file {path}: mode {stat.S_IMODE(st.st_mode):04o} lets other users read it; "
                         f"chmod 600 {path}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"--token-file {path}: cannot read it ({exc})") from None
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_FILE_TOKEN or not token.isprintable() or " " in token:
        raise TokenError(f"--token-file {path}: the token (its first line) must be at least {MIN_FILE_TOKEN} "
                         f"printable characters without spaces; make one with: python -c \"import secrets; "
                         f"print(secrets.token_urlsafe(24))\" > {path}")
    return token


@dataclass(frozen=True)
class Tokens:
    """The tokens one serve process answers to, each with its role; none at all with ``--no-token``."""

    by_role: dict[Role, str]

    @property
    def required(self) -> bool:
        return bool(self.by_role)

    def role_of(self, offered: str | None) -> Role | None:
        """The role a token opens, or None. Every known token is compared, in constant time."""
        if not self.by_role:
            return Role.FULL
        found = None
        candidate = (offered or "").encode()
        for role, token in self.by_role.items():
            if hmac.compare_digest(candidate, token.encode()):
                found = role
        return found
