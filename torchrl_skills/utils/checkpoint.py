"""Atomic checkpoints: a crash in the middle of a save never corrupts the last good file.

Each checkpoint records the format version it was written with (:data:`CHECKPOINT_FORMAT_VERSION`),
so that a file from an incompatible version of the package is refused with a message that names
it, instead of failing later on a missing key.
"""
from __future__ import annotations

import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchrl_skills.utils.cli import UserError

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "CheckpointNotFoundError",
    "save_checkpoint",
    "load_checkpoint",
    "load_module_state",
    "state_dict_mismatch",
    "training_state",
    "load_training_state",
    "rng_state",
    "set_rng_state",
]

# Stored under FORMAT_KEY in every checkpoint. Raise it when a change to what the package's
# scripts store makes older checkpoints unreadable, and say in the CHANGELOG what to do.
# Checkpoints written before versions were stored (no FORMAT_KEY) read as version 0, which has
# the same layout as version 1.
CHECKPOINT_FORMAT_VERSION = 1
OLDEST_READABLE_VERSION = 0
# A name of its own: dicts saved through save_checkpoint may carry a "format_version" of their own
# (the direction-expert files do), which must not be overwritten.
FORMAT_KEY = "checkpoint_format_version"


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used: corrupt, truncated, not a checkpoint, or written
    with an incompatible format version. The message names the file and what to do."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """There is no checkpoint at the given path."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Writes ``state`` with :func:`torch.save` to a temporary file, then renames it onto ``path``.

    ``os.replace`` is atomic on POSIX and Windows, so ``path`` holds either the previous
    checkpoint or the new one, never a partial file, even if the process is killed mid-save.
    A dict ``state`` is stored with the package's checkpoint format version (key
    ``"checkpoint_format_version"``), which :func:`load_checkpoint` checks.

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
    # Temporary files of saves killed with SIGKILL (nothing could clean them up): the file itself
    # was never replaced, so they hold nothing the run needs.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    if isinstance(state, dict):
        state = {**state, FORMAT_KEY: CHECKPOINT_FORMAT_VERSION}
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

    Args:
        path (str or Path): the file.
        map_location (str or device, optional): where tensors are loaded. Defaults to ``"cpu"``.

    Raises:
        CheckpointNotFoundError: (a ``FileNotFoundError``) no file at ``path``.
        CheckpointError: (a ``ValueError``) the file is truncated or corrupt, is not a
            checkpoint, or was written with a format version this package cannot read; the
            message names the file and what to do.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "ckpt.pt"
        >>> _ = save_checkpoint({"step": 3}, path)
        >>> _ = path.write_bytes(path.read_bytes()[:100])  # cut short, as by a full disk
        >>> try:
        ...     load_checkpoint(path)
        ... except CheckpointError as err:
        ...     print(f"{path} is truncated or corrupt" in str(err))
        True
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"No checkpoint at {path}: check the path.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, ...
        # torch's first sentence says what failed; the rest is generic advice
        reason = " ".join(str(err).split()).split(". ")[0].rstrip(".") or type(err).__name__
        if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive
            raise CheckpointError(
                f"{path} is truncated or corrupt ({reason}); it cannot be loaded. Delete it and start the run "
                "again (or restore a copy); checkpoints are written atomically, so this file was damaged after "
                "it was written."
            ) from err
        raise CheckpointError(f"Cannot load checkpoint {path}: {reason}") from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a checkpoint of torchrl-skills (a dict written by "
            "save_checkpoint): pass a checkpoint file of the package's scripts."
        )
    version = checkpoint.get(FORMAT_KEY, 0)
    if not isinstance(version, int) or not OLDEST_READABLE_VERSION <= version <= CHECKPOINT_FORMAT_VERSION:
        newer = isinstance(version, int) and version > CHECKPOINT_FORMAT_VERSION
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this torchrl-skills reads versions "
            f"{OLDEST_READABLE_VERSION} to {CHECKPOINT_FORMAT_VERSION}. "
            + (
                "It was written by a newer torchrl-skills: upgrade the package to load it."
                if newer
                else "Start the run again without it (or load it with the torchrl-skills release that wrote it)."
            )
        )
    return checkpoint


