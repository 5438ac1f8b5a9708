"""A way out of wall corners: an agent that has not moved for a while takes a random direction for a few steps.

HIGL's trained low level on sparse PointMaze_Medium fails partly by pinning itself in a wall
corner: at rest, with its latent window constant, the deterministic policy pushes into the
corner, away from its goal, for hundreds of steps (on validation seed 101, 4 of its 15 failed
evaluation episodes). Sampling the policy instead does not get it out (the same success, 0.70),
since the pinned state is a fixed point of the mean and of most samples alike. Driving a random
direction for a few steps does, as stall recovery does for the ant planner (``SkillMPCPolicy``'s
``stall_distance``). Measured at evaluation time on validation seeds of our own (README, issue 9).
"""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictModuleWrapper
from tensordict.utils import NestedKey

__all__ = ["StallEscape"]


class StallEscape(TensorDictModuleWrapper):
    """Wraps a policy; a row whose position stayed within ``tolerance`` for ``stall_steps`` steps drives a random direction.

    Per row, the wrapper keeps an anchor position and how many steps the agent has stayed within
    ``tolerance`` of it. Once that reaches ``stall_steps``, it draws a random unit direction
    (mapped onto the action box ``[low, high]``) and overrides the wrapped policy's action with it
    for ``escape_steps`` steps; then the policy takes over again. Rows whose ``is_init`` flag is
    set (a new episode, see :class:`~torchrl.envs.InitTracker`) start afresh.

    The state lives in the wrapper, one row per env of a batch of fixed size, as in a
    side-by-side evaluation (:func:`~torchrl_skills.evaluation.rollout_side_by_side`): build one
    wrapper per evaluation, or call :meth:`reset`. Every key the wrapped policy writes is kept.

    Args:
        policy (TensorDictModuleBase): the policy, writing ``action_key``.

    Keyword Args:
        stall_steps (int): steps within ``tolerance`` that make a stall. Defaults to 10.
        escape_steps (int): steps of the random direction. Defaults to 20 (10 / 20 were the
            best of the settings tried on validation seeds of our own).
        tolerance (float): how far (in position units) the agent must move to count as moving.
            Defaults to 0.05.
        low, high (float): the action box. Defaults to -1 and 1.
        position_dims (int): the leading observation entries that are the position. Defaults to 2.
        generator (torch.Generator, optional): draws the directions (default: torch's global
            generator); pass a seeded one for evaluations that repeat whatever ran before.
        observation_key, action_key, is_init_key, done_key (NestedKey): entry names. Default to
            ``"observation"``, ``"action"``, ``"is_init"`` and ``"done"``.

    Attributes:
        escapes (int): how many escapes were started (summed over rows), not counting rows whose
            ``done`` flag is set (finished episodes that a side-by-side rollout keeps frozen).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torchrl_skills.modules import StallEscape
        >>> push = TensorDictModule(lambda obs: torch.ones(*obs.shape[:-1], 2), ["observation"], ["action"])
        >>> policy = StallEscape(push, stall_steps=3, escape_steps=2, generator=torch.Generator().manual_seed(0))
        >>> td = TensorDict(observation=torch.zeros(1, 4), batch_size=[1])  # an agent that never moves
        >>> [bool((policy(td.clone())["action"] != 1).any()) for _ in range(6)]
        [False, False, True, True, False, False]
        >>> policy.escapes
        1
    """

    def __init__(
        self,
        policy: TensorDictModuleBase,
        *,
        stall_steps: int = 10,
        escape_steps: int = 20,
        tolerance: float = 0.05,
        low: float = -1.0,
        high: float = 1.0,
        position_dims: int = 2,
        generator: torch.Generator | None = None,
        observation_key: NestedKey = "observation",
        action_key: NestedKey = "action",
        is_init_key: NestedKey = "is_init",
        done_key: NestedKey = "done",
    ) -> None:
        super().__init__(policy)
        if stall_steps < 1 or escape_steps < 1 or position_dims < 1 or not tolerance > 0 or not low < high:
            raise ValueError(
                "StallEscape needs stall_steps, escape_steps, position_dims >= 1, tolerance > 0 and low < high; got "
                f"{stall_steps}, {escape_steps}, {position_dims}, {tolerance}, {low}, {high}."
            )
        self.stall_steps, self.escape_steps, self.tolerance = int(stall_steps), int(escape_steps), float(tolerance)
        self.low, self.high, self.position_dims, self.generator = float(low), float(high), int(position_dims), generator
        self.observation_key, self.action_key, self.is_init_key = observation_key, action_key, is_init_key
        self.done_key = done_key
        self._escapes = torch.zeros((), dtype=torch.long)  # a tensor: counting costs no second host sync
        self.reset()

    @property
    def escapes(self) -> int:
        return int(self._escapes)

    def reset(self) -> None:
        """Forgets every row's state (the next call starts a new batch)."""
        self._anchor = self._still = self._left = self._direction = None

    def forward(self, tensordict: TensorDictBase, *args, **kwargs) -> TensorDictBase:
        observation = tensordict.get(self.observation_key, None)
        if observation is None:
            raise KeyError(f"StallEscape reads the position from {self.observation_key!r}, which the tensordict does "
                           "not hold: pass observation_key=.")  # fmt: skip
        tensordict = self.td_module(tensordict, *args, **kwargs)
        action = tensordict.get(self.action_key)
        position = observation[..., : self.position_dims].reshape(-1, self.position_dims)
        rows = position.shape[0]
        if self._anchor is None or self._anchor.shape[0] != rows:
            self._anchor = position.clone()
            self._still = torch.zeros(rows, dtype=torch.long, device=position.device)
            self._left = torch.zeros_like(self._still)
            self._direction = torch.zeros(rows, action.shape[-1], dtype=action.dtype, device=action.device)
        is_init = tensordict.get(self.is_init_key, None)
        moved = (position - self._anchor).norm(dim=-1) > self.tolerance
        if is_init is not None:
            new = is_init.reshape(rows)
            moved = moved | new
            self._left = torch.where(new, torch.zeros_like(self._left), self._left)
        self._anchor = torch.where(moved.unsqueeze(-1), position, self._anchor)
        # steps spent escaping do not count towards the next stall
        self._still = torch.where(moved, torch.zeros_like(self._still), self._still + (self._left == 0).long())
        stalled = (self._still >= self.stall_steps) & (self._left == 0)
        if stalled.any():
            # a frozen finished row "stalls" too; it still draws (its action is ignored, and the
            # draws stay those of the measured runs) but is not counted as an escape
            done = tensordict.get(self.done_key, None)
            counted = stalled if done is None else stalled & ~done.reshape(rows)
            self._escapes = self._escapes.to(counted.device) + counted.sum()
            draw = torch.randn(rows, action.shape[-1], generator=self.generator).to(action)
            draw = draw / draw.norm(dim=-1, keepdim=True).clamp_min(1e-6)  # a unit direction in [-1, 1]^A
            draw = self.low + (draw + 1) * (self.high - self.low) / 2
            self._direction = torch.where(stalled.unsqueeze(-1), draw, self._direction)
            self._left = torch.where(stalled, torch.full_like(self._left, self.escape_steps), self._left)
            self._still = torch.where(stalled, torch.zeros_like(self._still), self._still)
        escaping = self._left > 0
        flat = action.reshape(rows, -1)
        tensordict.set(self.action_key, torch.where(escaping.unsqueeze(-1), self._direction, flat).reshape(action.shape))
        self._left = (self._left - escaping.long()).clamp_min(0)
        return tensordict
