"""Logging of the toolkit: every module logs to ``analog_peft.<module>``; the CLI routes it to stdout.

``configure(verbosity)`` (``-1`` = ``--quiet``: warnings and errors only, ``0`` = default: progress and
results, ``1`` = ``--verbose``: debug detail) installs one stdout handler on the ``analog_peft`` logger (replacing
the one a previous call installed). Used as a library, the toolkit stays silent below warnings unless the
application configures logging.
"""

from __future__ import annotations

import logging
import sys

ROOT = "analog_peft"
_LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def get_logger(name: str) -> logging.Logger:
    """The logger of a toolkit module (``name`` relative to the package, e.g. ``"demo"``)."""
    return logging.getLogger(f"{ROOT}.{name}" if not name.startswith(ROOT) else name)


class _StdoutHandler(logging.StreamHandler):
    """Bare messages on the *current* ``sys.stdout`` (so captured and redirected output both work)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


def configure(verbosity: int = 0) -> logging.Logger:
    """Send the toolkit's log records at ``verbosity`` (-1, 0, 1) to stdout; returns the package logger."""
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _StdoutHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(_StdoutHandler())
    logger.setLevel(_LEVELS[max(-1, min(1, verbosity))])
    logger.propagate = False
    return logger