def state_dict_mismatch(module: torch.nn.Module, state_dict: dict[str, Any]) -> str:
    """What keeps ``state_dict`` from loading into ``module``, compared flat: missing and unexpected
    keys and entries of another shape, a few of each ("" when it fits). See :func:`load_module_state`.

    Examples:
        >>> from torch import nn
        >>> state_dict_mismatch(nn.Linear(2, 3), {"weight": torch.zeros(3, 4)})
        "missing ['bias']; other shapes ['weight']"
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    reshaped = sorted(
        key for key in set(expected) & set(state_dict)
        if hasattr(state_dict[key], "shape") and tuple(state_dict[key].shape) != tuple(expected[key].shape)
    )  # fmt: skip
    return "; ".join(f"{name} {keys[:3]}{' ...' if len(keys) > 3 else ''}" for name, keys in
                     (("missing", missing), ("unexpected", unexpected), ("other shapes", reshaped)) if keys)  # fmt: skip


def load_module_state(module: torch.nn.Module, state_dict: dict[str, Any], what: str = "module") -> None:
    """``module.load_state_dict(state_dict)`` that refuses a checkpoint of other networks.

    Works around a tensordict bug (0.14): a loss holding its networks' parameters in a
    :class:`~tensordict.nn.TensorDictParams` (every TorchRL loss: ``actor_network_params``, ...)
    compares key sets at the top level only, so a state dict whose keys differ deeper down
    (``module.0.module.mlp.0.weight`` against ``module.0.module.0.module.0.weight``: the same
    network built by other code) loads with "All keys matched successfully" and leaves every
    parameter as it was. A resumed run then continues silently from fresh networks. Here the
    flat key sets and shapes are compared first, and a mismatch raises one
    :class:`CheckpointError` naming the module, a few keys and what to do.

    Args:
        module (torch.nn.Module): the module (or optimizer-free loss) to load into.
        state_dict (dict): what ``module.state_dict()`` saved.
        what (str): the module's name in the message. Defaults to ``"module"``.

    Examples:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 3))
        >>> load_module_state(net, nn.Sequential(nn.Linear(2, 3)).state_dict(), "net")
        >>> load_module_state(net, {"mlp.0.weight": net[0].weight, "mlp.0.bias": net[0].bias}, "net")
        Traceback (most recent call last):
        ...
        torchrl_skills.utils.checkpoint.CheckpointError: The checkpoint's net does not match the one built here ...
    """
    mismatch = state_dict_mismatch(module, state_dict)
    if mismatch:
        raise CheckpointError(
            f"The checkpoint's {what} does not match the one built here ({mismatch}): it was written by "
            "other code or other network sizes. Resume with the flags and package version that wrote it, or start "
            "a new run without --resume."
        )
    module.load_state_dict(state_dict)


def _is_replay_buffer(part) -> bool:
    from torchrl.data import ReplayBuffer

    return isinstance(part, ReplayBuffer)


def training_state(parts: dict[str, Any]) -> dict[str, Any]:
    """The state of every named part of a learner, for a checkpoint: networks and losses
    (``nn.Module``), optimizers and replay buffers (:func:`replay_buffer_state`: only the filled rows).
    Restore with :func:`load_training_state`.

    Examples:
        >>> from torch import nn
        >>> from torchrl.data import LazyTensorStorage, ReplayBuffer
        >>> net = nn.Linear(2, 3)
        >>> parts = {"net": net, "optim": torch.optim.Adam(net.parameters()), "rb": ReplayBuffer(storage=LazyTensorStorage(10))}
        >>> sorted(training_state(parts))
        ['net', 'optim', 'rb']
    """
    return {name: replay_buffer_state(part) if _is_replay_buffer(part) else part.state_dict()
            for name, part in parts.items()}  # fmt: skip


def load_training_state(parts: dict[str, Any], state: dict[str, Any]) -> None:
    """Loads what :func:`training_state` saved into freshly built ``parts`` (same names), refusing
    with one :class:`CheckpointError` line a part that is absent, or a network or optimizer of
    another shape (:func:`load_module_state`; torch's optimizers would raise a traceback).

    Examples:
        >>> from torch import nn
        >>> net = nn.Linear(2, 3)
        >>> saved = training_state({"net": net})
        >>> load_training_state({"net": nn.Linear(2, 3)}, saved)
        >>> load_training_state({"net": nn.Linear(2, 4)}, saved)
        Traceback (most recent call last):
        ...
        torchrl_skills.utils.checkpoint.CheckpointError: The checkpoint's net does not match the one built here ...
    """
    absent = [name for name in parts if name not in state]
    if absent:
        raise CheckpointError(
            f"The checkpoint holds no {absent} (it has {sorted(state)}): it was written by other code. Resume with "
            "the script that wrote it, or start a new run without --resume."
        )
    for name, part in parts.items():
        if _is_replay_buffer(part):
            load_replay_buffer_state(part, state[name])
        elif isinstance(part, torch.nn.Module):
            load_module_state(part, state[name], name)
        else:
            try:
                part.load_state_dict(state[name])
            except (ValueError, KeyError) as err:  # torch.optim: "... doesn't match the size of optimizer's group"
                raise CheckpointError(
                    f"The checkpoint's {name} does not match the one built here ({err}). Resume with the flags that "
                    "wrote it, or start a new run without --resume."
                ) from err


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


def replay_buffer_state(buffer) -> dict[str, Any]:
    """A replay buffer's content for a checkpoint, without the unused part of a preallocated storage.

    ``ReplayBuffer.state_dict()`` saves a :class:`~torchrl.data.LazyTensorStorage` whole, so a
    1M-step buffer holding 1k steps makes a checkpoint of the full size. Until the buffer wraps
    around, its content is the first ``len(buffer)`` rows in write order, and extending an empty
    buffer with them rebuilds it exactly (same rows, same write cursor); after wrapping, the full
    state dict is kept. Restore with :func:`load_replay_buffer_state`.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
        >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(1_000_000), batch_size=2)
        >>> _ = rb.extend(TensorDict({"x": torch.arange(5)}, [5]))
        >>> state = replay_buffer_state(rb)
        >>> state["rows"]["x"].shape
        torch.Size([5])
        >>> new = TensorDictReplayBuffer(storage=LazyTensorStorage(1_000_000), batch_size=2)
        >>> load_replay_buffer_state(new, state)
        >>> len(new), new.storage[4]["x"].item()
        (5, 4)
    """
    n = len(buffer)
    if n == 0 or n >= buffer.storage.max_size:
        return {"state_dict": buffer.state_dict()}
    return {"rows": buffer.storage.get(torch.arange(n)).clone()}


def replay_rows_oldest_first(buffer):
    """The rows a replay buffer holds, oldest first (a copy), whether or not its storage wrapped.

    After a round-robin storage wraps, ``buffer[:len(buffer)]`` starts in the middle of time; these
    rows do not, so extending any empty buffer with them rebuilds the same FIFO history (a smaller
    one keeps the newest rows, as it would have). ``None`` for an empty buffer (nothing to keep).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
        >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(5), batch_size=2)
        >>> _ = rb.extend(TensorDict({"x": torch.arange(7)}, [7]))  # 0 and 1 overwritten by 5 and 6
        >>> rb[:]["x"].tolist(), replay_rows_oldest_first(rb)["x"].tolist()
        ([5, 6, 2, 3, 4], [2, 3, 4, 5, 6])
    """
    n = len(buffer)
    if n == 0:
        return None
    oldest = buffer.write_count % n if n >= buffer.storage.max_size else 0
    return buffer.storage.get((torch.arange(n) + oldest) % n).clone()


def load_replay_buffer_state(buffer, state: dict[str, Any]) -> None:
    """Restores what :func:`replay_buffer_state` saved into ``buffer`` (empty, same storage class)."""
    if "rows" in state:
        buffer.extend(state["rows"])
    else:
        buffer.load_state_dict(state["state_dict"])
