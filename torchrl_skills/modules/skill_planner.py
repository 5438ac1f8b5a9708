"""Planning over skills: TorchRL's CEMPlanner on a :class:`SkillModelEnv`, and a replanning executor.

:func:`make_skill_planner` builds :class:`~torchrl.modules.CEMPlanner` with the defaults of Freed
et al. (ICML 2023): 3 skills planned, 1000 candidates, 200 elites, 10 iterations.
:class:`SkillMPCPolicy` is a TorchRL policy for a real environment: it plans, maps the first
planned noise to a skill with the prior, runs the deterministic low-level skill policy for
``replan_every`` env steps, then plans again.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.data import TensorSpec, Unbounded
from torchrl.envs.transforms import TensorDictPrimer
from torchrl.modules import CEMPlanner
from torchrl.modules.planners.common import MPCPlannerBase

from torchrl_skills.envs.skill_model_env import SkillModelEnv
from torchrl_skills.modules.skill_model import SkillModel, SkillPrior, TemporalAbstractWorldModel, network_mean

__all__ = ["SkillCEMPlanner", "SkillMPCPolicy", "make_skill_planner"]


class SkillCEMPlanner(CEMPlanner):
    """TorchRL's :class:`~torchrl.modules.CEMPlanner` over a :class:`SkillModelEnv`, imagining on tensors.

    The same planner, interface and result as ``CEMPlanner(env, ...)`` (same draws, same
    candidates, same elites: tested), but each iteration's imagined rollout calls the env's
    :class:`~torchrl_skills.envs.skill_model_env.SkillTransition` on the ``[*B, K, L, z]``
    candidate tensor directly (:meth:`~torchrl_skills.envs.skill_model_env.SkillTransition.returns`)
    instead of ``env.rollout``: per imagined skill only the prior, the world model's mean and the
    cost run, with no tensordict built, stacked or masked. A replan then costs what a plain
    tensor CEM loop over the same networks costs (``benchmarks/bench_planning.py``).

    Args:
        env (SkillModelEnv): the planning env.
        planning_horizon, optim_steps, num_candidates, top_k, reward_key, action_key: as
            :class:`~torchrl.modules.CEMPlanner`.
        use_env_rollout (bool, optional): imagine through ``env.rollout`` as TorchRL's
            CEMPlanner does (slower, the same plans). Defaults to ``False``.
        select (str, optional): what the planner returns: ``"mean"``, the elites' mean first noise
            after the last iteration (TorchRL's ``CEMPlanner``), or ``"best"``, the first noise of
            the candidate with the highest return over all iterations. The mean of many elites
            lies nearer the origin than any of them, and through the prior that is the average
            skill from the state; ``"best"`` executes a skill that the world model actually
            scored (on antmaze-medium validation pairs the two did equally well: README).
            Defaults to ``"mean"``.

    Examples:
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.envs import SkillModelEnv
        >>> from torchrl_skills.modules import SkillModel
        >>> env = SkillModelEnv(SkillModel(4, 2, z_dim=8, hidden_dim=32), eps_penalty=1.0)
        >>> planner = SkillCEMPlanner(env, planning_horizon=3, optim_steps=2, num_candidates=64, top_k=8)
        >>> td = env.reset(TensorDict({"observation": torch.zeros(5, 4), "goal": torch.ones(5, 2)}, [5]))
        >>> planner(td)["action"].shape       # one batched call plans for 5 start states
        torch.Size([5, 8])
    """

    def __init__(
        self,
        env: SkillModelEnv,
        planning_horizon: int,
        optim_steps: int,
        num_candidates: int,
        top_k: int,
        reward_key: NestedKey = ("next", "reward"),
        action_key: NestedKey = "action",
        use_env_rollout: bool = False,
        select: str = "mean",
    ):
        if select not in ("mean", "best"):
            raise ValueError(f"select must be 'mean' or 'best', got {select!r}.")
        if select == "best" and use_env_rollout:
            raise ValueError("select='best' needs the tensor path: drop use_env_rollout=True, or use select='mean'.")
        super().__init__(
            env,
            planning_horizon=planning_horizon,
            optim_steps=optim_steps,
            num_candidates=num_candidates,
            top_k=top_k,
            reward_key=reward_key,
            action_key=action_key,
        )
        self.use_env_rollout = use_env_rollout
        self.select = select

    def planning(self, tensordict: TensorDictBase) -> torch.Tensor:
        env = self.env
        if self.use_env_rollout or not isinstance(env, SkillModelEnv) or self.reward_key != ("next", "reward"):
            return super().planning(tensordict)
        batch = tensordict.batch_size
        K, L, top_k = self.num_candidates, self.planning_horizon, self.top_k
        spec = env.action_spec
        state = tensordict.get(env.observation_key)
        goal = tensordict.get(env.goal_key)
        min_cost = tensordict.get(env.min_cost_key, None)
        if min_cost is None:
            raise KeyError(
                f"The planner found no {env.min_cost_key!r}: pass a tensordict that went through planner.env.reset, "
                "which writes the start cost."
            )
        # Candidates [*B, K, L, z]; the start state, goal and start cost broadcast over K. The
        # package's prior and world model broadcast a [*B, 1] state against [*B, K] skills, so the
        # first skill's prior and the state half of the world model's first layer run once per
        # start state instead of once per candidate.
        model = env.skill_model
        state = state.unsqueeze(-2)
        if not (
            isinstance(model.skill_prior, SkillPrior) and isinstance(model.skill_world_model, TemporalAbstractWorldModel)
        ):
            state = state.expand(*batch, K, state.shape[-1])
        goal = goal.unsqueeze(-2).expand(*batch, K, goal.shape[-1])
        min_cost = min_cost.unsqueeze(-2).expand(*batch, K, 1)
        means = torch.zeros(*batch, 1, L, *spec.shape, device=state.device, dtype=spec.dtype)
        stds = torch.ones_like(means)
        project = not isinstance(spec, Unbounded)
        if self.select == "best":  # the best candidate seen so far, per start state
            best_return = torch.full((*batch, 1, 1), -math.inf, device=means.device, dtype=means.dtype)
            best_actions = torch.zeros_like(means)
        for _ in range(self.optim_steps):
            # CEMPlanner.planning's draws, in the same order
            actions = means + stds * torch.randn(*batch, K, L, *spec.shape, device=means.device, dtype=means.dtype)
            if project:
                actions = spec.project(actions)
            returns = env.transition.returns(state, actions, goal, min_cost)  # [*B, K, 1]
            top = returns.topk(top_k, dim=-2).indices  # [*B, top_k, 1]
            best = actions.gather(-3, top.unsqueeze(-1).expand(*batch, top_k, L, *spec.shape))
            means, stds = best.mean(dim=-3, keepdim=True), best.std(dim=-3, keepdim=True)
            if self.select == "best":  # topk sorts: the first elite is this iteration's best candidate
                it_return = returns.gather(-2, top[..., :1, :])  # [*B, 1, 1]
                better = it_return > best_return
                best_return = torch.where(better, it_return, best_return)
                best_actions = torch.where(better.unsqueeze(-1), best[..., :1, :, :], best_actions)
        if self.select == "best":
            return best_actions[..., 0, 0, :]
        return means[..., 0, 0, :]


def make_skill_planner(
    env: SkillModelEnv | SkillModel,
    planning_horizon: int = 3,
    num_candidates: int = 1000,
    top_k: int = 200,
    optim_steps: int = 10,
    use_env_rollout: bool = False,
    select: str = "mean",
    **env_kwargs,
) -> SkillCEMPlanner:
    """Builds TorchRL's :class:`~torchrl.modules.CEMPlanner` over a :class:`SkillModelEnv` (a :class:`SkillCEMPlanner`).

    CEM starts from ``N(0, 1)`` in each of ``planning_horizon`` steps, which in the env's action
    space is exactly the skill prior; each iteration rolls ``num_candidates`` noise sequences
    through the world model, keeps the ``top_k`` with the highest summed reward (lowest
    ``min_i cost + lambda * mean(eps^2)``) and refits the Gaussian to them. The planner returns
    the mean noise of the first skill.

    Args:
        env (SkillModelEnv or SkillModel): the planning env, or a skill model to build one from
            with ``env_kwargs`` (e.g. ``xy_indices``, ``eps_penalty``, ``cost``).
        planning_horizon (int, optional): skills planned ahead (``L``). Defaults to ``3``.
        num_candidates (int, optional): candidates per iteration (``K``). Defaults to ``1000``.
        top_k (int, optional): elites refitted on. Defaults to ``200``.
        optim_steps (int, optional): CEM iterations. Defaults to ``10``.
        use_env_rollout (bool, optional): imagine through ``env.rollout`` (TorchRL's generic
            path) instead of on tensors; the same plans, slower. Defaults to ``False``.
        select (str, optional): ``"mean"`` (the elites' mean, as TorchRL's ``CEMPlanner``) or
            ``"best"`` (the best candidate seen); see :class:`SkillCEMPlanner`. Defaults to ``"mean"``.
        **env_kwargs: passed to :class:`SkillModelEnv` when ``env`` is a skill model.

    Returns:
        SkillCEMPlanner: a ``CEMPlanner`` that imagines on tensors; reads ``"observation"``, ``"goal"`` and ``"min_cost"`` (a tensordict that
        went through ``planner.env.reset``) of batch ``[]`` or ``[B]`` and writes ``"action"``,
        the first planned noise.

    Examples:
        >>> from tensordict import TensorDict
        >>> from torchrl_skills.modules import SkillModel
        >>> model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
        >>> planner = make_skill_planner(model, num_candidates=64, top_k=8, optim_steps=2)
        >>> td = planner.env.reset(TensorDict({"observation": torch.zeros(4), "goal": torch.ones(2)}))
        >>> planner(td)["action"].shape
        torch.Size([8])
    """
    if isinstance(env, SkillModel):
        env = SkillModelEnv(env, **env_kwargs)
    elif env_kwargs:
        raise TypeError(f"env_kwargs {sorted(env_kwargs)} are only used when a SkillModel is passed, not an env.")
    if not isinstance(env, SkillModelEnv):
        raise TypeError(f"make_skill_planner expects a SkillModelEnv or a SkillModel, got {type(env).__name__}.")
    if not 0 < top_k <= num_candidates:
        raise ValueError(f"Need 0 < top_k <= num_candidates, got top_k={top_k}, num_candidates={num_candidates}.")
    if top_k < 2:
        # CEM refits a standard deviation on the elites: one elite gives NaN stds.
        raise ValueError(f"top_k must be >= 2 (CEM refits a std on the elites), got {top_k}.")
    if planning_horizon < 1 or optim_steps < 1:
        raise ValueError(
            f"planning_horizon and optim_steps must be >= 1, got {planning_horizon} and {optim_steps}."
        )
    # TorchRL 0.14.1 quirk: CEMPlanner's candidate setter (_PrecomputedActionsSequentialSetter)
    # always writes the key "action", whatever `action_key` the planner was given; with any other
    # key the imagined rollout fails with a missing-key error on the env's action. SkillModelEnv
    # therefore fixes its action entry to "action", and the planner is built with that key.
    if env.action_key != "action":
        raise ValueError(
            f"CEMPlanner (TorchRL 0.14.1) writes candidates under 'action', but the env's action key is "
            f"{env.action_key!r}. Use a SkillModelEnv with the default action key."
        )
    return SkillCEMPlanner(
        env,
        planning_horizon=planning_horizon,
        optim_steps=optim_steps,
        num_candidates=num_candidates,
        top_k=top_k,
        reward_key=("next", "reward"),
        action_key="action",
        use_env_rollout=use_env_rollout,
        select=select,
    )


class SkillMPCPolicy(TensorDictModuleBase):
    """Replanning skill executor: plan, run the first skill for ``replan_every`` steps, replan.

    A TorchRL policy for real environments (e.g. ``GymEnv("PointMaze_Medium-v3")`` with its dict
    observations). When the skill counter is 0 it plans from the current state towards the goal
    read from the env (``desired_goal``), maps the first planned noise to a skill with the prior,
    ``z = mu(s) + sigma(s) * eps``, and stores ``z``; every call then outputs the deterministic
    action of the low-level policy ``pi(a | s, z)`` (its mean) and advances the counter, which
    wraps to 0 after ``replan_every`` steps.

    The skill, the counter and the world model's prediction of where the skill ends are carried
    in the tensordict, as TorchRL's recurrent modules carry their hidden states: the policy reads
    them at the root and writes the updated values under ``"next"``. Add
    :meth:`make_tensordict_primer` to the env so that they are registered, carried from one step
    to the next and reset to 0 at every reset (which makes the policy plan at the first step of
    each episode). Batched envs (``[B]``) are supported: only the entries whose counter is 0 are
    planned, in one batched planner call, and entries whose root ``"done"`` is set (finished
    episodes that a batched evaluation keeps frozen) are not planned for.

    With ``planner=None``, skills are drawn from the prior (``eps ~ N(0, 1)``) instead of planned:
    the "no planning" baseline.

    **Stall recovery** (``stall_distance``): the world model can be wrong about a state it never
    saw, e.g. an ant wedged against a wall corner, where the deterministic low-level policy then
    holds a static pose: every replan from that state picks the same skill again and the agent
    never moves. With ``stall_distance`` set, an episode whose last skill moved its position
    (``position_indices``) less than ``stall_distance`` runs its next skill drawn from the prior
    ``p(z | s)`` instead of the planned one, which moves it somewhere the data went from there;
    the planner takes over again at the next replan. Two more entries are then carried: the
    position where the current skill started and the number of skills started in the episode (the
    first skill of an episode is always planned). With ``stall_check_every`` set as well, the
    check also runs inside a skill, every ``stall_check_every`` steps, against the same distance
    scaled to the steps elapsed: a stuck episode then switches to a prior skill at once (its skill
    counter restarts) instead of waiting out the skill period.

    Keys (configurable):

    ===========================  ========  ==================================================
    key                          io        meaning
    ===========================  ========  ==================================================
    ``observation_key``          in        the model's state; a list of keys is concatenated
    ``goal_key``                 in        the goal (``"desired_goal"``)
    ``"skill"``                  in/next   the skill being executed ``[*, z_dim]``
    ``"skill_step"``             in/next   env steps already run with it, int64 ``[*, 1]``
    ``"skill_end"``              in/next   world-model mean of its end state ``[*, state_dim]``
    ``"skill_start"``            in/next   with ``stall_distance``: position where it started
    ``"skill_count"``            in/next   with ``stall_distance``: skills started, int64 ``[*, 1]``
    ``"action"``                 out       the low-level action
    ``"skill_started"``          out       a new skill was chosen at this step, bool ``[*, 1]``
    ===========================  ========  ==================================================

    ``"skill_started"`` marks the steps at which the policy (re)planned (or switched to a prior
    skill); the new skill and its predicted end are then under ``("next", "skill")`` and
    ``("next", "skill_end")``. Without ``stall_check_every`` these are the steps whose root
    ``"skill_step"`` is 0.

    Args:
        skill_model (SkillModel): the trained skill model.
        planner (MPCPlannerBase, optional): a planner over a :class:`SkillModelEnv` of the same
            model, e.g. from :func:`make_skill_planner`. ``None`` draws skills from the prior.
        replan_every (int, optional): env steps per planned skill. Defaults to ``30``.
        observation_key (NestedKey or list of NestedKey, optional): the env entry (or entries,
            concatenated in order) the model was trained on. Defaults to ``"observation"``.
        goal_key (NestedKey, optional): the env's goal entry. Defaults to ``"desired_goal"``.
        action_key (NestedKey, optional): Defaults to ``"action"``.
        action_spec (TensorSpec, optional): the env's action spec; actions are projected onto
            it (clipped to the bounds) and cast to its dtype.
        skill_key, skill_step_key, skill_end_key (NestedKey, optional): keys of the carried state.
        stall_distance (float, optional): distance the position must move during one skill period
            (``replan_every`` steps) not to count as stuck; a stuck episode's next skill is drawn
            from the prior (see above). ``None`` turns stall recovery off. Defaults to ``None``.
        stall_check_every (int, optional): also check for a stall every this many steps inside a
            skill (needs ``stall_distance``): after ``n`` steps an episode that moved less than
            ``stall_distance * n / replan_every`` switches to a prior skill at once. ``None``:
            check only at the end of each skill period. Defaults to ``None``.
        position_indices (sequence of int, optional): the state entries of the position that
            ``stall_distance`` measures. Defaults to ``(0, 1)``.
        skill_start_key, skill_count_key (NestedKey, optional): keys of the carried state of stall
            recovery.
        skill_started_key (NestedKey, optional): the output marking a new skill. Defaults to
            ``"skill_started"``.

    Attributes:
        planning_times (list of float): seconds spent in each planning call, appended by every
            call that (re)plans; clear it with ``policy.planning_times.clear()``.
        planning_sizes (list of int): the number of episodes each of those calls planned for
            (one call plans every episode of a batch that replans at that step).
        stall_recoveries (int): skills drawn from the prior because the episode was stuck; reset
            it with ``policy.stall_recoveries = 0``.

    Examples:
        >>> import gymnasium as gym, gymnasium_robotics
        >>> from torchrl.envs import GymEnv, TransformedEnv
        >>> from torchrl_skills.modules import SkillModel
        >>> gym.register_envs(gymnasium_robotics)
        >>> model = SkillModel(state_dim=4, action_dim=2, z_dim=8, hidden_dim=32)
        >>> env = GymEnv("PointMaze_UMaze-v3", continuing_task=False, max_episode_steps=50)
        >>> planner = make_skill_planner(model, num_candidates=64, top_k=8, optim_steps=2)
        >>> policy = SkillMPCPolicy(model, planner, replan_every=10, action_spec=env.action_spec)
        >>> env = TransformedEnv(env, policy.make_tensordict_primer())
        >>> rollout = env.rollout(50, policy)
        >>> int((rollout["skill_step"] == 0).sum())  # planned at steps 0, 10, 20, 30, 40
        5
    """

    def __init__(
        self,
        skill_model: SkillModel,
        planner: MPCPlannerBase | None = None,
        replan_every: int = 30,
        observation_key: NestedKey | Sequence[NestedKey] = "observation",
        goal_key: NestedKey = "desired_goal",
        action_key: NestedKey = "action",
        action_spec: TensorSpec | None = None,
        skill_key: NestedKey = "skill",
        skill_step_key: NestedKey = "skill_step",
        skill_end_key: NestedKey = "skill_end",
        stall_distance: float | None = None,
        position_indices: Sequence[int] = (0, 1),
        skill_start_key: NestedKey = "skill_start",
        skill_count_key: NestedKey = "skill_count",
        stall_check_every: int | None = None,
        skill_started_key: NestedKey = "skill_started",
    ):
        super().__init__()
        if replan_every < 1:
            raise ValueError(f"replan_every must be >= 1 env step, got {replan_every}.")
        if stall_distance is not None and not stall_distance > 0:
            raise ValueError(
                f"stall_distance must be > 0 (distance moved per skill), or None to turn it off, got {stall_distance}."
            )
        if stall_check_every is not None:
            if stall_distance is None:
                raise ValueError("stall_check_every checks for stalls: set stall_distance too, or pass None.")
            if isinstance(stall_check_every, bool) or not isinstance(stall_check_every, int) or stall_check_every < 1:
                raise ValueError(f"stall_check_every must be a positive number of env steps, got {stall_check_every!r}.")
        position_indices = [int(i) for i in position_indices]
        if not position_indices or not all(0 <= i < skill_model.state_dim for i in position_indices):
            raise ValueError(
                f"position_indices {position_indices} must index the model's {skill_model.state_dim}-d state."
            )
        if planner is not None:
            env = getattr(planner, "env", None)
            if not isinstance(env, SkillModelEnv):
                raise TypeError(
                    "SkillMPCPolicy needs a planner over a SkillModelEnv (see make_skill_planner), got a planner "
                    f"over {type(env).__name__}."
                )
            if env.skill_model is not skill_model:
                raise ValueError(
                    "The planner's SkillModelEnv wraps a different SkillModel than the policy; plan and execute "
                    "with the same model: make_skill_planner(model) and SkillMPCPolicy(model, planner)."
                )
        self.skill_model = skill_model
        self.planner = planner
        self.replan_every = int(replan_every)
        if isinstance(observation_key, (str, tuple)):
            self.observation_keys = [observation_key]
        else:
            self.observation_keys = list(observation_key)
        self.goal_key, self.action_key = goal_key, action_key
        self.action_spec = action_spec
        self.skill_key, self.skill_step_key, self.skill_end_key = skill_key, skill_step_key, skill_end_key
        self.stall_distance = None if stall_distance is None else float(stall_distance)
        self.register_buffer("position_indices", torch.tensor(position_indices, dtype=torch.long), persistent=False)
        self.skill_start_key, self.skill_count_key = skill_start_key, skill_count_key
        self.stall_check_every = stall_check_every
        self.skill_started_key = skill_started_key
        carried = [skill_key, skill_step_key, skill_end_key]
        if self.stall_distance is not None:
            carried += [skill_start_key, skill_count_key]
        self.in_keys = [*self.observation_keys, goal_key, *carried]
        self.out_keys = [action_key, skill_started_key, *(("next", key) for key in carried)]
        self.planning_times: list[float] = []
        self.planning_sizes: list[int] = []
        self.stall_recoveries = 0

    def make_tensordict_primer(self) -> TensorDictPrimer:
        """A :class:`~torchrl.envs.TensorDictPrimer` registering (and zeroing at reset) the carried state.

        Examples:
            >>> from torchrl_skills.modules import SkillModel
            >>> policy = SkillMPCPolicy(SkillModel(4, 2, z_dim=8, hidden_dim=32))
            >>> sorted(policy.make_tensordict_primer().primers.keys())
            ['skill', 'skill_end', 'skill_step']
            >>> policy = SkillMPCPolicy(SkillModel(4, 2, z_dim=8, hidden_dim=32), stall_distance=0.3)
            >>> sorted(policy.make_tensordict_primer().primers.keys())  # and what stall recovery carries
            ['skill', 'skill_count', 'skill_end', 'skill_start', 'skill_step']
        """
        model = self.skill_model
        specs = {
            self.skill_key: Unbounded((model.z_dim,)),
            self.skill_step_key: Unbounded((1,), dtype=torch.int64),
            self.skill_end_key: Unbounded((model.state_dim,)),
        }
        if self.stall_distance is not None:
            specs[self.skill_start_key] = Unbounded((len(self.position_indices),))
            specs[self.skill_count_key] = Unbounded((1,), dtype=torch.int64)
        return TensorDictPrimer(specs, expand_specs=True)

    def _model_dtype(self) -> torch.dtype:
        return next(self.skill_model.parameters()).dtype

    def _get(self, tensordict: TensorDictBase, key: NestedKey, hint: str) -> torch.Tensor:
        value = tensordict.get(key, None)
        if value is None:
            raise KeyError(f"SkillMPCPolicy found no {key!r} in the tensordict (keys: "
                           f"{list(tensordict.keys(True, True))}). {hint}")
        return value

    def _state(self, tensordict: TensorDictBase) -> torch.Tensor:
        hint = (
            "Pass observation_key= the entry (or list of entries) the skill model was trained on, e.g. "
            "['achieved_goal', 'observation'] for AntMaze."
        )
        parts = [self._get(tensordict, key, hint) for key in self.observation_keys]
        state = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        if state.shape[-1] != self.skill_model.state_dim:
            raise ValueError(
                f"SkillMPCPolicy built a state of size {state.shape[-1]} from {self.observation_keys}, but the skill "
                f"model expects {self.skill_model.state_dim}. {hint}"
            )
        return state.to(self._model_dtype())

    @torch.no_grad()
    def plan(
        self, state: torch.Tensor, goal: torch.Tensor, from_prior: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Plans from a batch of states ``[N, state_dim]`` and goals ``[N, goal_dim]``.

        Returns the skills ``[N, z_dim]`` (the first planned noise mapped through the prior) and
        the world model's mean prediction of their end states ``[N, state_dim]``. Rows where the
        boolean mask ``from_prior`` ``[N]`` is set get a skill drawn from the prior instead (and
        are left out of the planner call).
        """
        if from_prior is not None and from_prior.any():
            eps = torch.randn(*state.shape[:-1], self.skill_model.z_dim, device=state.device, dtype=state.dtype)
            skill = self.skill_model.skill_from_noise(state, eps)
            end = network_mean(self.skill_model.skill_world_model, state, skill)
            planned = ~from_prior
            if planned.any():
                skill[planned], end[planned] = self.plan(state[planned], goal[planned])
            return skill, end
        start = time.perf_counter()
        if self.planner is None:
            eps = torch.randn(*state.shape[:-1], self.skill_model.z_dim, device=state.device, dtype=state.dtype)
        else:
            env = self.planner.env
            if goal.shape[-1] != env.goal_dim:
                raise ValueError(
                    f"SkillMPCPolicy read a goal of size {goal.shape[-1]} under {self.goal_key!r}, but the planning "
                    f"env's cost compares {env.goal_dim} coordinates (xy_indices / goal_dim). Pass the matching "
                    "goal_key, or build the SkillModelEnv with the matching xy_indices."
                )
            # CEMPlanner allocates its candidates on tensordict.device: an undefined device would put
            # them on the CPU next to a CUDA model ("Expected all tensors to be on the same device").
            td = TensorDict(
                {env.observation_key: state, env.goal_key: goal}, batch_size=state.shape[:-1], device=env.device
            )
            td = self.planner(env.reset(td))
            eps = td.get("action")
        skill = self.skill_model.skill_from_noise(state, eps)
        end = network_mean(self.skill_model.skill_world_model, state, skill)
        self.planning_times.append(time.perf_counter() - start)
        self.planning_sizes.append(state[..., 0].numel())
        return skill, end

    @torch.no_grad()
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        primer_hint = (
            "The policy carries its skill and step counter in the tensordict: add its primer to the env, "
            "env = env.append_transform(policy.make_tensordict_primer())."
        )
        state = self._state(tensordict)
        skill_step = self._get(tensordict, self.skill_step_key, primer_hint)
        skill = self._get(tensordict, self.skill_key, primer_hint).to(state.dtype)
        skill_end = self._get(tensordict, self.skill_end_key, primer_hint).to(state.dtype)

        flat_state = state.reshape(-1, state.shape[-1])
        step = skill_step.reshape(-1)
        replan = (step % self.replan_every) == 0
        check = replan  # where a stall is looked for
        if self.stall_check_every is not None:
            check = replan | ((step > 0) & (step % self.stall_check_every == 0))
        done = tensordict.get("done", None)
        if done is not None and done.numel() == replan.numel():
            # Finished episodes of a batch run side by side (kept frozen until all are done) are
            # not planned for: late in an evaluation they can be most of the batch.
            replan = replan & ~done.reshape(-1)
            check = check & ~done.reshape(-1)
        stuck = None
        if self.stall_distance is not None and check.any():
            stuck = self._stuck(tensordict, flat_state, step, check, primer_hint)
            self.stall_recoveries += int(stuck.sum())
            replan = replan | stuck
        if replan.any():
            goal = self._get(
                tensordict,
                self.goal_key,
                "The goal is read from the env; GymEnv's maze envs expose it as 'desired_goal' (pass goal_key= "
                "otherwise).",
            ).to(state.dtype)
            flat_goal = goal.reshape(-1, goal.shape[-1])
            from_prior = None if stuck is None else stuck[replan]
            new_skill, new_end = self.plan(flat_state[replan], flat_goal[replan], from_prior)
            # Envs that do not replan keep their skill; a masked write covers [] and [B] alike.
            skill = skill.reshape(-1, skill.shape[-1]).clone()
            skill_end = skill_end.reshape(-1, skill_end.shape[-1]).clone()
            skill[replan] = new_skill
            skill_end[replan] = new_end
            skill = skill.reshape(*state.shape[:-1], -1)
            skill_end = skill_end.reshape(*state.shape[:-1], -1)

        action = network_mean(self.skill_model.skill_policy, state, skill)  # deterministic: no scale head
        if self.action_spec is not None:
            action = self.action_spec.project(action.to(self.action_spec.dtype))
        started = replan.reshape(skill_step.shape)
        tensordict.set(self.action_key, action)
        tensordict.set(self.skill_started_key, started)
        tensordict.set(("next", self.skill_key), skill)
        # a skill started now (planned, or a prior skill after a stall) has run one step next
        tensordict.set(("next", self.skill_step_key), torch.where(started, 1, skill_step + 1) % self.replan_every)
        tensordict.set(("next", self.skill_end_key), skill_end)
        if self.stall_distance is not None:
            self._carry_stall_state(tensordict, state, replan, primer_hint)
        return tensordict

    def _positions(self, state: torch.Tensor) -> torch.Tensor:
        return state.index_select(-1, self.position_indices.to(state.device))

    def _stuck(
        self, tensordict: TensorDictBase, flat_state: torch.Tensor, step: torch.Tensor, check: torch.Tensor, hint: str
    ) -> torch.Tensor:
        """``[B]`` mask of the checked episodes whose current skill moved less than its share of ``stall_distance``."""
        start = self._get(tensordict, self.skill_start_key, hint).reshape(check.numel(), -1).to(flat_state.dtype)
        count = self._get(tensordict, self.skill_count_key, hint).reshape(-1)
        moved = (self._positions(flat_state) - start).norm(dim=-1)
        # steps run with the current skill: a full period at a regular replan (step wrapped to 0)
        elapsed = torch.where(step == 0, self.replan_every, step).to(moved.dtype)
        return check & (count > 0) & (moved < self.stall_distance * elapsed / self.replan_every)

    def _carry_stall_state(
        self, tensordict: TensorDictBase, state: torch.Tensor, replan: torch.Tensor, hint: str
    ) -> None:
        start = self._get(tensordict, self.skill_start_key, hint)
        count = self._get(tensordict, self.skill_count_key, hint)
        here = self._positions(state).to(start.dtype)
        mask = replan.reshape(*count.shape)
        tensordict.set(("next", self.skill_start_key), torch.where(mask, here, start))
        tensordict.set(("next", self.skill_count_key), count + mask.to(count.dtype))
