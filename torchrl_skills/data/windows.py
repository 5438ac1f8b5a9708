"""Replay of windows of consecutive steps that never cross episode boundaries (SPEC B2)."""
from __future__ import annotations

import torch
from tensordict.utils import NestedKey

from torchrl.data import LazyMemmapStorage, LazyTensorStorage, SliceSampler, TensorDictReplayBuffer

__all__ = ["make_window_replay_buffer"]


class _FlagReadingSliceSampler(SliceSampler):
    """:class:`~torchrl.data.SliceSampler` that reads only the flags it needs from the storage.

    Works around torchrl 0.14: ``SliceSampler._finalize_index`` indexes the whole storage
    (``storage[index]``) to read the sampled steps' done / terminated / ``is_init`` flags, so with
    pixels every frame of the batch was copied once more only to be thrown away. Symptom, HIGL
    on CarRacing (384 steps of two 3 x 96 x 96 ``uint8`` frames per batch): ``rb.sample()`` took
    62 ms of a 195 ms update. Here the storage seen by that method holds the flags only.
    """

    def _finalize_index(self, *, storage, **kwargs):
        keys = [self.init_key] if self.init_key is not None else []
        if self.truncated_key is not None:
            keys += [_sibling(self.truncated_key, "done"), _sibling(self.truncated_key, "terminated")]
        return super()._finalize_index(storage=_SelectedEntries(storage, keys), **kwargs)


class _RowGatherMixin:
    """A torchrl tensor storage that reads a batch of rows with ``index_select``.

    Works around slow advanced indexing: the storage reads ``tensor[(index,)]`` (``aten::index``),
    which on ``uint8`` frames is several times slower than ``tensor.index_select(0, index)`` (torch
    2.13, one CPU thread, 384 rows of two 3 x 96 x 96 frames: 30 ms against 5-9 ms). Other reads
    (slices, masks, ...) go through torchrl unchanged.
    """

    def get(self, index):
        if isinstance(index, tuple) and len(index) == 1:
            index = index[0]
        if (
            isinstance(index, torch.Tensor) and index.ndim == 1 and not index.dtype.is_floating_point
            and index.dtype != torch.bool and self.initialized and not isinstance(self._storage, torch.Tensor)
        ):  # fmt: skip
            rows = index.to(device=self._storage.device, dtype=torch.long)
            rows = torch.where(rows < 0, rows + len(self), rows)  # negative rows count from the end, as indexing does
            return self._storage.apply(lambda t: _plain(t).index_select(0, rows), batch_size=rows.shape)
        return super().get(index)


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """The memory-mapped file of a ``MemoryMappedTensor`` seen as a plain tensor (no copy), so that
    what is read from it is an ordinary tensor, as torchrl's own indexing returns."""
    return tensor.as_subclass(torch.Tensor) if type(tensor) is not torch.Tensor else tensor


class _RowGatherStorage(_RowGatherMixin, LazyTensorStorage):
    """:class:`~torchrl.data.LazyTensorStorage` reading rows with ``index_select`` (``_RowGatherMixin``)."""


class _RowGatherMemmapStorage(_RowGatherMixin, LazyMemmapStorage):
    """:class:`~torchrl.data.LazyMemmapStorage` reading rows with ``index_select`` (``_RowGatherMixin``)."""


def _sibling(key: NestedKey, name: str) -> NestedKey:
    """``("next", "truncated") -> ("next", name)``; ``"truncated" -> name``."""
    return (*key[:-1], name) if isinstance(key, tuple) else name


class _SelectedEntries:
    """``storage[index]`` restricted to ``keys`` (those present), without reading the others."""

    def __init__(self, storage, keys):
        self.storage, self.keys = storage, keys

    def __getitem__(self, index):
        data = self.storage._storage  # the storage's TensorDict (all rows; index only reaches filled ones)
        return data.select(*self.keys, strict=False)[index]


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

    Steps are stored once (not as stacked windows), so a window costs no extra memory, and a
    sample reads each stored entry once: torchrl's sampler and storage as they are read pixel
    frames twice and slowly (see ``_FlagReadingSliceSampler`` and ``_RowGatherStorage``;
    ``benchmarks/bench_window_replay.py``: 7x faster on CarRacing's frames).

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
        _RowGatherMemmapStorage(capacity, scratch_dir=scratch_dir, device=device)
        if memmap
        else _RowGatherStorage(capacity, device=device)
    )
    sampler = _FlagReadingSliceSampler(slice_len=slice_len, traj_key=traj_key, strict_length=True)
    return TensorDictReplayBuffer(storage=storage, sampler=sampler, batch_size=slice_len * num_slices)
