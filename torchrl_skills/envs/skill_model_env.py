"""A model-based environment whose steps are whole skills, for zero-shot goal reaching.

:class:`SkillModelEnv` turns a trained :class:`~torchrl_skills.modules.SkillModel` into a
:class:`~torchrl.envs.ModelBasedEnvBase`: one step executes one imagined skill. Its action is the
unit-Gaussian noise ``eps`` of the state-dependent skill prior; the step maps it to a skill
``z = mu(s) + sigma(s) * eps`` and moves the state to the temporally abstract world model's
prediction of where that skill ends. The goal and the cost are given at planning time (nothing
about them is learnt), which is what makes goal reaching zero-shot.

The reward is shaped so that TorchRL's planners, which *sum* rewards over the horizon, optimise
the cost of Freed et al. (ICML 2023), ``min_i c(s_i, g) + lambda * mean(eps^2)``: a running
minimum ``m_i = min(m_{i-1}, c(s_i, g))`` of the cost is kept in the env state (``m_0`` is the
cost of the start state, set by :meth:`~torchrl.envs.EnvBase.reset`) and the reward of step ``i``
is ``m_{i-1} - m_i - lambda * mean(eps_i^2)``. Over a horizon of ``L`` skills the costs telescope
to ``c(s_0, g) - min_{i<=L} c(s_i, g)``: the sum is the paper's objective up to a constant that
does not depend on the plan.

With ``progress_discount = gamma < 1`` the decrease of step ``i`` (0-based) is weighted
``gamma ** i``: the sum then values progress made by the first skills, the only ones executed
before the next replan, over the same progress made later. Under the paper's objective a plan
whose third skill reaches far is as good as one that gets there sooner, so the executed first
skill need not be the fast one (see the README's AntMaze section).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.data.utils import DEVICE_TYPING
from torchrl.envs.model_based import ModelBasedEnvBase

if TYPE_CHECKING:
    from torchrl_skills.modules.skill_model import SkillModel

__all__ = ["GoalDistanceCost", "SkillModelEnv", "SkillTransition"]


class GoalDistanceCost(nn.Module):
    """Squared Euclidean distance between selected state entries and a goal.

    Args:
        indices (sequence of int, optional): the state entries compared with the goal, e.g. the
            x-y position. Defaults to ``(0, 1)`` (PointMaze's ``observation`` starts with x, y).
            Negative indices count from the end as usual.
        state_dim (int, optional): when given, the indices are checked against it.

    Inputs ``state`` ``[..., state_dim]`` and ``goal`` ``[..., len(indices)]``; output the cost
    ``[..., 1]``.

    Examples:
        >>> cost = GoalDistanceCost((0, 1))
        >>> cost(torch.tensor([3.0, 4.0, 9.0, 9.0]), torch.zeros(2))
        tensor([25.])
    """

    def __init__(self, indices: Sequence[int] = (0, 1), state_dim: int | None = None):
        super().__init__()
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("GoalDistanceCost needs at least one state index to compare with the goal.")
        if state_dim is not None:
            bad = [i for i in indices if not -state_dim <= i < state_dim]
            if bad:
                raise ValueError(
                    f"GoalDistanceCost indices {bad} are out of range for a state of size {state_dim}. "
                    f"Pass the positions of the goal coordinates inside the state, e.g. xy_indices=(0, 1)."
                )
            indices = [i % state_dim for i in indices]
        self.register_buffer("indices", torch.tensor(indices, dtype=torch.long), persistent=False)
        # A contiguous slice is a view (no gather): the common case ``(0, 1)`` costs nothing.
        contiguous = all(b - a == 1 for a, b in zip(indices, indices[1:])) and indices[0] >= 0
        self._slice = slice(indices[0], indices[-1] + 1) if contiguous else None

    @property
    def goal_dim(self) -> int:
        return self.indices.numel()

    def forward(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        position = state[..., self._slice] if self._slice is not None else state.index_select(-1, self.indices)
        return (position - goal).pow(2).sum(-1, keepdim=True)


class SkillTransition(nn.Module):
    """One imagined skill: noise to skill through the prior, skill to end state, and the reward.

    This is the "world model" that :class:`SkillModelEnv` hands to
    :class:`~torchrl.envs.ModelBasedEnvBase`; it is exposed so that other planners can reuse the
    exact same step.

    Args:
        skill_model (SkillModel): the trained skill model (its prior and world model are used).
        cost (callable): ``cost(state, goal) -> [..., 1]``.
        eps_penalty (float): the ``lambda`` of ``lambda * mean(eps^2)``.
        sample_world_model (bool): sample the end state from ``p(s_T | s, z)`` instead of taking
            its mean.
        skill_penalty (callable, optional): ``skill_penalty(state, next_state) -> [..., 1]``, the
            penalty of an imagined skill from ``state`` to ``next_state``, subtracted from its
            reward, e.g. :class:`~torchrl_skills.envs.OffDataPenalty` (skills that leave the
            data: through walls). Defaults to ``None`` (no penalty).
        progress_discount (float, optional): ``gamma`` in ``(0, 1]``; the cost decrease of the
            ``i``-th imagined skill (0-based) is weighted ``gamma ** i``. Defaults to ``1.0`` (the
            paper's objective).

    ``forward(state, eps, goal, min_cost)`` returns ``(next_state, next_min_cost, reward)``;
    ``forward(state, eps, goal, min_cost, progress_weight)`` weights the decrease by
    ``progress_weight`` and also returns the next step's weight, ``progress_weight * gamma``;
    :meth:`returns` rolls a whole sequence of noises out and returns the summed reward. With the
    mean world model (the default), only its mean is computed
    (:meth:`~torchrl_skills.modules.TemporalAbstractWorldModel.mean`): the scale head is skipped.

    Examples:
        >>> from torchrl_skills.modules import SkillModel
        >>> step = SkillTransition(SkillModel(4, 2, z_dim=8, hidden_dim=32), GoalDistanceCost(), eps_penalty=10.0)
        >>> s, eps, g = torch.zeros(1000, 4), torch.randn(1000, 8), torch.ones(1000, 2)
        >>> next_s, next_min, reward = step(s, eps, g, torch.full((1000, 1), 2.0))
        >>> next_s.shape, reward.shape, bool((next_min <= 2.0).all())
        (torch.Size([1000, 4]), torch.Size([1000, 1]), True)
    """

    def __init__(
        self,
        skill_model: SkillModel,
        cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        eps_penalty: float,
        sample_world_model: bool = False,
        skill_penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        progress_discount: float = 1.0,
    ):
        super().__init__()
        if not 0.0 < progress_discount <= 1.0:
            raise ValueError(f"progress_discount must lie in (0, 1], got {progress_discount}.")
        self.skill_model = skill_model
        self.cost = cost
        self.eps_penalty = float(eps_penalty)
        self.sample_world_model = sample_world_model
        self.skill_penalty = skill_penalty
        self.progress_discount = float(progress_discount)

    def forward(
        self,
        state: torch.Tensor,
        eps: torch.Tensor,
        goal: torch.Tensor,
        min_cost: torch.Tensor,
        progress_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        next_state = self.next_state(state, eps)
        next_min_cost = self._next_min_cost(next_state, goal, min_cost)
        progress = min_cost - next_min_cost
        if progress_weight is not None:
            progress = progress_weight * progress
        reward = progress - self.eps_penalty * eps.pow(2).mean(-1, keepdim=True)
        if self.skill_penalty is not None:
            reward = reward - self.skill_penalty(state, next_state).reshape(reward.shape)
        if progress_weight is None:
            return next_state, next_min_cost, reward
        return next_state, next_min_cost, reward, progress_weight * self.progress_discount

    def next_state(self, state: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The imagined end state of the skill ``mu(s) + sigma(s) * eps`` (mean, or a sample)."""
        from torchrl_skills.modules.skill_model import network_mean

        skill = self.skill_model.skill_from_noise(state, eps)
        if not self.sample_world_model:
            return network_mean(self.skill_model.skill_world_model, state, skill)
        loc, scale = self.skill_model.skill_world_model(state, skill)
        return loc + scale * torch.randn_like(loc)

    def _next_min_cost(self, next_state: torch.Tensor, goal: torch.Tensor, min_cost: torch.Tensor) -> torch.Tensor:
        cost = self.cost(next_state, goal)
        if cost.shape != min_cost.shape:
            cost = cost.reshape(min_cost.shape)
        return torch.minimum(min_cost, cost)

    def returns(
        self, state: torch.Tensor, eps: torch.Tensor, goal: torch.Tensor, min_cost: torch.Tensor
    ) -> torch.Tensor:
        """Summed reward of the noise sequences ``eps`` ``[..., L, z_dim]`` from ``state`` ``[..., state_dim]``.

        The same value as summing :meth:`forward`'s rewards over the ``L`` steps, without the
        tensordicts; with no discount it telescopes to ``min_cost - min_{i<=L} cost(s_i) - lambda * sum_i mean(eps_i^2)``
        (minus ``sum_i skill_penalty(s_{i-1}, s_i)`` when there is one); with a progress
        discount ``gamma < 1``, the decreases of the running minimum weighted ``gamma ** i``
        instead. Per step this runs the prior, the world model's mean, the cost and the skill
        penalty, nothing else.

        Examples:
            >>> from torchrl_skills.modules import SkillModel
            >>> step = SkillTransition(SkillModel(4, 2, z_dim=8, hidden_dim=32), GoalDistanceCost(), eps_penalty=1.0)
            >>> s, eps, g, m = torch.zeros(5, 4), torch.randn(5, 3, 8), torch.ones(5, 2), torch.full((5, 1), 2.0)
            >>> total, (s1, m1) = 0, (s, m)
            >>> for t in range(3):
            ...     s1, m1, r = step(s1, eps[:, t], g, m1)
            ...     total = total + r
            >>> torch.allclose(step.returns(s, eps, g, m), total, atol=1e-5)
            True
        """
        # gamma = 1: the weighted decreases telescope to min_cost - min_i cost(s_i)
        skill_penalty, progress, weight = 0.0, 0.0, 1.0
        for t in range(eps.shape[-2]):
            next_state = self.next_state(state, eps[..., t, :])
            next_min_cost = self._next_min_cost(next_state, goal, min_cost)
            progress = progress + weight * (min_cost - next_min_cost)
            weight *= self.progress_discount
            min_cost = next_min_cost
            if self.skill_penalty is not None:
                skill_penalty = skill_penalty + self.skill_penalty(state, next_state).reshape(min_cost.shape)
            state = next_state
        penalty = eps.pow(2).mean(-1).sum(-1, keepdim=True)
        return progress - self.eps_penalty * penalty - skill_penalty


class SkillModelEnv(ModelBasedEnvBase):
    """Model-based env over skills: action ``eps`` in ``R^z_dim``, one step = one imagined skill.

    Each step maps the action to a skill with the state-dependent prior,
    ``z = mu(s) + sigma(s) * eps``, and moves the state to the mean (or a sample) of the
    temporally abstract world model ``p(s_T | s, z)``. A planner therefore searches the prior's
    unit-Gaussian coordinates, where ``eps = 0`` is the prior's most likely skill.

    The goal and the running minimum of the cost are part of the env state: :meth:`reset` takes a
    tensordict holding the start ``observation`` and the ``goal`` and writes
    ``min_cost = cost(observation, goal)``; every step then writes the reward
    ``min_cost - min(min_cost, cost(s', goal)) - eps_penalty * mean(eps^2)`` (minus
    ``skill_penalty(s, s')`` when given) and the updated minimum. Summed over a horizon, the first term telescopes to
    ``cost(s_0, g) - min_i cost(s_i, g)`` (see the module docstring).

    The env has ``batch_size=()`` and is not batch-locked, as TorchRL's MPC planners require:
    it steps tensordicts of any batch shape, e.g. ``[K]`` candidates or ``[B, K]``. It never
    terminates.

    Keys (all configurable):

    =====================  ==================  =================================================================
    key                    shape               meaning
    =====================  ==================  =================================================================
    ``"action"``           ``[*, z_dim]``      the noise ``eps`` (planners write ``"action"``)
    ``"observation"``      ``[*, state_dim]``  the (predicted) state, raw units
    ``"goal"``             ``[*, goal_dim]``   the goal, constant along a rollout
    ``"min_cost"``         ``[*, 1]``          running minimum of the cost since the reset
    ``"reward"``           ``[*, 1]``          decrease of ``min_cost`` minus the noise penalty
    ``"progress_weight"``  ``[*, 1]``          only with ``progress_discount < 1``: ``gamma ** i`` at step ``i``
    =====================  ==================  =================================================================

    Args:
        skill_model (SkillModel): a trained skill model.
        cost (callable, optional): ``cost(state, goal) -> [..., 1]`` evaluated on each predicted
            state, e.g. an ``nn.Module``. Defaults to :class:`GoalDistanceCost` over
            ``xy_indices`` (the squared x-y distance to the goal).
        xy_indices (sequence of int, optional): the state entries compared with the goal by the
            default cost. Defaults to ``(0, 1)``. Ignored when ``cost`` is given.
        goal_dim (int, optional): size of the goal. Defaults to ``len(xy_indices)``; required
            with a custom ``cost`` whose goal is not x-y.
        eps_penalty (float, optional): ``lambda`` of the noise penalty. Defaults to ``10.0``
            (the paper's value).
        sample_world_model (bool, optional): sample end states instead of taking the mean.
            Defaults to ``False``.
        skill_penalty (callable, optional): ``skill_penalty(state, next_state) -> [..., 1]``,
            subtracted from each step's reward, e.g. :class:`~torchrl_skills.envs.OffDataPenalty`,
            which keeps plans away from skills the data never made (through walls). Defaults to
            ``None``.
        eps_bound (float, optional): when given, the action spec is bounded to
            ``[-eps_bound, eps_bound]`` and planners project their candidates onto it (TorchRL's
            CEMPlanner does), which keeps skills within that many prior standard deviations.
            Defaults to ``None`` (unbounded).
        progress_discount (float, optional): ``gamma`` in ``(0, 1]``: step ``i``'s decrease of
            ``min_cost`` is weighted ``gamma ** i`` (the weight is kept in the env state under
            ``progress_weight_key``, 1 at the reset), so a planner prefers plans that make their
            progress early, in the skills it executes before replanning. Defaults to ``1.0``
            (the paper's objective; no extra state entry).
        observation_key (NestedKey, optional): the state entry. Defaults to ``"observation"``.
        goal_key (NestedKey, optional): the goal entry. Defaults to ``"goal"``.
        min_cost_key (NestedKey, optional): the running-minimum entry. Defaults to ``"min_cost"``.
        progress_weight_key (NestedKey, optional): the discount weight's entry. Defaults to
            ``"progress_weight"``.
        device (torch.device, optional): defaults to the device of the skill model.

    Examples:
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules import SkillModel
        >>> model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
        >>> env = SkillModelEnv(model)
        >>> td = TensorDict({"observation": torch.zeros(5, 4), "goal": torch.ones(5, 2)}, [5])
        >>> td = env.reset(td)
        >>> td["min_cost"].squeeze(-1)
        tensor([2., 2., 2., 2., 2.])
        >>> rollout = env.rollout(3, auto_reset=False, tensordict=td)
        >>> rollout.shape, rollout["next", "reward"].shape
        (torch.Size([5, 3]), torch.Size([5, 3, 1]))
    """

    def __init__(
        self,
        skill_model: SkillModel,
        cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        xy_indices: Sequence[int] = (0, 1),
        goal_dim: int | None = None,
        eps_penalty: float = 10.0,
        sample_world_model: bool = False,
        skill_penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        eps_bound: float | None = None,
        progress_discount: float = 1.0,
        observation_key: NestedKey = "observation",
        goal_key: NestedKey = "goal",
        min_cost_key: NestedKey = "min_cost",
        progress_weight_key: NestedKey = "progress_weight",
        device: DEVICE_TYPING | None = None,
    ):
        # Imported here: torchrl_skills.modules imports this module (the planner), so a module-level
        # import would be circular when torchrl_skills.envs is imported first.
        from torchrl_skills.modules.skill_model import SkillModel

        if not isinstance(skill_model, SkillModel):
            raise TypeError(
                f"SkillModelEnv wraps a SkillModel, got {type(skill_model).__name__}. Build one with "
                "torchrl_skills.modules.SkillModel or load a checkpoint with load_skill_model(path)."
            )
        state_dim, z_dim = skill_model.state_dim, skill_model.z_dim
        if cost is None:
            cost = GoalDistanceCost(xy_indices, state_dim=state_dim)
            if goal_dim is not None and goal_dim != cost.goal_dim:
                raise ValueError(
                    f"goal_dim={goal_dim} does not match the {cost.goal_dim} xy_indices {tuple(xy_indices)} of "
                    "the default cost. Drop goal_dim, or pass one index per goal coordinate."
                )
            goal_dim = cost.goal_dim
        elif goal_dim is None:
            goal_dim = getattr(cost, "goal_dim", None)
            if goal_dim is None:
                raise ValueError("With a custom cost, pass goal_dim (the size of the goal tensor).")
        if eps_penalty < 0:
            raise ValueError(f"eps_penalty must be >= 0, got {eps_penalty}.")
        if device is None:
            device = next(skill_model.parameters()).device
        transition = SkillTransition(skill_model, cost, eps_penalty, sample_world_model, skill_penalty, progress_discount)
        # the discount's weight is env state only when there is a discount: the paper's env keeps its keys
        weight_keys = [progress_weight_key] if progress_discount != 1.0 else []
        world_model = TensorDictModule(
            transition,
            in_keys=[observation_key, "action", goal_key, min_cost_key, *weight_keys],
            out_keys=[observation_key, min_cost_key, "reward", *weight_keys],
        )
        super().__init__(world_model, device=device, batch_size=torch.Size([]))
        self.skill_model = skill_model
        self.transition = transition
        self.cost = cost
        self.state_dim, self.z_dim, self.goal_dim = state_dim, z_dim, int(goal_dim)
        self.observation_key, self.goal_key, self.min_cost_key = observation_key, goal_key, min_cost_key
        self.progress_weight_key = progress_weight_key if weight_keys else None

        self.observation_spec = Composite(
            {
                observation_key: Unbounded((state_dim,), device=self.device),
                goal_key: Unbounded((self.goal_dim,), device=self.device),
                min_cost_key: Unbounded((1,), device=self.device),
                **{key: Unbounded((1,), device=self.device) for key in weight_keys},
            },
            device=self.device,
        )
        # CEMPlanner's candidate setter always writes the key "action" (TorchRL 0.14.1), so the
        # action entry is not configurable here.
        if eps_bound is None:
            self.action_spec = Unbounded((z_dim,), device=self.device)
        elif eps_bound > 0:
            self.action_spec = Bounded(-eps_bound, eps_bound, (z_dim,), device=self.device)
        else:
            raise ValueError(f"eps_bound must be > 0 (or None for unbounded noise), got {eps_bound}.")
        self.reward_spec = Unbounded((1,), device=self.device)

    @property
    def eps_penalty(self) -> float:
        return self.transition.eps_penalty

    @property
    def sample_world_model(self) -> bool:
        return self.transition.sample_world_model

    @property
    def progress_discount(self) -> float:
        return self.transition.progress_discount

    # Imagined skills never terminate: skip the done checks and partial resets of EnvBase (as
    # torchrl's DreamerEnv does); they cost a reduction per step on K candidates for nothing.
    def any_done(self, tensordict: TensorDictBase) -> bool:
        return False

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict

    def _check_entry(self, tensordict: TensorDictBase, key: NestedKey, size: int, what: str) -> torch.Tensor:
        value = tensordict.get(key, None)
        if value is None:
            raise KeyError(
                f"SkillModelEnv.reset needs {what} under {key!r} (shape [*batch, {size}]); got keys "
                f"{list(tensordict.keys(True, True))}. Pass reset(TensorDict({{{self.observation_key!r}: state, "
                f"{self.goal_key!r}: goal}}, batch_size))."
            )
        if value.shape[-1:] != (size,):
            raise ValueError(
                f"SkillModelEnv expected {what} {key!r} with last dimension {size}, got shape {tuple(value.shape)}. "
                + (
                    "The goal must hold one value per cost coordinate (xy_indices or goal_dim)."
                    if key == self.goal_key
                    else "The state must be the one the skill model was trained on."
                )
            )
        return value

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        if tensordict is None:
            tensordict = TensorDict(batch_size=self.batch_size, device=self.device)
        state = self._check_entry(tensordict, self.observation_key, self.state_dim, "the start state")
        goal = self._check_entry(tensordict, self.goal_key, self.goal_dim, "a goal")
        dtype = self.action_spec.dtype
        state = state.to(self.device, dtype)
        goal = goal.to(self.device, dtype)
        min_cost = self.cost(state, goal).reshape(*tensordict.batch_size, 1)
        out = TensorDict(
            {self.observation_key: state, self.goal_key: goal, self.min_cost_key: min_cost},
            batch_size=tensordict.batch_size,
            device=self.device,
        )
        if self.progress_weight_key is not None:
            out.set(self.progress_weight_key, torch.ones_like(min_cost))
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        state = tensordict.get(self.observation_key)
        goal = tensordict.get(self.goal_key)
        min_cost = tensordict.get(self.min_cost_key, None)
        if min_cost is None:
            raise KeyError(
                f"SkillModelEnv.step found no {self.min_cost_key!r}: call env.reset(tensordict) with the start "
                "state and goal before stepping or planning, so the running minimum starts at the start cost."
            )
        # Same computation as self.world_model (the TensorDictModule kept for ModelBasedEnvBase),
        # called on tensors directly: a planning call makes L * optim_steps of these steps on K
        # candidates, and this skips a tensordict clone/select per step.
        weight = {}
        if self.progress_weight_key is None:
            next_state, next_min_cost, reward = self.transition(state, tensordict.get("action"), goal, min_cost)
        else:
            progress_weight = tensordict.get(self.progress_weight_key, None)
            if progress_weight is None:
                raise KeyError(
                    f"SkillModelEnv.step found no {self.progress_weight_key!r} (the progress discount's weight): "
                    "call env.reset(tensordict) before stepping or planning."
                )
            next_state, next_min_cost, reward, next_weight = self.transition(
                state, tensordict.get("action"), goal, min_cost, progress_weight
            )
            weight = {self.progress_weight_key: next_weight}
        done = torch.zeros(reward.shape, dtype=torch.bool, device=reward.device)
        return TensorDict(
            {
                self.observation_key: next_state,
                self.goal_key: goal,
                self.min_cost_key: next_min_cost,
                **weight,
                "reward": reward,
                "done": done,
                "terminated": done,
            },
            batch_size=tensordict.batch_size,
            device=self.device,
        )
