"""The two time scales of HIGL as TorchRL environments (SPEC B2).

- :func:`make_window_env` gives the low-level environment a window of the last
  ``seq_len`` observations (TorchRL's :class:`~torchrl.envs.CatFrames`), which the
  transformer low-level policy reads after encoding.
- :class:`HierarchicalEnv` is the semi-MDP seen by the high level: one step = one latent
  goal, executed by the low-level policy for ``k`` low-level steps (fewer if the episode
  ends); its reward is the sum of the ``k`` low-level rewards, so the high level should
  discount with ``gamma ** k``. The low-level transitions of each high-level step are
  returned in the ``"low_level"`` entry (``[k]``-shaped, with a validity ``"mask"``), so any
  collector, single- or multi-process, brings them back for the low-level replay buffer.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from torchrl.data import Bounded, Categorical, Composite, TensorSpec, Unbounded
from torchrl.envs import CatFrames, EnvBase, InitTracker, TransformedEnv, UnaryTransform, UnsqueezeTransform
from torchrl.envs.utils import step_mdp

__all__ = ["make_window_env", "make_higl_env", "goal_observation_transform", "HierarchicalEnv", "low_level_transitions", "high_level_transitions"]


def make_window_env(
    env: EnvBase,
    seq_len: int,
    *,
    in_key: NestedKey = "observation",
    out_key: NestedKey = "observation_window",
    obs_ndim: int = 1,
) -> TransformedEnv:
    """Appends ``UnsqueezeTransform + CatFrames(N=seq_len)`` writing a ``[seq_len, *obs]`` window.

    At reset the window is filled with copies of the first observation (CatFrames'
    ``padding="same"``), so the policy always sees ``seq_len`` tokens and never a token from
    a previous episode.

    Args:
        env (EnvBase): the low-level environment.
        seq_len (int): window length.

    Keyword Args:
        in_key (NestedKey): observation to window. Defaults to ``"observation"``.
        out_key (NestedKey): window entry. Defaults to ``"observation_window"``.
        obs_ndim (int): feature dims of one observation (1 for vectors, 3 for ``C, H, W``).

    Examples:
        >>> from torchrl.envs import GymEnv
        >>> from torchrl_skills.envs.hierarchical import make_window_env
        >>> env = make_window_env(GymEnv("Pendulum-v1"), seq_len=5)
        >>> env.rollout(3)["observation_window"].shape
        torch.Size([3, 5, 3])
    """
    dim = -(obs_ndim + 1)
    transforms = [
        UnsqueezeTransform(dim=dim, in_keys=[in_key], out_keys=[out_key]),
        CatFrames(N=seq_len, dim=dim, in_keys=[out_key], out_keys=[out_key], padding="same"),
    ]
    if not isinstance(env, TransformedEnv):
        env = TransformedEnv(env)
    for t in transforms:
        env.append_transform(t)
    return env


class _AtRest:
    """``goal -> [goal, 0 ... 0]`` (picklable, unlike a lambda, so envs built with it can go to worker processes)."""

    def __init__(self, pad: int) -> None:
        self.pad = pad

    def __call__(self, goal: torch.Tensor) -> torch.Tensor:
        return torch.cat([goal, goal.new_zeros(*goal.shape[:-1], self.pad)], -1)


def goal_observation_transform(
    pad: int, *, in_key: NestedKey = "desired_goal", out_key: NestedKey = "goal_observation"
) -> UnaryTransform:
    """Writes the task goal as an observation at rest, ``[goal, 0 x pad]``, so the state encoder can embed it.

    A PointMaze goal is a position ``[gx, gy]`` and an observation ``[x, y, vx, vy]``: with
    ``pad=2`` the goal becomes the observation of the agent standing still on it, as OGBench gives
    goals (``info["goal"]``, a full observation).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.envs.hierarchical import goal_observation_transform
        >>> t = goal_observation_transform(2)
        >>> t(TensorDict({"desired_goal": torch.tensor([[1.0, 2.0]])}, [1]))["goal_observation"]
        tensor([[1., 2., 0., 0.]])
    """
    return UnaryTransform([in_key], [out_key], fn=_AtRest(pad))


def make_higl_env(
    env: EnvBase, policy, seq_len: int, *, in_key: NestedKey = "observation", obs_ndim: int = 1
) -> TransformedEnv:
    """Prepares a (batched) env for :class:`~torchrl_skills.modules.higl.HIGLPolicy`: the window, the episode flag, the goal state.

    Appends :func:`make_window_env` (the ``observation_window`` the low level encodes),
    :class:`~torchrl.envs.InitTracker` (``is_init``: a goal is drawn at every new episode) and
    ``policy.make_tensordict_primer()`` (``goal`` and ``goal_age`` carried from step to step).
    ``obs_ndim`` is the number of feature dims of one observation (3 for ``C, H, W`` pixels).

    Examples:
        >>> import torch
        >>> from torchrl.data import Bounded
        >>> from torchrl.envs import GymEnv
        >>> from torchrl_skills.envs.hierarchical import make_higl_env
        >>> from torchrl_skills.modules import HIGLPolicy, MLPEncoder, make_high_level_actor, make_transformer_actor
        >>> encoder = MLPEncoder(3, 8, normalize=True)
        >>> policy = HIGLPolicy(encoder, make_high_level_actor(["observation"], 3, 8),
        ...                     make_transformer_actor(Bounded(-2, 2, (1,)), 8, 8, seq_len=4, d_model=16), goal_dim=8, k=5)
        >>> env = make_higl_env(GymEnv("Pendulum-v1"), policy, seq_len=4)
        >>> td = env.rollout(12, policy)
        >>> td["goal_set"].squeeze(-1).nonzero().squeeze(-1).tolist()
        [0, 5, 10]
    """
    env = make_window_env(env, seq_len, in_key=in_key, obs_ndim=obs_ndim)
    env.append_transform(InitTracker())
    env.append_transform(policy.make_tensordict_primer())
    return env


class HierarchicalEnv(EnvBase):
    """Semi-MDP for the high level: each step sets a goal and runs the low level for ``k`` steps.

    Args:
        env (EnvBase): the low-level environment, ``batch_size == ()`` (parallelise with
            several collector workers or :class:`~torchrl.envs.ParallelEnv` of
            ``HierarchicalEnv`` instead).
        low_level_policy (TensorDictModuleBase): reads the low-level observations and the
            goal entry, writes ``"action"``. It runs under the caller's exploration type,
            so a collector's RANDOM / an evaluation's DETERMINISTIC mode reaches both levels.
        goal_spec (TensorSpec): spec of the high-level action. For continuous latent goals a
            :class:`~torchrl.data.Bounded` ``[goal_dim]`` spec; for discrete skills a
            :class:`~torchrl.data.Categorical` spec together with ``goal_module``.

    Keyword Args:
        k (int): low-level steps per high-level step. Defaults to 10.
        goal_key (NestedKey): entry the low-level policy reads the goal from. Defaults to ``"goal"``.
        goal_module (nn.Module, optional): maps the high-level action to the goal, e.g. a
            :class:`~torchrl_skills.modules.skill_embedding.SkillEmbedding` for the
            discrete-skill variant. Defaults to the identity.
        goal_dim (int, optional): goal size when ``goal_module`` is given.
        record_keys (sequence of NestedKey): low-level observation entries kept (at the root
            and under ``"next"``) in the ``"low_level"`` record. Defaults to ``("observation",)``.
        record_low_level (bool): write the ``"low_level"`` entry. Defaults to ``True``.
        init_random_steps (int): the first ``init_random_steps`` low-level steps of this
            instance take uniformly random actions (SAC warm-up). It is a constructor
            argument, not a flag toggled later, so it also holds in collector worker processes.
            Defaults to 0.

    Output entries of a step (besides the low-level observations): ``("next", "reward")``
    the sum of the low-level rewards, the done flags of the last low-level step,
    ``("next", "low_level_steps")`` and ``("next", "low_level")`` of shape ``[k]`` with
    ``observation``, goal, ``action``, ``("next", observation/reward/done/terminated/truncated)``
    and ``mask`` (``False`` on padding after an early episode end). Being an observation,
    the record is also copied to the root of the following step by ``step_mdp``; read it
    under ``"next"`` only (and keep ``record_keys`` small for pixel envs: ``k`` frames and
    ``k`` next frames per high-level step).

    Examples:
        >>> import torch
        >>> from tensordict.nn import TensorDictModule
        >>> from torchrl.data import Bounded
        >>> from torchrl.envs import GymEnv
        >>> from torchrl_skills.envs.hierarchical import HierarchicalEnv
        >>> low_env = GymEnv("Pendulum-v1")
        >>> low_policy = TensorDictModule(lambda obs, g: torch.tanh(g[..., :1]) * 2, in_keys=["observation", "goal"], out_keys=["action"])
        >>> env = HierarchicalEnv(low_env, low_policy, Bounded(-1, 1, (4,)), k=5)
        >>> td = env.rollout(3)
        >>> td["next", "low_level", "action"].shape, td["next", "low_level_steps"].squeeze(-1).tolist()
        (torch.Size([3, 5, 1]), [5, 5, 5])
    """

    def __init__(
        self,
        env: EnvBase,
        low_level_policy: TensorDictModuleBase | nn.Module,
        goal_spec: TensorSpec,
        *,
        k: int = 10,
        goal_key: NestedKey = "goal",
        goal_module: nn.Module | None = None,
        goal_dim: int | None = None,
        record_keys: Sequence[NestedKey] = ("observation",),
        record_low_level: bool = True,
        init_random_steps: int = 0,
    ) -> None:
        if tuple(env.batch_size) != ():
            raise ValueError(
                f"HierarchicalEnv needs a low-level env with batch_size=(), got {tuple(env.batch_size)}. "
                "Run several HierarchicalEnv instances (ParallelEnv or a multi-process collector) instead."
            )
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        super().__init__(device=env.device, batch_size=torch.Size([]))
        self.env = env
        self.low_level_policy = low_level_policy
        self.goal_module = goal_module
        self.k = k
        self.goal_key = goal_key
        self.record_keys = list(record_keys)
        self.record_low_level = record_low_level
        self.init_random_steps = init_random_steps
        self.low_level_step_count = 0
        self._low_td: TensorDictBase | None = None

        if goal_module is None:
            if not isinstance(goal_spec, Bounded | Unbounded):
                raise TypeError("A discrete goal_spec needs a goal_module (e.g. SkillEmbedding) to map it to goals.")
            goal_value_spec = goal_spec.clone()
        else:
            if goal_dim is None:
                raise ValueError("goal_dim is required when goal_module is given.")
            goal_value_spec = Unbounded(shape=(goal_dim,), device=env.device)
        self.action_spec = goal_spec.clone()
        self.reward_spec = Unbounded(shape=(1,), device=env.device)
        self.full_done_spec = env.full_done_spec.clone()

        obs_spec = env.observation_spec.clone()
        obs_spec["low_level_steps"] = Unbounded(shape=(1,), dtype=torch.int64, device=env.device)
        if record_low_level:
            step_obs = Composite({key: env.observation_spec[key].clone() for key in self.record_keys})
            nxt = step_obs.clone()
            nxt["reward"] = env.reward_spec.clone()
            for key, spec in env.full_done_spec.items(True, True):
                nxt[key] = spec.clone()
            rec = step_obs.clone()
            rec[goal_key] = goal_value_spec
            rec["action"] = env.action_spec.clone()
            rec["next"] = nxt
            rec["mask"] = Categorical(2, shape=(), dtype=torch.bool, device=env.device)
            obs_spec["low_level"] = rec.expand(k)
        self.observation_spec = obs_spec

    # The record template (zeros) used at reset and for padding
    def _zero_record(self) -> TensorDictBase:
        return self.observation_spec["low_level"].zero()

    def _set_seed(self, seed: int | None) -> None:
        self.env.set_seed(seed)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        low_td = self.env.reset()
        self._low_td = low_td
        out = low_td.select(*self.env.observation_spec.keys(True, True), *self.env.done_keys, strict=False).clone()
        out.set("low_level_steps", torch.zeros(1, dtype=torch.int64, device=self.device))
        if self.record_low_level:
            out.set("low_level", self._zero_record())
        return out

    @torch.no_grad()  # goals are data for the low level: no graph must leak into the records
    def _goal(self, action: torch.Tensor) -> torch.Tensor:
        return action if self.goal_module is None else self.goal_module(action)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._low_td is None:
            raise RuntimeError("HierarchicalEnv.step() was called before reset().")
        cur = self._low_td
        cur.set(self.goal_key, self._goal(tensordict.get("action")))
        record_keys = [
            *self.record_keys, self.goal_key, "action",
            *[("next", key) for key in (*self.record_keys, "reward", *self.env.done_keys)],
        ]
        steps = []
        n = 0
        reward = torch.zeros(1, device=self.device)
        for _ in range(self.k):
            n += 1
            self.low_level_step_count += 1
            if self.low_level_step_count <= self.init_random_steps:
                cur.set("action", self.env.action_spec.rand())
            else:
                cur = self.low_level_policy(cur)
            cur = self.env.step(cur)
            if self.record_low_level:
                steps.append(cur.select(*record_keys))
            reward = reward + cur.get(("next", "reward"))
            done = cur.get(("next", "done")).any()
            cur = step_mdp(cur, keep_other=True)
            if done:
                break
        self._low_td = cur
        out = cur.select(*self.env.observation_spec.keys(True, True), *self.env.done_keys, strict=False).clone()
        out.set("reward", reward)
        out.set("low_level_steps", torch.tensor([n], device=self.device))
        if self.record_low_level:
            record = self._zero_record()
            record[:n] = torch.stack(steps, 0).update({"mask": torch.ones(n, dtype=torch.bool, device=self.device)})
            out.set("low_level", record)
        return out


def low_level_transitions(
    data: TensorDictBase,
    keys: Sequence[NestedKey] | None = None,
    traj_key: NestedKey = ("collector", "traj_ids"),
) -> TensorDictBase:
    """Flattens the low-level steps recorded by :class:`HierarchicalEnv` into one batch for replay.

    Each high-level step of ``data`` (any batch shape, e.g. a collector batch) holds its ``k``
    low-level steps under ``("next", "low_level")`` with a validity ``"mask"`` (an episode can
    end before ``k`` steps). The valid steps are returned in order, each tagged with the
    trajectory id of its high-level step (``traj_key``), so a slice sampler on that key never
    builds a window across episodes.

    Args:
        data (TensorDictBase): high-level transitions with a ``("next", "low_level")`` record.
        keys (sequence of NestedKey, optional): entries to keep (``traj_key`` is always kept).
            Defaults to all of them.
        traj_key (NestedKey, optional): trajectory id of the high-level steps, copied onto their
            low-level steps when present. Defaults to ``("collector", "traj_ids")``.

    Returns:
        a TensorDict of batch ``[n_valid]``.
    """
    data = data.reshape(-1)
    record = data.get(("next", "low_level"), None)
    if record is None:
        raise KeyError(
            "low_level_transitions needs the ('next', 'low_level') record of a HierarchicalEnv built with "
            "record_low_level=True."
        )
    traj = data.get(traj_key, None)
    if traj is not None:
        record.set(traj_key, traj.unsqueeze(-1).expand(record.shape))
    record = record[record.get("mask")]
    if keys is not None:
        record = record.select(*keys, *([traj_key] if traj is not None else []))
    return record


def high_level_transitions(
    data: TensorDictBase,
    k: int,
    *,
    keys: Sequence[NestedKey] = ("observation",),
    next_keys: Sequence[NestedKey] | None = None,
    action_keys: Sequence[NestedKey] = ("high_action", "high_action_log_prob"),
    goal_set_key: NestedKey = "goal_set",
    goal_age_key: NestedKey = "goal_age",
) -> TensorDictBase:
    """The high level's semi-MDP transitions in a ``[N, T]`` batch collected with :class:`~torchrl_skills.modules.higl.HIGLPolicy`.

    A high-level step starts where ``goal_set`` is ``True`` (a goal drawn) and lasts until the
    next one or the episode's end. For each env row, its high-level steps are gathered in order
    (one vectorised pass, no loop over rows or steps), so the result is ``[N, M]``, ``M`` the most
    high-level steps of any row, with time as the last dim as TorchRL's value estimators expect:

    - ``keys`` and ``action_keys`` at the step the goal was drawn;
    - ``("next", key)`` for ``next_keys`` (default ``keys``) after the segment's last step;
    - ``("next", "reward")``: the sum of the segment's rewards; ``"duration"``: its steps;
    - ``("next", "terminated")`` of the last step; ``("next", "done")``: the episode ended there,
      or the row has no further complete high-level step in this batch (a truncation for GAE);
    - ``"mask"``: ``True`` on complete segments. Segments still running at the end of the batch
      (the next batch continues them) and padding are ``False``: drop them after the advantage.

    Args:
        data (TensorDictBase): ``[N, T]`` steps (env rows first, as a collector of a batched
            env returns them) with ``goal_set``, ``goal_age``, ``("next", "reward")``,
            ``("next", "done")`` and ``("next", "terminated")``.
        k (int): the policy's steps per goal (a segment with ``goal_age == k`` is complete).

    Keyword Args:
        keys, next_keys, action_keys (sequence of NestedKey): entries to gather (see above).
        goal_set_key, goal_age_key (NestedKey): the policy's bookkeeping entries.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.envs.hierarchical import high_level_transitions
        >>> T = 7  # one row: goals drawn at t = 0 and 3 (k = 3), the episode ends at t = 4, a new one starts at 5
        >>> data = TensorDict({
        ...     "observation": torch.arange(T).float().unsqueeze(-1),
        ...     "goal_set": torch.tensor([1, 0, 0, 1, 0, 1, 0]).bool().unsqueeze(-1),
        ...     "goal_age": torch.tensor([1, 2, 3, 1, 2, 1, 2]).unsqueeze(-1),
        ...     "high_action": torch.zeros(T, 2), "high_action_log_prob": torch.zeros(T),
        ...     "next": {"observation": torch.arange(1, T + 1).float().unsqueeze(-1), "reward": torch.ones(T, 1),
        ...              "done": torch.tensor([0, 0, 0, 0, 1, 0, 0]).bool().unsqueeze(-1),
        ...              "terminated": torch.tensor([0, 0, 0, 0, 1, 0, 0]).bool().unsqueeze(-1)},
        ... }, [T]).unsqueeze(0)
        >>> high = high_level_transitions(data, k=3)
        >>> high["next", "reward"].squeeze(-1).tolist(), high["mask"].tolist(), high["next", "observation"].squeeze(-1).tolist()
        ([[3.0, 2.0, 2.0]], [[True, True, False]], [[3.0, 5.0, 7.0]])
    """
    if data.ndim != 2:
        raise ValueError(f"high_level_transitions needs a [N, T] batch (env rows, time), got batch shape {tuple(data.shape)}.")
    next_keys = list(keys) if next_keys is None else list(next_keys)
    dev = data.device
    decision = data.get(goal_set_key).reshape(data.shape)
    N, T = data.shape
    seg = decision.long().cumsum(1) - 1  # [N, T]: index of the high-level step each step belongs to
    inside = seg >= 0  # steps before the first decision continue a segment of the previous batch
    seg_c = seg.clamp(min=0)
    counts = decision.sum(1)
    M = max(int(counts.max()), 1)
    reward = data.get(("next", "reward")).reshape(N, T)
    rewards = torch.zeros(N, M, device=dev, dtype=reward.dtype).scatter_add_(1, seg_c, reward * inside)
    duration = torch.zeros(N, M, device=dev, dtype=torch.long).scatter_add_(1, seg_c, inside.long())
    t = torch.arange(T, device=dev).expand(N, T)
    start = torch.full((N, M), T - 1, device=dev, dtype=torch.long).scatter_reduce_(
        1, seg_c, torch.where(inside, t, T - 1), "amin", include_self=True
    )
    end = torch.zeros(N, M, device=dev, dtype=torch.long).scatter_reduce_(
        1, seg_c, torch.where(inside, t, 0), "amax", include_self=True
    )
    rows = torch.arange(N, device=dev).unsqueeze(-1)
    exists = torch.arange(M, device=dev) < counts.unsqueeze(-1)
    done_end = data.get(("next", "done")).reshape(N, T)[rows, end]
    terminated_end = data.get(("next", "terminated")).reshape(N, T)[rows, end]
    age_end = data.get(goal_age_key).reshape(N, T)[rows, end]
    complete = exists & (done_end | (age_end >= k))
    # the last complete step of a row is followed by nothing usable: cut the GAE chain there
    following_complete = torch.cat([complete[:, 1:], torch.zeros(N, 1, dtype=torch.bool, device=dev)], 1)
    out = TensorDict(
        {
            "duration": duration.unsqueeze(-1),
            "mask": complete,
            "next": {
                "reward": rewards.unsqueeze(-1),
                "done": (done_end | ~following_complete).unsqueeze(-1),
                "terminated": terminated_end.unsqueeze(-1),
            },
        },
        batch_size=[N, M],
        device=dev,
    )
    for key in (*keys, *action_keys):
        out.set(key, data.get(key)[rows, start])
    for key in next_keys:
        out.set(("next", key), data.get(("next", key))[rows, end])
    return out
