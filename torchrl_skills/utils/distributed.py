"""Training across processes and machines with DistributedDataParallel, launched by ``torchrun``.

One process per device (``torchrun --nproc_per_node N``, and ``--nnodes`` for several machines).
:func:`init_distributed` reads what ``torchrun`` sets in the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), joins the process group (gloo on
CPU, NCCL on CUDA) and returns a :class:`DistributedContext`; without ``torchrun`` it returns the
single-process context, on which every method is a no-op, so one training script serves both.

The recipe (``examples/train_skill_model.py``):

* every rank builds the same model; :meth:`DistributedContext.wrap` wraps the module whose
  ``forward`` uses the parameters (for a skill model: the :class:`~torchrl_skills.objectives.SkillModelLoss`,
  which calls the four networks) in ``DistributedDataParallel``, which copies rank 0's weights to
  every rank and averages the gradients in ``backward()``, so the optimizers of all ranks take
  identical steps;
* each rank samples its own subtrajectories (:meth:`~DistributedContext.rank_seed`) of
  ``global batch / world size`` (:meth:`~DistributedContext.local_batch_size`): the averaged
  gradient is that of one process at the global batch;
* rank 0 alone logs, validates and writes the (atomic) checkpoints, which hold every rank's RNG
  state (:meth:`~DistributedContext.gather`) so that ``--resume`` continues each rank's stream;
* a stop request (Ctrl-C / SIGTERM) on any rank is agreed on by all
  (:meth:`~DistributedContext.any`) so that every rank stops after the same step.

Examples:
    >>> ctx = init_distributed("cpu")      # not under torchrun: one process
    >>> ctx.world_size, ctx.is_main, ctx.local_batch_size(100)
    (1, True, 100)
    >>> ctx.any(False), ctx.mean({"loss": 1.5})
    (False, {'loss': 1.5})
"""
from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import distributed as dist
from torch import nn

from torchrl_skills.utils.cli import UserError

__all__ = ["DistributedContext", "DistributedSetupError", "init_distributed"]

# Seeds of ranks > 0 are offset by multiples of this prime, far from any seed a user passes.
_RANK_SEED_STRIDE = 1_000_003


class DistributedSetupError(UserError, RuntimeError):
    """The distributed launch is inconsistent (e.g. a batch that does not split over the ranks)."""


@dataclass
class DistributedContext:
    """Where this process stands in a distributed run; every method is a no-op in a single process.

    Attributes:
        rank (int): this process's global rank (0 in a single process).
        world_size (int): number of processes.
        local_rank (int): rank on this machine (selects the GPU).
        device (torch.device): this process's device.
        backend (str or None): ``"gloo"`` or ``"nccl"``; ``None`` in a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, validates and writes checkpoints."""
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        """``DistributedDataParallel(module)`` when distributed, else ``module`` itself.

        Wrap the module whose ``forward`` runs every parameter that is trained (a loss module that
        calls the networks): DDP registers its gradient hooks on those parameters and averages
        their gradients over the ranks during ``backward()``. The parameters stay the same
        objects, so optimizers built on ``module``'s parameters keep working. Buffers are not
        broadcast at each forward: they are built identically on every rank (normaliser
        statistics from the same data, loss weights).
        """
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        params = inspect.signature(DistributedDataParallel).parameters
        # torch >= 2.12 names it forward_sync_buffers (broadcast_buffers is deprecated there)
        no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
        return DistributedDataParallel(module, device_ids=device_ids, **no_sync)

    def local_batch_size(self, global_batch_size: int) -> int:
        """Each rank's share of a global batch (it must split evenly)."""
        if global_batch_size % self.world_size:
            raise DistributedSetupError(
                f"The batch of {global_batch_size} does not split over {self.world_size} processes: pass a "
                f"--batch-size that is a multiple of {self.world_size} (it is the global batch, summed over processes)."
            )
        return global_batch_size // self.world_size

    def rank_seed(self, seed: int) -> int:
        """A seed of this rank's own: ``seed`` on rank 0, far-apart seeds on the other ranks."""
        return seed + self.rank * _RANK_SEED_STRIDE

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (e.g. a stop request)."""
        if not self.enabled:
            return bool(flag)
        value = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Averages scalars over the ranks (e.g. the losses of each rank's share of the batch)."""
        if not self.enabled or not values:
            return dict(values)
        keys = sorted(values)
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        tensor /= self.world_size
        return dict(zip(keys, tensor.tolist()))

    def gather(self, obj: Any) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def parameters_in_sync(self, module: nn.Module) -> bool:
        """Whether every rank holds bit-identical parameters of ``module`` (collective: call it on all ranks)."""
        if not self.enabled:
            return True
        flat = torch.cat([p.detach().reshape(-1).cpu() for p in module.parameters()])
        digest = hashlib.sha1(flat.numpy().tobytes()).hexdigest()
        return len(set(self.gather(digest))) == 1

    def barrier(self) -> None:
        """Waits until every rank gets here."""
        if not self.enabled:
            return
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def shutdown(self) -> None:
        """Leaves the process group (call once, at the end of the run, on every rank)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def __repr__(self) -> str:
        if not self.enabled:
            return f"DistributedContext(single process, device={self.device})"
        return (
            f"DistributedContext(rank={self.rank}/{self.world_size}, local_rank={self.local_rank}, "
            f"device={self.device}, backend={self.backend})"
        )


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedSetupError(f"The environment variable {name}={value!r} is not an integer.") from None


def init_distributed(device: str | torch.device = "cpu", backend: str | None = None) -> DistributedContext:
    """Joins the process group of a ``torchrun`` launch, or returns the single-process context.

    Args:
        device (str or torch.device, optional): ``"cpu"`` or ``"cuda"``; under ``torchrun`` with
            CUDA, each process takes GPU ``LOCAL_RANK``. Defaults to ``"cpu"``.
        backend (str, optional): process-group backend. Defaults to NCCL on CUDA, gloo on CPU.

    Returns:
        DistributedContext: this process's rank, world size and device.
    """
    from torchrl_skills.utils import resolve_device

    device = resolve_device(device)
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedContext(device=device)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DistributedSetupError(
                f"LOCAL_RANK {local_rank} but this machine has {torch.cuda.device_count()} GPU(s): start at most "
                f"one process per GPU (torchrun --nproc_per_node {torch.cuda.device_count()})."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device, backend=backend)
