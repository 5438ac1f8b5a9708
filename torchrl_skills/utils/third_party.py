"""Third-party output that a user of the package's scripts should not have to read.

Filtered at its source, and only what the package triggers itself:

* importing ``gymnasium_robotics`` prints a notice about AdroitHand reward functions (through
  ``farama_notifications``) to stderr; the package never uses AdroitHand.
  :func:`import_gymnasium_robotics` imports it without that notice.
* TorchRL's ``"torchrl"`` logger reports INFO lines such as storage initialisations, wrapped in
  ANSI colour codes even when the output goes to a file. :func:`quiet_torchrl_logging` keeps
  warnings and errors only (unless ``RL_LOGGING_LEVEL`` asks otherwise) and drops the colours
  when the stream is not a terminal. TorchRL offers no switch for the colours; its logger's
  level is read from ``RL_LOGGING_LEVEL`` once, at import.
"""
from __future__ import annotations

import logging
import os
import sys

__all__ = ["import_gymnasium_robotics", "quiet_torchrl_logging", "quiet_third_party_output"]


def import_gymnasium_robotics():
    """Imports ``gymnasium_robotics`` (which registers its envs) without its AdroitHand notice.

    The notice is a ``print`` to stderr driven by ``farama_notifications``' table for the
    installed version; the table's entry is held back for the duration of the import only.

    Returns:
        the ``gymnasium_robotics`` module.

    Examples:
        >>> gymnasium_robotics = import_gymnasium_robotics()
        >>> import gymnasium as gym
        >>> "PointMaze_UMaze-v3" in gym.registry
        True
    """
    if "gymnasium_robotics" in sys.modules:
        return sys.modules["gymnasium_robotics"]
    try:
        from farama_notifications import notifications
    except ImportError:  # older gymnasium-robotics print nothing without it
        notifications = {}
    held = notifications.pop("gymnasium_robotics", None)
    try:
        import gymnasium_robotics
    finally:
        if held is not None:
            notifications["gymnasium_robotics"] = held
    return gymnasium_robotics


class _PlainFormatter(logging.Formatter):
    """TorchRL's layout (time, logger, level, indented message) without colour codes."""

    def __init__(self):
        super().__init__("%(asctime)s [%(name)s][%(levelname)s] %(message)s")


class _QuietTorchRL(logging.Filter):
    """A filter on the ``"torchrl"`` logger: drops records under ``level`` and, before the first
    record is written, swaps the colouring formatter of handlers that do not write to a terminal.

    It works on the logger object, which outlives TorchRL's import: ``torchrl._utils`` sets the
    level and replaces the handlers when it is imported, but keeps the logger's filters, so this
    is the same whether TorchRL is imported before or after.
    """

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        for handler in logging.getLogger("torchrl").handlers:
            stream = getattr(handler, "stream", None)
            isatty = getattr(stream, "isatty", None)
            if stream is not None and not (callable(isatty) and isatty()) and not isinstance(handler.formatter, _PlainFormatter):
                handler.setFormatter(_PlainFormatter())
        return True


def quiet_torchrl_logging(level: str | int | None = None) -> None:
    """Keeps TorchRL's console logger to warnings, in plain text when it writes to a file.

    Args:
        level (str or int, optional): the lowest level shown. Defaults to ``$RL_LOGGING_LEVEL``
            when the user set it (TorchRL's own switch), else ``"WARNING"``: TorchRL's INFO lines
            (storage initialisations, ...) say nothing a user of the scripts acts on.

    Works whether or not TorchRL is imported yet (see :class:`_QuietTorchRL`); calling it again
    replaces the previous setting.

    Examples:
        >>> quiet_torchrl_logging()
        >>> import torchrl  # INFO records of the "torchrl" logger are dropped from now on
    """
    if level is None:
        level = os.environ.get("RL_LOGGING_LEVEL", "WARNING")
    level = logging.getLevelName(level) if isinstance(level, str) else int(level)
    logger = logging.getLogger("torchrl")
    for old in [f for f in logger.filters if isinstance(f, _QuietTorchRL)]:
        logger.removeFilter(old)
    logger.addFilter(_QuietTorchRL(level))


def quiet_third_party_output() -> None:
    """Everything above, for a command-line run (called by :func:`~torchrl_skills.utils.cli.run_cli`)."""
    quiet_torchrl_logging()
