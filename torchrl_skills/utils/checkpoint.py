"""Atomic checkpoints: a crash in the middle of a save never corrupts the last good file."""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Writes ``state`` with :func:`torch.save` to a temporary file, then renames it onto ``path``.

    ``os.replace`` is atomic on POSIX and Windows, so ``path`` holds either the previous
    checkpoint or the new one, never a partial file, even if the process is killed mid-save.

    Args:
        state (dict): anything :func:`torch.save` accepts.
        path (str or Path): destination file; parent folders are created.

    Examples:
        >>> import tempfile, torch
        >>> from torchrl_skills.utils import save_checkpoint, load_checkpoint
        >>> path = save_checkpoint({"step": 3}, tempfile.mkdtemp() + "/ckpt.pt")
        >>> load_checkpoint(path)["step"]
        3
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: with the path, when there is nothing to resume from.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at {path}. Train without --resume first, or pass the path of an "
            "existing checkpoint."
        )
    return torch.load(path, map_location=map_location, weights_only=False)


def rng_state() -> dict[str, Any]:
    """All random-generator states a training loop depends on (python, numpy, torch, cuda)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores the states saved by :func:`rng_state`, so a resumed run draws the same numbers."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    # A checkpoint loaded with map_location="cuda" moves these byte tensors to the GPU, where
    # torch refuses them ("RNG state must be a torch.ByteTensor"): they live on the CPU.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
