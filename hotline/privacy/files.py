"""Removing a resident's files (recordings, stored media) without ever leaving the service's var directory."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def remove_under(var_dir: Path, relative: str) -> bool:
    """Delete `relative` (as a call or attachment stores it) if it names a file under var_dir.

    URIs that are not files (a WeChat media id, an http link, "call-recording:7") are left alone, and so
    is any path that would resolve outside var_dir. True when a file was deleted."""
    if not relative or ":" in relative.split("/", 1)[0]:
        return False
    root = var_dir.resolve()
    path = (var_dir / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return False
    try:
        path.unlink()
    except OSError as exc:
        log.warning("could not delete a resident's file under %s: %s", root, exc.strerror)
        return False
    return True
