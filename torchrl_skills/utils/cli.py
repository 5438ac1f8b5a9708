"""What every command-line entry point of the package shares: help, errors, exit statuses.

* :class:`ArgumentParser` shows every option's default next to its help and keeps the line
  breaks of the description (the usage examples), reports a bad option in one line, and adds
  ``--debug``.
* :func:`run_cli` runs a script's ``main(argv)`` and turns its outcome into what a shell user
  expects: a problem the user can fix prints one line ``error: ...`` and exits with status 2
  (the full traceback only with ``--debug``); a run stopped by SIGINT / SIGTERM prints where it
  stopped, its checkpoint and the command that continues it, and exits with 130 / 143.
* :class:`UserError` marks the errors that are the user's to fix.

A script's ``main(argv)`` stays an ordinary function that raises, so tests and other scripts
call it directly; only ``if __name__ == "__main__": run_cli(main)`` changes.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from torchrl_skills.utils.signals import Interrupted, RunStopped, signal_name

__all__ = [
    "ArgumentParser",
    "HelpFormatter",
    "KNOWN_ERRORS",
    "UserError",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "run_cli",
]


class UserError(Exception):
    """An error the user can fix: a missing file, an impossible setting, a device that is absent.

    :func:`run_cli` prints its message as one line ``error: <message>`` and exits with status 2,
    without a traceback (which points into the package, not at the problem). The message names
    the problem and the fix. Subclasses may also derive from the matching built-in exception
    (``FileNotFoundError``, ``ValueError``, ...) so that ``except`` clauses written for those keep
    working.

    Examples:
        >>> class NoDataError(UserError, FileNotFoundError):
        ...     pass
        >>> isinstance(NoDataError("no data at /tmp/x: generate it first"), FileNotFoundError)
        True
    """


# The exception types the package raises for a user's mistake, with a message that says what to
# do: ValueError (impossible settings), KeyError (unknown entries), OSError (files, folders).
# Anything else is a bug and keeps its traceback.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, KeyError, OSError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with every option's default and the description's own line breaks.

    ``ArgumentDefaultsHelpFormatter`` appends ``(default: ...)`` to each option that has help
    text and does not mention its default already; ``RawDescriptionHelpFormatter`` prints the
    description (a script's docstring with its example commands) as written.

    Examples:
        >>> import argparse
        >>> p = argparse.ArgumentParser(prog="x", description="Runs x.\\n\\n    x --steps 5",
        ...                             formatter_class=HelpFormatter)
        >>> _ = p.add_argument("--steps", type=int, default=3, help="gradient steps")
        >>> "gradient steps (default: 3)" in p.format_help(), "\\n    x --steps 5\\n" in p.format_help()
        (True, True)
    """


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` for the package's scripts.

    Differences from argparse: the default ``formatter_class`` is :class:`HelpFormatter`; a
    bad option prints one line ``error: ...`` (argparse prints the whole usage first) and exits
    with status 2; a ``--debug`` flag is added last (``run_cli`` reads it: tracebacks of handled
    errors are shown).

    Examples:
        >>> p = ArgumentParser(prog="train.py")
        >>> _ = p.add_argument("--steps", type=positive_int, default=3000, help="gradient steps")
        >>> p.parse_args(["--steps", "5"])
        Namespace(steps=5, debug=False)
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def _add_debug(self) -> None:
        # Added on first use rather than in __init__, so that it is listed after the script's
        # own options in --help.
        if not any("--debug" in action.option_strings for action in self._actions):
            self.add_argument("--debug", action="store_true", help="show the full traceback of handled errors")

    def parse_known_args(self, args=None, namespace=None):
        self._add_debug()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._add_debug()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type, ok: Callable[[Any], bool], expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts that must be >= 1 (steps, sizes, lengths).

    Examples:
        >>> positive_int("3")
        3
    """
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """argparse ``type=`` for counts that may be 0 (warm-up steps, ``0`` meaning "off")."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse ``type=`` for rates and scales that must be > 0 (learning rates)."""
    return _number(text, float, lambda v: v > 0, "a number > 0")


def file_tag(text: str) -> str:
    """argparse ``type=`` for a word that goes into output file names: letters, digits, ``.``, ``_``, ``-``.

    Examples:
        >>> file_tag("slack-1.0")
        'slack-1.0'
    """
    if not re.fullmatch(r"[A-Za-z0-9._-]+", text):
        raise argparse.ArgumentTypeError(f"expected letters, digits, '.', '_' or '-' (a file name part), got {text!r}")
    return text


def _one_line(err: BaseException) -> str:
    # KeyError's str() is the repr of its argument (quotes, escaped newlines): use the argument.
    text = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else str(err)
    text = " ".join(str(text).split())
    return text or type(err).__name__


def _command(argv: Sequence[str], resume_flag: str | None) -> str:
    """The command line that runs the current script again with ``argv`` (plus ``resume_flag``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        prog = ["python", "-m", spec.name.removesuffix(".__main__")]
    else:
        prog = ["python", sys.argv[0] if sys.argv and sys.argv[0] else "<script>"]
    args = [a for a in argv if a != "--debug"]
    if resume_flag and resume_flag not in args:
        args.append(resume_flag)
    return shlex.join(prog + args)


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


def run_cli(
    main: Callable[[list[str]], Any],
    argv: Sequence[str] | None = None,
    *,
    resume_flag: str | None = None,
    interrupted: str = "nothing was saved since the last checkpoint, if any; run the same command again",
    known_errors: tuple[type[BaseException], ...] = KNOWN_ERRORS,
) -> NoReturn:
    """Runs ``main(argv)`` as a command and exits with the status a shell user expects.

    * success: status 0;
    * a known error (``known_errors``, by default :class:`UserError`, ``ValueError``,
      ``KeyError`` and ``OSError``, whose messages name the problem and the fix): one line
      ``error: <message>`` on stderr, status 2, the traceback only with ``--debug`` (or
      ``TORCHRL_SKILLS_DEBUG=1``); any other exception is a bug and keeps its traceback;
    * :class:`~torchrl_skills.utils.signals.RunStopped` (a loop stopped at a step boundary by
      :class:`~torchrl_skills.utils.signals.GracefulStop`): one line ``stopped at <where>;
      checkpoint <path>; continue with <command>`` on stderr, status ``128 + signal`` (130 for
      SIGINT, 143 for SIGTERM). The command is the one that was run, plus ``resume_flag`` if the
      script needs one to continue;
    * SIGINT or SIGTERM anywhere else (loading data, generating a dataset, evaluating): the
      work in progress is abandoned (``finally`` blocks run, so atomic writers leave nothing
      half-written) and one line ``stopped by <signal>; <interrupted>`` is printed, status
      ``128 + signal``. Without this SIGTERM would end the process silently.

    It also keeps third-party output readable (:func:`~torchrl_skills.utils.third_party.quiet_third_party_output`).

    Args:
        main (callable): ``main(argv) -> anything``; it parses ``argv`` itself.
        argv (sequence of str, optional): the arguments. Defaults to ``sys.argv[1:]``.
        resume_flag (str, optional): the flag that continues a stopped run, e.g. ``"--resume"``;
            ``None`` for scripts that continue when run again with the same arguments.
        interrupted (str, optional): what a stop outside a checkpointed loop leaves behind and
            how to continue, e.g. ``"no dataset was written; run the same command again"``.
        known_errors (tuple of exception types, optional): errors printed in one line.

    Examples:
        Scripts end with::

            if __name__ == "__main__":
                run_cli(main, resume_flag="--resume")

        >>> def main(argv):
        ...     raise UserError("--dataset foo-v0 is not in the local Minari store: generate it first")
        >>> try:
        ...     run_cli(main, [])
        ... except SystemExit as exit:
        ...     print("status", exit.code)
        status 2
    """
    from torchrl_skills.utils.third_party import quiet_third_party_output

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("TORCHRL_SKILLS_DEBUG", "") not in ("", "0")
    quiet_third_party_output()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM's default action kills the process without a word; SIGINT's raises a bare
        # KeyboardInterrupt. Both become Interrupted, reported below in one line.
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _raise_interrupted)
    status = 0
    try:
        main(argv)
    except RunStopped as stop:
        print(stop.message(_command(argv, resume_flag)), file=sys.stderr, flush=True)
        status = stop.exit_code
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        if debug:
            traceback.print_exc()
        print(f"stopped by {signal_name(signum)}; {interrupted}", file=sys.stderr, flush=True)
        status = 128 + signum
    except known_errors as err:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(err)}", file=sys.stderr, flush=True)
        status = 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.exit(status)
