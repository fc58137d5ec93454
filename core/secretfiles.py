"""Files that hold secrets: readable by their owner only, from the first byte written.

A secret (a password, a token, a private key) is taken from the environment or from a file only its owner
can read. A settings file that sets a secret field, and every private key linetwin loads, is refused
while group or others have any access to it (``mode & 0o077``), with the ``chmod 600`` that fixes it;
``allow_readable_secrets`` accepts such files anyway (a volume mounted with other modes). Keys linetwin
makes itself are written 0600 before their content, never chmod-ed afterwards.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from core.errors import ConfigError

#: group and others: any of these bits lets someone other than the owner at the file
EXPOSING = 0o077


class SecretFileExposed(ConfigError):
    """A file holding a secret can be read (or changed) by group or others."""


def check_private(path: Path, what: str, *, allowed: bool = False) -> None:
    """Refuse ``path`` (a file that holds ``what``) when group or others have access to it, unless
    ``allowed``. A file that cannot be read is left to the reader to report."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & EXPOSING and not allowed:
        raise SecretFileExposed(
            f"{what} {path} is open to group or others (mode {mode:04o}): run `chmod 600 {path}`, "
            "or set allow_readable_secrets = true to accept it"
        )


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600 from creation), replacing it atomically:
    a reader sees the old file or the whole new one, never a part."""
    write_atomic(path, data, 0o600)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file of ``mode`` beside ``path``, then rename it over ``path``. The
    temporary name is hex only, so no loader of ``*.der``/``*.pem`` folders ever picks it up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{secrets.token_hex(8)}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)  # the umask may have taken bits from a public file's mode
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
