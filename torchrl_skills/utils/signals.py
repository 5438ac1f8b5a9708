"""Stopping a run cleanly on Ctrl-C (SIGINT) or ``kill`` (SIGTERM).

A long run must not die in the middle of a step: the optimizer state, the replay buffer and the
logs would disagree with the last checkpoint. :class:`GracefulStop` turns the first SIGINT or
SIGTERM into a flag that the loop reads once per step; the loop then finishes the step, writes a
checkpoint at that step and raises :class:`RunStopped`, which
:func:`~torchrl_skills.utils.cli.run_cli` prints as one line and turns into the conventional exit
status ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM). A second signal aborts at once
(:class:`Interrupted`): the user asked twice, and the previous checkpoint is still intact because
checkpoints are written atomically (:func:`~torchrl_skills.utils.save_checkpoint`).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterable

__all__ = ["GracefulStop", "Interrupted", "RunStopped", "stop_on_signals", "signal_name"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """``"SIGINT"`` for ``signal.SIGINT`` (and the number for signals without a name)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """Raised at once by a signal that cannot wait for the end of a step.

    A subclass of :class:`KeyboardInterrupt`, so code that already cleans up on Ctrl-C (``finally``
    blocks, context managers) does so for SIGTERM too.

    Args:
        signum (int): the signal received.
    """

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """``128 + signum``: the status shells report for a process stopped by that signal."""
        return 128 + self.signum


class RunStopped(BaseException):
    """A run that stopped on request at a step boundary, after saving what it needs to continue.

    It derives from :class:`BaseException`, like :class:`KeyboardInterrupt`: it is not an error,
    and ``except Exception`` blocks of library code must not swallow it. Callers that run another
    script's ``main`` (a pipeline training a model first) let it propagate, so the whole pipeline
    stops and the outermost :func:`~torchrl_skills.utils.cli.run_cli` prints it.

    Args:
        signum (int): the signal that asked for the stop.
        where (str): the point reached, e.g. ``"step 1500"`` or ``"env step 4000 (sac, seed 0)"``.
        checkpoint (str or Path, optional): the checkpoint written at that point.
        note (str, optional): what else the user should know, e.g. what a re-run repeats.

    Examples:
        >>> import signal
        >>> str(RunStopped(signal.SIGINT, "step 15", "runs/x/checkpoint.pt"))
        'stopped at step 15; checkpoint runs/x/checkpoint.pt'
        >>> RunStopped(signal.SIGTERM, "step 15").exit_code
        143
    """

    def __init__(self, signum: int, where: str, checkpoint: str | os.PathLike | None = None, note: str | None = None):
        self.signum, self.where, self.note = int(signum), where, note
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        super().__init__(self.message())

    @property
    def exit_code(self) -> int:
        """``128 + signum``: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    def message(self, command: str | None = None) -> str:
        """One line: where the run stopped, its checkpoint, and the command that continues it."""
        parts = [f"stopped at {self.where}"]
        if self.checkpoint is not None:
            parts.append(f"checkpoint {self.checkpoint}")
        if self.note:
            parts.append(self.note)
        if command:
            parts.append(f"continue with {command}")
        return "; ".join(parts)


class GracefulStop:
    """Context manager turning SIGINT and SIGTERM into a flag checked once per step.

    Inside the ``with`` block the first signal only sets the flag (the object becomes truthy and
    :attr:`signum` holds the signal); the loop finishes its step, saves, and calls :meth:`stopped`
    to build the :class:`RunStopped` it raises. A second signal raises :class:`Interrupted` at
    once. On exit the previous handlers are restored, so blocks nest (an inner training loop
    inside a pipeline). Signal handlers can only be installed from the main thread; elsewhere the
    object is inert (never truthy) and signals keep their previous behaviour.

    Args:
        signals (iterable of int, optional): the signals to catch. Defaults to SIGINT and SIGTERM.

    Examples:
        >>> import os, signal
        >>> with GracefulStop() as stop:
        ...     for step in range(1, 1001):
        ...         if step == 3:
        ...             os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would
        ...         if stop:  # checked once per step, after the step's work
        ...             break
        >>> step, stop.signum == signal.SIGTERM
        (3, True)
        >>> str(stop.stopped(f"step {step}"))
        'stopped at step 3'
    """

    def __init__(self, signals: Iterable[int] = STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum)  # asked twice: stop now, the last checkpoint is intact
        self.signum = signum
        if sys.stderr is not None and sys.stderr.isatty():
            # Only interactive users need to hear that the step is finishing; logs get one line.
            print(
                f"\n{signal_name(signum)} received: stopping after the current step "
                "(send it again to stop at once)",
                file=sys.stderr,
                flush=True,
            )

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for (same as ``bool(self)``)."""
        return self.signum is not None

    def stopped(self, where: str, checkpoint: str | os.PathLike | None = None, note: str | None = None) -> RunStopped:
        """The :class:`RunStopped` to raise once the step is finished and saved."""
        if self.signum is None:
            raise RuntimeError("stopped() called but no stop signal was received.")
        return RunStopped(self.signum, where, checkpoint, note)


def stop_on_signals(signals: Iterable[int] = STOP_SIGNALS) -> GracefulStop:
    """``with stop_on_signals() as stop:`` -- the functional spelling of :class:`GracefulStop`."""
    return GracefulStop(signals)
