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
    (``pointmaze-medium-v0``), built offline: ``terminate_at_goal=True`` and the env's own time limit.

    Examples:
        >>> env = make_ogbench_env("pointmaze-medium-navigate-v0")
        >>> env.spec.max_episode_steps, env.unwrapped.num_tasks
        (1000, 5)
    """
    import gymnasium
    import ogbench

    if name.count("-") >= 3:  # a dataset name: <agent>maze-<maze>-<type>-v0
        try:
            return ogbench.make_env_and_datasets(name, env_only=True)
        except Exception as err:  # noqa: BLE001 - ogbench raises bare errors on unknown names
            raise ValueError(
                f"OGBench does not know the dataset {name!r} ({type(err).__name__}: {err}). "
                "Pass e.g. 'pointmaze-medium-navigate-v0'."
            ) from None
    import ogbench.locomaze  # noqa: F401  (registers the env ids)

    try:
        return gymnasium.make(name)
    except gymnasium.error.Error as err:
        raise ValueError(f"Unknown OGBench env {name!r}: {err}. Pass e.g. 'pointmaze-medium-navigate-v0'.") from None


class OGBenchMazeEnv(EnvBase):
    """``num_envs`` episodes of an OGBench maze run side by side, with OGBench's evaluation protocol.

    Each slot holds its own OGBench env (``terminate_at_goal=True``, the env's own time limit). What
    a slot plays at its next reset is an OGBench task id (1-5, ``env.reset(options=dict(task_id=i))``)
    or a custom ``dict(init_ij=..., goal_ij=...)``, and an episode seed. The seed seeds the env, its
    action space (OGBench takes a few random actions while resetting) and the global ``np.random``
    (from which OGBench draws the start and goal noise), so an episode plays out the same whichever
    slot or batch it runs in. Set them with the ``task_ids`` / ``seeds`` arguments, with
    :meth:`set_episodes`, or per reset with ``"task_id"`` and ``"episode_seed"`` entries of the
    tensordict passed to :meth:`~torchrl.envs.EnvBase.reset` (they then stay the slot's schedule;
    a ``task_id`` of 0 keeps the slot's scheduled task). A ``"_reset"`` mask resets only its slots.

    Finished episodes are **frozen**: their env is no longer stepped, their observation and done
    flags stay as they were and their reward is 0, so a batch can be stepped until every episode
    is done. Run that loop with :meth:`~torchrl.envs.EnvBase.step` and
    :func:`~torchrl.envs.utils.step_mdp` (``rollout(break_when_any_done=False)`` would reset the
    finished slots and replay their episode).

    Keys (batch ``[num_envs]``):

    ======================  ======================  ===================================================
    key                     shape, dtype            meaning
    ======================  ======================  ===================================================
    ``"observation"``       ``[N, obs_dim]`` float  the agent's observation (point: x-y; ant: 29-d)
    ``"goal"``              ``[N, obs_dim]`` float  the observation at the goal (``info["goal"]``)
    ``"desired_goal"``      ``[N, 2]`` float        the goal's x-y (named as in gymnasium-robotics)
    ``"achieved_goal"``     ``[N, 2]`` float        the agent's x-y
    ``"task_id"``           ``[N, 1]`` int64        the OGBench task (0 for a custom task)
    ``"success"``           ``[N, 1]`` bool         the env's ``info["success"]`` of the last step
    ``"done"`` ...          ``[N, 1]`` bool         ``terminated``: reached the goal; ``truncated``:
                                                    time limit (``env.spec.max_episode_steps``)
    ``"action"``            ``[N, action_dim]``     clipped to the env's action space (``[-1, 1]``),
                                                    as OGBench's evaluation loop does
    ======================  ======================  ===================================================

    Args:
        name (str): OGBench dataset name (``"pointmaze-medium-navigate-v0"``) or env id.
        num_envs (int, optional): episodes side by side. Defaults to ``1``.
        device (torch.device, optional): device of the tensordicts. Defaults to CPU.

    Keyword Args:
        task_ids (sequence, optional): one task per slot. Defaults to the tasks in turn, 1, 2, ...
        seeds (sequence of int, optional): one episode seed per slot. Defaults to ``0 .. N-1``.

    Examples:
        >>> from torchrl.envs.utils import step_mdp
        >>> env = OGBenchMazeEnv("pointmaze-medium-navigate-v0", num_envs=3, task_ids=[1, 2, 3], seeds=[0, 1, 2])
        >>> td = env.reset()
        >>> td["observation"].shape, td["desired_goal"].shape, td["task_id"].view(-1).tolist()
        (torch.Size([3, 2]), torch.Size([3, 2]), [1, 2, 3])
        >>> td = env.step(td.set("action", torch.zeros(3, 2)))
        >>> td["next", "success"].shape
        torch.Size([3, 1])
        >>> # or choose the episodes in the reset tensordict
        >>> td = env.reset(TensorDict(task_id=torch.tensor([5, 5, 4]), episode_seed=torch.arange(3), batch_size=[3]))
        >>> td["task_id"].view(-1).tolist()
        [5, 5, 4]
    """

    def __init__(
        self,
        name: str,
        num_envs: int = 1,
        device=None,
        *,
        task_ids: Sequence | None = None,
        seeds: Sequence[int] | None = None,
    ):
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
        flag = Unbounded((n, 1), dtype=torch.bool, device=self.device)
        self.observation_spec = Composite(
            observation=Unbounded((n, obs_dim), device=self.device),
            goal=Unbounded((n, obs_dim), device=self.device),
            desired_goal=Unbounded((n, 2), device=self.device),
            achieved_goal=Unbounded((n, 2), device=self.device),
            task_id=Unbounded((n, 1), dtype=torch.int64, device=self.device),
            success=flag.clone(),
            shape=(n,),
            device=self.device,
        )
        self.action_spec = Bounded(
            torch.as_tensor(act.low).expand(n, -1), torch.as_tensor(act.high).expand(n, -1), (n, act.shape[0]),
            device=self.device,
        )  # fmt: skip
        self._action_low, self._action_high = act.low.astype(np.float32), act.high.astype(np.float32)
        self.reward_spec = Unbounded((n, 1), device=self.device)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(n,), device=self.device
        )

        # Every per-slot quantity lives in one preallocated float32 buffer, each field a contiguous
        # block, so that a step ends with one numpy->torch conversion (and one device transfer)
        # whatever the number of keys; ids and flags are exact in float32.
        fields = {"observation": obs_dim, "goal": obs_dim, "desired_goal": 2, "achieved_goal": 2, "reward": 1,
                  "task_id": 1, "done": 1, "terminated": 1, "success": 1}  # fmt: skip
        self._buffer = np.zeros(n * sum(fields.values()), dtype=np.float32)
        self._fields, offset = {}, 0
        for key, dim in fields.items():
            self._fields[key] = (offset, dim)
            offset += n * dim
        self._view = {key: self._buffer[o : o + n * d].reshape(n, d) for key, (o, d) in self._fields.items()}
        self._tasks: list = []
        self._seeds: list[int] = []
        self.set_episodes(
            [1 + k % self.num_tasks for k in range(n)] if task_ids is None else task_ids,
            list(range(n)) if seeds is None else seeds,
        )

    def set_episodes(self, tasks: Sequence, seeds: Sequence[int]) -> None:
        """What each slot plays at its next reset: a task id in ``1..num_tasks`` or a
        ``dict(init_ij=(i, j), goal_ij=(i, j))``, and an episode seed."""
        n = self.batch_size[0]
        if len(tasks) != n or len(seeds) != n:
            raise ValueError(
                f"set_episodes needs one task and one seed per slot ({n}), got {len(tasks)} and {len(seeds)}."
            )
        for task in tasks:
            if isinstance(task, dict):
                if not {"init_ij", "goal_ij"} <= set(task):
                    raise ValueError(f"A custom task needs 'init_ij' and 'goal_ij', got keys {sorted(task)}.")
            elif isinstance(task, bool) or not 1 <= int(task) <= self.num_tasks:
                raise ValueError(
                    f"Task ids of {self.name} run from 1 to {self.num_tasks}, got {task!r}: pick OGBench's "
                    "evaluation tasks by id, or pass dict(init_ij=..., goal_ij=...) for a task of your own."
                )
        for seed in seeds:
            if int(seed) < 0:
                raise ValueError(f"Episode seeds must be non-negative integers (gymnasium's rule), got {seed}.")
        self._tasks = [task if isinstance(task, dict) else int(task) for task in tasks]
        self._seeds = [int(s) for s in seeds]

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._seeds = [int(seed) + k for k in range(self.batch_size[0])]

    def _output(self, with_reward: bool) -> TensorDict:
        buffer = torch.tensor(self._buffer).to(self.device)  # the one conversion; a copy, as the buffer is reused
        n = self.batch_size[0]
        out = {key: buffer[o : o + n * d].view(n, d) for key, (o, d) in self._fields.items()}
        if not with_reward:
            del out["reward"]
        out["task_id"] = out["task_id"].long()
        for key in ("done", "terminated", "success"):
            out[key] = out[key].bool()
        out["truncated"] = out["done"] & ~out["terminated"]
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _schedule_from(self, tensordict: TensorDictBase, mask: np.ndarray) -> None:
        """Takes the ``"task_id"`` / ``"episode_seed"`` entries of a reset tensordict as the
        schedule of the slots being reset."""
        n = self.batch_size[0]
        tasks, seeds = list(self._tasks), list(self._seeds)
        task_ids = tensordict.get("task_id", None)
        if task_ids is not None:
            task_ids = task_ids.reshape(n, -1)[:, 0].tolist() if task_ids.numel() == n else None
            if task_ids is None:
                raise ValueError(f"The reset entry 'task_id' needs one id per slot, shape [{n}] or [{n}, 1].")
            for k in np.flatnonzero(mask):
                if task_ids[k] != 0:  # 0: the slot keeps its task (custom tasks read back as 0)
                    tasks[k] = task_ids[k]
        episode_seeds = tensordict.get("episode_seed", None)
        if episode_seeds is not None:
            if episode_seeds.numel() != n:
                raise ValueError(f"The reset entry 'episode_seed' needs one seed per slot, shape [{n}] or [{n}, 1].")
            episode_seeds = episode_seeds.reshape(n).tolist()
            for k in np.flatnonzero(mask):
                seeds[k] = episode_seeds[k]
        self.set_episodes(tasks, seeds)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        n = self.batch_size[0]
        mask = np.ones(n, dtype=bool)
        if tensordict is not None:
            reset = tensordict.get("_reset", None)
            if reset is not None:
                mask = reset.reshape(n).cpu().numpy()
            self._schedule_from(tensordict, mask)
        v = self._view
        for k in np.flatnonzero(mask):
            env, task, seed = self.envs[k], self._tasks[k], self._seeds[k]
            options = dict(task_info=task) if isinstance(task, dict) else dict(task_id=task)
            np.random.seed(seed % 2**32)  # OGBench's start/goal noise comes from the global generator
            env.action_space.seed(seed)  # and its settling steps at reset from the action space's
            ob, info = env.reset(seed=seed, options=options)
            v["observation"][k], v["goal"][k] = ob, info["goal"]
            v["achieved_goal"][k], v["desired_goal"][k] = env.unwrapped.get_xy(), env.unwrapped.cur_goal_xy
            v["task_id"][k] = 0 if isinstance(task, dict) else task
        for key in ("reward", "done", "terminated", "success"):
            v[key][mask] = 0
        return self._output(with_reward=False)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        # The hot loop: one env.step per live episode; the results are written into the buffer's
        # views with one fancy-indexed assignment per key, then converted to torch once.
        actions = tensordict.get("action").detach().to("cpu", torch.float32).numpy()
        # OGBench's evaluation clips actions to [-1, 1] before env.step; its PointMaze itself does
        # not (it moves by 0.2 * action), so an unclipped policy would move faster than allowed.
        actions = np.clip(actions, self._action_low, self._action_high)
        v = self._view
        live = np.flatnonzero(v["done"][:, 0] == 0)  # finished episodes stay frozen
        v["reward"][:] = 0
        if len(live):
            steps = [self.envs[k].step(actions[k]) for k in live]
            v["observation"][live] = np.stack([s[0] for s in steps])
            v["reward"][live, 0] = [s[1] for s in steps]
            v["terminated"][live, 0] = [s[2] for s in steps]
            v["done"][live, 0] = [s[2] or s[3] for s in steps]
            v["success"][live, 0] = [s[4]["success"] for s in steps]
            v["achieved_goal"][live] = np.stack([self.envs[k].unwrapped.get_xy() for k in live])
        return self._output(with_reward=True)

    def close(self, *, raise_if_closed: bool = True):
        for env in self.envs:
            env.close()
        super().close(raise_if_closed=raise_if_closed)
