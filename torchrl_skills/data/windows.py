"""Replay of windows of consecutive steps that never cross episode boundaries (SPEC B2)."""
from __future__ import annotations

from tensordict.utils import NestedKey

from torchrl.data import LazyMemmapStorage, LazyTensorStorage, SliceSampler, TensorDictReplayBuffer

__all__ = ["make_window_replay_buffer"]


def make_window_replay_buffer(
    capacity: int,
    slice_len: int,
    num_slices: int,
    *,
    traj_key: NestedKey = ("collector", "traj_ids"),
    memmap: bool = False,
    scratch_dir: str | None = None,
    device=None,
) -> TensorDictReplayBuffer:
    """A :class:`~torchrl.data.TensorDictReplayBuffer` of raw steps sampled as windows.

    Each sample is ``num_slices`` slices of ``slice_len`` consecutive steps of one
    trajectory (:class:`~torchrl.data.SliceSampler` with ``strict_length=True``: slices never
    cross a trajectory boundary, and trajectories shorter than ``slice_len`` are skipped),
    returned flat as ``[num_slices * slice_len]``; ``sample().reshape(num_slices, slice_len)``
    gives the windows. Pair it with
    :class:`~torchrl_skills.objectives.latent_goal_reward.LatentWindowRelabel`.

    Steps are stored once (not as stacked windows), so a window costs no extra memory.

    Args:
        capacity (int): number of steps kept.
        slice_len (int): steps per window.
        num_slices (int): windows per sample (the SAC batch size).

    Keyword Args:
        traj_key (NestedKey): trajectory-id entry; collectors write ``("collector", "traj_ids")``.
        memmap (bool): use :class:`~torchrl.data.LazyMemmapStorage` (on-disk, for pixels)
            instead of :class:`~torchrl.data.LazyTensorStorage`. Defaults to ``False``.
        scratch_dir (str, optional): folder for the memory-mapped files.
        device: storage device.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.data.windows import make_window_replay_buffer
        >>> rb = make_window_replay_buffer(100, slice_len=4, num_slices=3)
        >>> traj = torch.cat([torch.zeros(10), torch.ones(10)]).long()
        >>> _ = rb.extend(TensorDict({"obs": torch.arange(20), ("collector", "traj_ids"): traj}, [20]))
        >>> windows = rb.sample().reshape(3, 4)
        >>> bool((windows["collector", "traj_ids"] == windows["collector", "traj_ids"][:, :1]).all())
        True
    """
    if slice_len < 1 or num_slices < 1:
        raise ValueError(f"slice_len and num_slices must be >= 1, got {slice_len} and {num_slices}.")
    # LazyTensorStorage(device=None) fails in torchrl 0.14 (torch.device(None)): pass "cpu" explicitly
    device = "cpu" if device is None else device
    storage = (
        LazyMemmapStorage(capacity, scratch_dir=scratch_dir, device=device)
        if memmap
        else LazyTensorStorage(capacity, device=device)
    )
    sampler = SliceSampler(slice_len=slice_len, traj_key=traj_key, strict_length=True)
    return TensorDictReplayBuffer(storage=storage, sampler=sampler, batch_size=slice_len * num_slices)
