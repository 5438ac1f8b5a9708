"""Module weights that a learner publishes and copies of the module in other processes read live."""
from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import torch
from tensordict import TensorDict
from torch import nn

__all__ = ["SharedWeights"]


class SharedWeights:
    """A module's parameters and buffers in memory-mapped files, read live by copies in other processes.

    TorchRL's multi-process collectors send ``create_env_fn`` to their workers with cloudpickle,
    which copies every tensor it reaches, in shared memory or not. A module that the *env* runs
    (the low-level policy inside a :class:`~torchrl_skills.envs.HierarchicalEnv`) would then act
    in every worker with the weights it had when the collector started, for the whole run:
    ``collector.update_policy_weights_()`` updates the collector's policy only.

    ``SharedWeights`` keeps a CPU copy of the weights in memory-mapped files, which pickle by
    file name: a module bound to them in any process (:meth:`bind`, e.g. inside the env factory)
    reads the same memory, and :meth:`publish` after each update makes the learner's current
    weights the ones every bound copy acts with (a worker may read a half-written update for one
    step, as with TorchRL's own shared-memory weight sync).

    Args:
        module (nn.Module): the learner's module (any device); it is never modified.
        path (str or Path, optional): folder of the files. Defaults to a new temporary folder,
            removed when this object is garbage-collected in the process that created it.

    Examples:
        >>> import copy, cloudpickle
        >>> learner = nn.Linear(2, 1)
        >>> shared = SharedWeights(learner)
        >>> worker_copy = cloudpickle.loads(cloudpickle.dumps(lambda: shared.bind(copy.deepcopy(learner))))()
        >>> with torch.no_grad():
        ...     _ = learner.bias.fill_(3.0)      # an optimizer step
        >>> shared.publish()
        >>> worker_copy.bias.item()
        3.0
    """

    def __init__(self, module: nn.Module, path: str | Path | None = None):
        owned = path is None
        self.path = Path(tempfile.mkdtemp(prefix="torchrl_skills_weights_") if owned else path)
        self._source: nn.Module | None = module
        self.weights = TensorDict.from_module(module).detach().to("cpu").clone().memmap_(self.path)
        if owned:
            weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def publish(self, module: nn.Module | None = None) -> None:
        """Copies ``module``'s (default: the learner's) current weights into the shared files."""
        module = self._source if module is None else module
        if module is None:
            raise RuntimeError("publish() runs in the learner's process, which holds the module the weights come from.")
        with torch.no_grad():
            self.weights.update_(TensorDict.from_module(module).detach())

    def bind(self, module: nn.Module) -> nn.Module:
        """Makes ``module``'s parameters and buffers views of the shared weights (in place); returns it.

        Bind a *copy* of the learner's module (e.g. ``bind(copy.deepcopy(policy))`` in an env
        factory), never the learner's own module, whose optimizer holds its parameters.
        """
        # plain tensors over the same mapped memory (a Parameter cannot wrap a MemoryMappedTensor)
        self.weights.apply(lambda t: t.as_subclass(torch.Tensor)).to_module(module)
        return module

    def __getstate__(self) -> dict:
        # The learner's module stays behind; the files travel by name.
        return {"path": self.path, "weights": self.weights, "_source": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"SharedWeights(path={str(self.path)!r}, tensors={len(list(self.weights.keys(True, True)))})"
