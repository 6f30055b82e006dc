"""What the service writes is its own (PIPL art. 51): files 0600, directories 0700.

The database, voicemail recordings, the survey-link key, the Rasa servers' token files
and the bot's logs all hold residents' data or secrets. The process's umask (set first
thing by run_hotline.py, and inherited by the Rasa servers it starts) makes every new
file private; `protect` tightens what an earlier run left under var/ with looser modes.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from hotline.config import Config

UMASK = 0o077
FILE_MODE, DIR_MODE = 0o600, 0o700
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def restrict_umask() -> int:
    """New files 0600 and directories 0700 from now on, in this process and its children; the old umask."""
    return os.umask(UMASK)


def sqlite_file(config: Config) -> Path | None:
    url = make_url(config.database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def protect(config: Config) -> None:
    """var/ 0700 (nothing below it is reachable by others), its top level and secrets/ tightened, the SQLite
    database 0600 wherever it lives. Recordings below var/ are not walked: var/'s mode already closes them."""
    var = config.var_dir
    var.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(var, DIR_MODE)
    for path in [*var.iterdir(), *((var / "secrets").iterdir() if (var / "secrets").is_dir() else [])]:
        with contextlib.suppress(OSError):  # a file removed meanwhile, or one not ours: leave it
            if path.is_symlink():
                continue
            os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
    database = sqlite_file(config)
    if database is not None:
        for suffix in SQLITE_SUFFIXES:
            candidate = database.with_name(database.name + suffix)
            if candidate.exists():
                os.chmod(candidate, FILE_MODE)
