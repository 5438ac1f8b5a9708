"""OGBench's maze evaluation envs, many episodes side by side in one TorchRL env."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase

__all__ = ["OGBenchMazeEnv", "make_ogbench_env"]


def make_ogbench_env(name: str):
    """OGBench's evaluation env for a dataset name (``pointmaze-medium-navigate-v0``) or an env id
    (``pointmaze-medium-v0``), built offline: ``terminate_at_goal=True`` and the env's own time limit."""
    import gymnasium
    import ogbench

    if name.count("-") >= 3:  # a dataset name: <agent>maze-<maze>-<type>-v0
        try:
            return ogbench.make_env_and_datasets(name, env_only=True)
        except Exception as err:  # noqa: BLE001 - ogbench raises bare errors on unknown names
            raise ValueError(f"OGBench does not know the dataset {name!r} ({type(err).__name__}: {err}).") from None
    import ogbench.locomaze  # noqa: F401  (registers the env ids)

    try:
        return gymnasium.make(name)
    except gymnasium.error.Error as err:
        raise ValueError(f"Unknown OGBench env {name!r}: {err}. Pass e.g. 'pointmaze-medium-navigate-v0'.") from None


class OGBenchMazeEnv(EnvBase):
    """``num_envs`` episodes of an OGBench maze run side by side, with OGBench's evaluation protocol.

    Each slot holds its own OGBench env (``terminate_at_goal=True``, the env's own time limit). What
    each slot plays at the next :meth:`reset` is set with :meth:`set_episodes`: an OGBench task id
    (1-5, ``env.reset(options=dict(task_id=i))``) or a custom ``dict(init_ij=..., goal_ij=...)``,
    and an episode seed that seeds both the env and the global ``np.random`` (from which OGBench
    draws the start and goal noise), so an episode plays out the same whichever slot or batch it
    runs in.

    Finished episodes are **frozen**: their env is no longer stepped, their observation and done
    flags stay as they were, so a batch can be stepped until every episode is done (run the loop
    with :meth:`~torchrl.envs.EnvBase.step` and :func:`~torchrl.envs.utils.step_mdp`; ``rollout``
    would reset finished slots).

    Keys (batch ``[num_envs]``):

    ====================  =====================  =====================================================
    key                   shape                  meaning
    ====================  =====================  =====================================================
    ``"observation"``     ``[N, obs_dim]``       the agent's observation (point: x-y; ant: 29-d)
    ``"goal"``            ``[N, obs_dim]``       the observation at the goal (``info["goal"]``)
    ``"desired_goal"``    ``[N, 2]``             the goal's x-y
    ``"achieved_goal"``   ``[N, 2]``             the agent's x-y
    ``"success"``         ``[N, 1]``             the env's ``info["success"]`` of the last step
    ``"action"``          ``[N, action_dim]``    in ``[-1, 1]``
    ====================  =====================  =====================================================

    Args:
        name (str): OGBench dataset name (``"pointmaze-medium-navigate-v0"``) or env id.
        num_envs (int, optional): episodes side by side. Defaults to ``1``.
        device (torch.device, optional): device of the tensordicts. Defaults to CPU.

    Examples:
        >>> env = OGBenchMazeEnv("pointmaze-medium-navigate-v0", num_envs=3)
        >>> env.set_episodes(tasks=[1, 2, 3], seeds=[0, 1, 2])
        >>> td = env.reset()
        >>> td["observation"].shape, td["desired_goal"].shape
        (torch.Size([3, 2]), torch.Size([3, 2]))
        >>> td = env.step(td.set("action", torch.zeros(3, 2)))
        >>> td["next", "success"].shape
        torch.Size([3, 1])
    """

    def __init__(self, name: str, num_envs: int = 1, device=None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.name = name
        self.envs = [make_ogbench_env(name) for _ in range(num_envs)]
        first = self.envs[0]
        self.num_tasks = first.unwrapped.num_tasks
        self.max_episode_steps = first.spec.max_episode_steps
        obs_dim = first.observation_space.shape[0]
        act = first.action_space
        n = num_envs
        self.observation_spec = Composite(
            observation=Unbounded((n, obs_dim), device=self.device),
            goal=Unbounded((n, obs_dim), device=self.device),
            desired_goal=Unbounded((n, 2), device=self.device),
            achieved_goal=Unbounded((n, 2), device=self.device),
            success=Unbounded((n, 1), dtype=torch.bool, device=self.device),
            shape=(n,),
            device=self.device,
        )
        self.action_spec = Bounded(
            torch.as_tensor(act.low).expand(n, -1), torch.as_tensor(act.high).expand(n, -1), (n, act.shape[0]),
            device=self.device,
        )  # fmt: skip
        self.reward_spec = Unbounded((n, 1), device=self.device)
        flag = Unbounded((n, 1), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(n,), device=self.device)
        self._tasks: list = [1] * n
        self._seeds: list[int] = list(range(n))
        self._obs = np.zeros((n, obs_dim), dtype=np.float32)
        self._goal = np.zeros((n, obs_dim), dtype=np.float32)
        self._xy = np.zeros((n, 2), dtype=np.float32)
        self._goal_xy = np.zeros((n, 2), dtype=np.float32)
        self._done = np.zeros(n, dtype=bool)
        self._success = np.zeros(n, dtype=bool)

    def set_episodes(self, tasks: Sequence, seeds: Sequence[int]) -> None:
        """What each slot plays at the next reset: a task id in ``1..num_tasks`` or a
        ``dict(init_ij=(i, j), goal_ij=(i, j))``, and an episode seed."""
        n = self.batch_size[0]
        if len(tasks) != n or len(seeds) != n:
            raise ValueError(f"set_episodes needs one task and one seed per slot ({n}), got {len(tasks)} and {len(seeds)}.")
        for task in tasks:
            if isinstance(task, dict):
                if not {"init_ij", "goal_ij"} <= set(task):
                    raise ValueError(f"A custom task needs 'init_ij' and 'goal_ij', got keys {sorted(task)}.")
            elif not 1 <= int(task) <= self.num_tasks:
                raise ValueError(f"Task ids of {self.name} run from 1 to {self.num_tasks}, got {task}.")
        self._tasks, self._seeds = list(tasks), [int(s) for s in seeds]

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._seeds = [int(seed) + k for k in range(self.batch_size[0])]

    def _output(self, reward=None) -> TensorDict:
        done = torch.from_numpy(self._done).unsqueeze(-1)
        out = {
            "observation": torch.from_numpy(self._obs.copy()),
            "goal": torch.from_numpy(self._goal.copy()),
            "desired_goal": torch.from_numpy(self._goal_xy.copy()),
            "achieved_goal": torch.from_numpy(self._xy.copy()),
            "success": torch.from_numpy(self._success.copy()).unsqueeze(-1),
            "done": done,
            "terminated": torch.from_numpy(self._success.copy()).unsqueeze(-1),
            "truncated": done & ~torch.from_numpy(self._success).unsqueeze(-1),
        }
        if reward is not None:
            out["reward"] = torch.from_numpy(reward).unsqueeze(-1)
        return TensorDict(out, batch_size=self.batch_size).to(self.device)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        for k, env in enumerate(self.envs):
            task, seed = self._tasks[k], self._seeds[k]
            options = dict(task_info=task) if isinstance(task, dict) else dict(task_id=int(task))
            np.random.seed(seed % 2**32)  # OGBench's start/goal noise comes from the global generator
            ob, info = env.reset(seed=seed, options=options)
            self._obs[k], self._goal[k] = ob, info["goal"]
            self._xy[k], self._goal_xy[k] = env.unwrapped.get_xy(), env.unwrapped.cur_goal_xy
        self._done[:] = False
        self._success[:] = False
        return self._output()

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        actions = tensordict.get("action").detach().cpu().numpy()
        reward = np.zeros(self.batch_size[0], dtype=np.float32)
        for k in np.flatnonzero(~self._done):  # finished episodes stay frozen
            env = self.envs[k]
            ob, r, terminated, truncated, info = env.step(actions[k])
            self._obs[k], reward[k] = ob, r
            self._xy[k] = env.unwrapped.get_xy()
            self._success[k] = bool(info["success"])
            self._done[k] = terminated or truncated
        return self._output(reward)

    def close(self, *, raise_if_closed: bool = True):
        for env in self.envs:
            env.close()
        super().close(raise_if_closed=raise_if_closed)
