"""Output folders and logs that always describe one run.

* :class:`OutputDir`: a run replaces the files it owns (a re-run never leaves an old plot next to
  new results), and a run that fails before writing anything leaves no empty folder behind.
* :func:`save_figure`: a plot is written whole or not at all (a stopped run never leaves half a PNG).
* :func:`resume_logger` / :func:`truncate_csv_logs`: a resumed run continues its logs from the
  checkpoint's step, without repeating what was logged between that checkpoint and the
  interruption.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

__all__ = ["OutputDir", "resume_logger", "save_figure", "truncate_csv_logs"]


class OutputDir:
    """Context manager for the folder a run writes into.

    * On entry the folder is created (with its missing parents).
    * :meth:`clear` deletes the outputs the run owns (``owned``: glob patterns relative to the
      folder, files or folders), so that what the run writes replaces them instead of sitting
      next to stale ones. Call it once the run has started successfully (arguments checked,
      data loaded): a run that fails to start then leaves the previous outputs alone.
    * On an exception (an error, Ctrl-C) every folder that the run created and that holds no file
      is removed again, the output folder itself included: a failed start leaves nothing behind,
      while a run that wrote a checkpoint keeps it.

    Files the run does not own (other runs' outputs, a dataset cache) are never touched.

    Args:
        path (str or Path): the folder.
        owned (iterable of str, optional): glob patterns of the outputs the run owns and
            replaces, e.g. ``["results.json", "*.png", "logs"]``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> root = Path(tempfile.mkdtemp())
        >>> try:
        ...     with OutputDir(root / "run") as out:
        ...         raise ValueError("bad --dataset")  # the run fails before writing anything
        ... except ValueError:
        ...     pass
        >>> (root / "run").exists()
        False
        >>> with OutputDir(root / "run", owned=["*.png"]) as out:
        ...     _ = (out.path / "old.png").write_bytes(b"")
        ...     print([p.name for p in out.clear()])
        ...     _ = (out.path / "new.png").write_bytes(b"")
        ['old.png']
        >>> sorted(p.name for p in (root / "run").iterdir())
        ['new.png']
    """

    def __init__(self, path: str | os.PathLike, owned: Iterable[str] = ()):
        self.path = Path(path)
        self.owned = tuple(owned)
        self._existing: set[Path] | None = None

    def __enter__(self) -> OutputDir:
        # Folders that exist now are never removed; new ones are, if they are still empty on error.
        top = self.path.absolute()
        while not top.parent.exists():
            top = top.parent
        self._existing = {top.parent} | ({top} if top.exists() else set())
        if top.exists():
            self._existing |= {Path(root) for root, _, _ in os.walk(top)}
        self._top = top
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and self._existing is not None:
            self._remove_new_empty_folders()
        return False

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def clear(self, owned: Iterable[str] | None = None) -> list[Path]:
        """Deletes the owned outputs (``owned`` or the constructor's patterns); returns what it deleted."""
        removed = []
        for pattern in self.owned if owned is None else owned:
            for path in sorted(self.path.glob(pattern)):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
        return removed

    def _remove_new_empty_folders(self) -> None:
        if not self._top.exists():
            return
        for root, _, _ in os.walk(self._top, topdown=False):
            folder = Path(root)
            if folder not in self._existing:
                try:
                    folder.rmdir()  # only succeeds on an empty folder
                except OSError:
                    pass


def truncate_csv_logs(directory: str | os.PathLike, step: int) -> int:
    """Drops the rows logged after ``step`` from the CSV logs under ``directory``.

    TorchRL's :class:`~torchrl.record.loggers.CSVLogger` appends one ``step,value`` row per
    :meth:`log_scalar` call to ``<log_dir>/<exp_name>/scalars/<name>.csv`` (``name`` may contain
    ``/``). A run stopped some steps after its last checkpoint has logged those steps; resumed
    from the checkpoint it logs them again. Calling this with the checkpoint's step before the
    resumed run logs anything keeps each file to the rows the checkpoint has seen (and drops a
    last row cut short by a kill in mid-write). Files are
    rewritten atomically; other loggers (TensorBoard, W&B) are not touched.

    Args:
        directory (str or Path): a folder holding CSV logs (searched recursively), e.g. the
            logger's experiment folder; a missing folder is fine.
        step (int): the checkpoint's step; rows with a larger step are dropped.

    Returns:
        the number of rows dropped.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from torchrl.record.loggers import CSVLogger
        >>> logger = CSVLogger("run", log_dir=tempfile.mkdtemp())
        >>> for step in (10, 20, 30):
        ...     logger.log_scalar("train/loss", 1.0 / step, step=step)
        >>> truncate_csv_logs(Path(logger.log_dir) / "run", step=20)  # resumed from step 20
        1
        >>> (Path(logger.log_dir) / "run" / "scalars" / "train" / "loss.csv").read_text().splitlines()
        ['10,0.1', '20,0.05']
    """
    dropped = 0
    for path in sorted(Path(directory).rglob("*.csv")):
        lines = path.read_text().splitlines(keepends=True)
        # A last row without its newline was cut by a kill in mid-write: the next row would be
        # appended onto it, so it goes too.
        keep = [line for line in lines if line.endswith("\n") and not _logged_after(line, step)]
        if len(keep) == len(lines):
            continue
        dropped += len(lines) - len(keep)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.writelines(keep)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    return dropped


def resume_logger(logger, step: int) -> None:
    """Makes a TorchRL logger of a resumed run continue from the checkpoint's ``step``.

    A run stopped some steps after its last checkpoint has logged those steps; resumed from the
    checkpoint it logs them again. Per logger:

    * :class:`~torchrl.record.loggers.CSVLogger`: the rows after ``step`` are dropped
      (:func:`truncate_csv_logs`);
    * :class:`~torchrl.record.loggers.TensorboardLogger`: its ``SummaryWriter`` is reopened on
      the same folder with ``purge_step=step + 1``, so TensorBoard hides the stopped run's events
      after ``step`` (its own mechanism for restarts; the event files are not rewritten);
    * anything else (``None``, W&B, MLflow, ...) is left as is: W&B starts a new run for each
      process unless told to resume one, so a resumed run does not mix with the stopped one.

    Call it once, right after creating the logger of a resumed run and before it logs anything
    (a CSV file it already holds open would keep the rows).

    Args:
        logger: a TorchRL logger, or ``None``.
        step (int): the checkpoint's step.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from torchrl.record.loggers import CSVLogger
        >>> log_dir = tempfile.mkdtemp()
        >>> stopped = CSVLogger("run", log_dir=log_dir)  # checkpoint at step 20, stopped at 30
        >>> stopped.log_scalar("loss", 1.0, step=30)
        >>> logger = CSVLogger("run", log_dir=log_dir)  # the resumed run's, before it logs anything
        >>> resume_logger(logger, step=20)
        >>> logger.log_scalar("loss", 0.5, step=30)  # step 30 again: once in the log
        >>> (Path(log_dir) / "run" / "scalars" / "loss.csv").read_text().splitlines()
        ['30,0.5']
    """
    from torchrl.record.loggers import CSVLogger, TensorboardLogger

    if isinstance(logger, CSVLogger):
        truncate_csv_logs(Path(logger.log_dir) / logger.exp_name, step)
    elif isinstance(logger, TensorboardLogger):
        from torch.utils.tensorboard import SummaryWriter

        log_dir = logger.experiment.log_dir
        logger.experiment.close()
        logger.experiment = SummaryWriter(log_dir=log_dir, purge_step=int(step) + 1)


def _logged_after(line: str, step: int) -> bool:
    try:
        return float(line.split(",", 1)[0]) > step
    except ValueError:  # a header or anything else that is not a step,value row: kept
        return False


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Saves a matplotlib figure atomically (a temporary file next to ``path``, then a rename),
    creating the missing folders, and closes it.

    Args:
        fig (matplotlib.figure.Figure): the figure.
        path (str or Path): the image file; its suffix gives the format (``.png``).
        dpi (int, optional): resolution. Defaults to ``110``.

    Returns:
        Path: ``path``.

    Examples:
        >>> import tempfile
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = ax.plot([0, 1], [1, 0])
        >>> path = save_figure(fig, Path(tempfile.mkdtemp()) / "plots" / "line.png")
        >>> path.stat().st_size > 0, sorted(p.name for p in path.parent.iterdir())
        (True, ['line.png'])
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name of its own: two runs resuming one model (``--tag``) write the same plot, and a
    # shared temporary name let one remove the other's file before its rename (FileNotFoundError).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or None)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` to ``path`` through a temporary file of its own, renamed over ``path``.

    A reader never sees a half-written file, and writers of the same path (two evaluations of one
    model side by side) do not remove each other's temporary file.

    Examples:
        >>> import tempfile
        >>> path = write_text_atomic(Path(tempfile.mkdtemp()) / "out" / "result.json", "{}")
        >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
        ('{}', ['result.json'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
