"""A safety layer for legged robots: no torque while the torso tilts past a threshold.

Planning with a skill model on OGBench's AntMaze, most of the episodes that fail after stall
recovery end with the ant on its back, which it cannot get up from: the torso rises while the ant
is slow against a wall and turns over 12-20 steps after a replan. The data holds no flips, so the
world model cannot warn of them. Relaxing every joint while the torso leans lets the ant settle
back on its legs: on validation pairs of our own in antmaze-medium it halved the flips, but on
100 giant validation episodes it did not clearly change success, so it is off by default (README,
issue 8).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictModuleWrapper
from tensordict.utils import NestedKey

__all__ = ["UprightGuard", "torso_up"]


def torso_up(quaternion: torch.Tensor) -> torch.Tensor:
    """The world-z component of a body's up axis, from its MuJoCo quaternion ``(w, x, y, z)``.

    1 when upright, 0 on its side, -1 upside down: the ``[2, 2]`` entry of the rotation matrix,
    ``(w^2 - x^2 - y^2 + z^2) / |q|^2``. The norm matters: an env's reset noise on ``qpos`` (as in
    the ant's) leaves the first observation's quaternion off unit length, until MuJoCo's next step
    normalises it.

    Examples:
        >>> torso_up(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))  # upright, on its back
        tensor([ 1., -1.])
    """
    w, x, y, z = quaternion.unbind(-1)
    return (w.square() - x.square() - y.square() + z.square()) / quaternion.square().sum(-1)


class UprightGuard(TensorDictModuleWrapper):
    """Wraps a policy and zeroes its action while the torso tilts: ``up < min_up``.

    The torso's orientation is read from the observation (the quaternion's entries given by
    ``quaternion_indices``, MuJoCo's ``(w, x, y, z)`` order); ``up`` is :func:`torso_up`. Every
    other key the wrapped policy writes is kept, and its attributes and methods (e.g.
    :meth:`SkillMPCPolicy.make_tensordict_primer`) stay reachable through the wrapper, as with
    TorchRL's exploration wrappers.

    Keys: reads ``observation_key`` and the wrapped policy's ``action_key`` output; writes
    ``action_key``.

    Args:
        policy (TensorDictModuleBase): the policy to guard, writing ``action_key``.
        quaternion_indices (sequence of 4 int, optional): where the torso quaternion sits in the
            observation. Defaults to ``(3, 4, 5, 6)``: ``qpos[3:7]`` of an ant whose observation
            starts with its full ``qpos`` (OGBench's AntMaze: x, y, z, quaternion, joints, then qvel).
        min_up (float, optional): the smallest up-axis z at which actions pass through; 0.8 (about
            37 degrees of tilt) was chosen on validation pairs of our own. Defaults to ``0.8``.
        observation_key (NestedKey, optional): Defaults to ``"observation"``.
        action_key (NestedKey, optional): Defaults to ``"action"``.

    Attributes:
        guarded_steps (int): how many actions were zeroed (summed over a batch); reset it with
            ``guard.guarded_steps = 0``.

    Examples:
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> policy = TensorDictModule(lambda obs: torch.ones(*obs.shape[:-1], 8), ["observation"], ["action"])
        >>> guard = UprightGuard(policy)
        >>> obs = torch.zeros(2, 29)
        >>> obs[0, 3] = 1.0  # upright: w = 1
        >>> obs[1, 4] = 1.0  # on its back: x = 1
        >>> guard(TensorDict(observation=obs, batch_size=[2]))["action"].sum(-1)
        tensor([8., 0.])
        >>> guard.guarded_steps
        1
    """

    def __init__(
        self,
        policy: TensorDictModuleBase,
        quaternion_indices: Sequence[int] = (3, 4, 5, 6),
        min_up: float = 0.8,
        observation_key: NestedKey = "observation",
        action_key: NestedKey = "action",
    ):
        super().__init__(policy)
        quaternion_indices = [int(i) for i in quaternion_indices]
        if len(quaternion_indices) != 4 or min(quaternion_indices) < 0:
            raise ValueError(
                f"quaternion_indices must be the 4 observation entries of the torso quaternion (w, x, y, z), got "
                f"{quaternion_indices}."
            )
        if not -1.0 <= float(min_up) <= 1.0:
            raise ValueError(f"min_up is the up axis' z component, in [-1, 1] (0.8: about 37 degrees), got {min_up}.")
        self.register_buffer("quaternion_indices", torch.tensor(quaternion_indices), persistent=False)
        self.min_up = float(min_up)
        self.observation_key, self.action_key = observation_key, action_key
        self.guarded_steps = 0

    def forward(self, tensordict: TensorDictBase, *args, **kwargs) -> TensorDictBase:
        observation = tensordict.get(self.observation_key, None)
        if observation is None:
            raise KeyError(f"UprightGuard reads the torso's orientation from {self.observation_key!r}, which the "
                           "tensordict does not hold: pass observation_key=.")  # fmt: skip
        if observation.shape[-1] <= int(self.quaternion_indices.max()):
            raise ValueError(
                f"UprightGuard reads the quaternion at entries {self.quaternion_indices.tolist()} of a "
                f"{observation.shape[-1]}-d {self.observation_key!r}: pass the quaternion_indices of this observation."
            )
        tensordict = self.td_module(tensordict, *args, **kwargs)
        action = tensordict.get(self.action_key)
        up = torso_up(observation.index_select(-1, self.quaternion_indices.to(observation.device)))
        tilted = (up < self.min_up).unsqueeze(-1)
        self.guarded_steps += int(tilted.sum())
        tensordict.set(self.action_key, torch.where(tilted, torch.zeros_like(action), action))
        return tensordict
