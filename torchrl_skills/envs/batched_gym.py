"""Many gymnasium envs stepped side by side in one process, as one TorchRL env of batch ``[N]``."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Composite, Unbounded
from torchrl.envs import EnvBase

__all__ = ["BatchedGymEnv"]


def _torch_dtype(dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


class BatchedGymEnv(EnvBase):
    """``num_envs`` gymnasium envs run side by side: one TorchRL step steps all of them.

    One policy call and one tensordict per step serve every slot, so TorchRL's per-step cost is
    shared by the ``N`` envs instead of paid by each (``benchmarks/bench_higl_sac.py`` measures
    collection through it against the raw gymnasium loop). The keys are those of
    :class:`~torchrl.envs.GymEnv` for the same env: a ``Box`` observation is ``"observation"``,
    a ``Dict`` of boxes gives one entry per key (PointMaze: ``"observation"``, ``"achieved_goal"``,
    ``"desired_goal"``), plus ``"reward"``, ``"done"``, ``"terminated"``, ``"truncated"`` and the
    ``info_keys`` read from gymnasium's ``info`` (e.g. ``"success"``).

    **Episode seeds.** Each slot has an optional pending seed, used by its next reset
    (``env.reset(seed=...)``) and then dropped, so later resets of that slot continue its env's
    generator. Set them with ``seeds=``, :meth:`set_episode_seeds`, :meth:`~torchrl.envs.EnvBase.set_seed`
    (slot ``k`` gets ``seed + k``) or an ``"episode_seed"`` entry of the reset tensordict. An
    episode then plays out the same whatever slot or batch it runs in.

    **Finished episodes are frozen**: a slot whose episode is done is not stepped again until it
    is reset; its observation and done flags stay, its reward is 0. An evaluation can therefore
    step the batch until every episode is done (see
    :func:`~torchrl_skills.evaluation.rollout_side_by_side`), and a collector resets finished
    slots through the ``"_reset"`` mask as with any batched env.

    Args:
        env (str or callable): a gymnasium id (built with ``gymnasium.make(env, **make_kwargs)``)
            or a function returning a new gymnasium env.
        num_envs (int, optional): envs side by side. Defaults to ``1``.
        device (torch.device, optional): device of the tensordicts. Defaults to CPU.

    Keyword Args:
        seeds (sequence of int, optional): a pending seed per slot. Defaults to none.
        info_keys (sequence of str or dict, optional): scalar ``info`` entries returned as
            ``[N, 1]`` entries: names (bool entries, e.g. ``["success"]``) or a dict name -> torch
            dtype. Defaults to none.
        **make_kwargs: passed to ``gymnasium.make`` (e.g. ``continuing_task=False``,
            ``max_episode_steps=...``).

    Examples:
        >>> import gymnasium as gym, gymnasium_robotics
        >>> gym.register_envs(gymnasium_robotics)
        >>> env = BatchedGymEnv("PointMaze_UMaze-v3", num_envs=4, seeds=[0, 1, 2, 3], info_keys=["success"],
        ...                     continuing_task=False)
        >>> td = env.reset()
        >>> td["observation"].shape, td["desired_goal"].shape, td["success"].shape
        (torch.Size([4, 4]), torch.Size([4, 2]), torch.Size([4, 1]))
        >>> td = env.rand_step(td)
        >>> td["next", "reward"].shape
        torch.Size([4, 1])
    """

    def __init__(
        self,
        env: str | Callable,
        num_envs: int = 1,
        device=None,
        *,
        seeds: Sequence[int] | None = None,
        info_keys: Sequence[str] | dict = (),
        **make_kwargs,
    ):
        import gymnasium as gym

        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
        if isinstance(env, str):
            env_id = env

            def env_fn():
                return gym.make(env_id, **make_kwargs)

        elif callable(env):
            if make_kwargs:
                raise TypeError(f"Keyword arguments {sorted(make_kwargs)} are for gymnasium.make; pass an env id.")
            env_fn = env
        else:
            raise TypeError(f"env must be a gymnasium id or a function returning a gymnasium env, got {env!r}.")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.envs = [env_fn() for _ in range(num_envs)]
        first = self.envs[0]
        n = num_envs
        space = first.observation_space
        if isinstance(space, gym.spaces.Dict):
            boxes = dict(space.spaces)
        elif isinstance(space, gym.spaces.Box):
            boxes = {"observation": space}
        else:
            raise TypeError(f"BatchedGymEnv supports Box and Dict-of-Box observations, got {space}.")
        for key, box in boxes.items():
            if not isinstance(box, gym.spaces.Box):
                raise TypeError(f"BatchedGymEnv supports Box and Dict-of-Box observations; {key!r} is {box}.")
        if not isinstance(first.action_space, gym.spaces.Box):
            raise TypeError(f"BatchedGymEnv supports Box actions, got {first.action_space}.")
        self._dict_obs = isinstance(space, gym.spaces.Dict)
        if not isinstance(info_keys, dict):
            info_keys = dict.fromkeys(info_keys, torch.bool)
        self.info_keys = dict(info_keys)
        flag = Unbounded((n, 1), dtype=torch.bool, device=self.device)
        obs_specs = {
            key: Unbounded((n, *box.shape), dtype=_torch_dtype(box.dtype), device=self.device)
            for key, box in boxes.items()
        }
        self._obs = {key: np.zeros((n, *box.shape), dtype=box.dtype) for key, box in boxes.items()}
        self._info = {
            key: np.zeros((n, 1), dtype=torch.zeros(0, dtype=dtype).numpy().dtype)
            for key, dtype in self.info_keys.items()
        }
        for key, dtype in self.info_keys.items():
            obs_specs[key] = Unbounded((n, 1), dtype=dtype, device=self.device)
        self.observation_spec = Composite(obs_specs, shape=(n,), device=self.device)
        act = first.action_space
        self.action_spec = Bounded(
            torch.as_tensor(act.low).expand(n, *act.shape), torch.as_tensor(act.high).expand(n, *act.shape),
            (n, *act.shape), dtype=_torch_dtype(act.dtype), device=self.device,
        )  # fmt: skip
        self.reward_spec = Unbounded((n, 1), device=self.device)
        self.done_spec = Composite(
            done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(), shape=(n,), device=self.device
        )
        self._reward = np.zeros((n, 1), dtype=np.float32)
        self._terminated = np.zeros((n, 1), dtype=bool)
        self._truncated = np.zeros((n, 1), dtype=bool)
        self._seeds: list[int | None] = [None] * n
        if seeds is not None:
            self.set_episode_seeds(seeds)

    def set_episode_seeds(self, seeds: Sequence[int | None]) -> None:
        """The seed of each slot's next reset (``None``: continue the slot's generator)."""
        n = self.batch_size[0]
        if len(seeds) != n:
            raise ValueError(f"set_episode_seeds needs one seed per slot ({n}), got {len(seeds)}.")
        for seed in seeds:
            if seed is not None and int(seed) < 0:
                raise ValueError(f"Episode seeds must be non-negative integers (gymnasium's rule), got {seed}.")
        self._seeds = [None if s is None else int(s) for s in seeds]

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self.set_episode_seeds([int(seed) + k for k in range(self.batch_size[0])])
            for k, env in enumerate(self.envs):
                env.action_space.seed(int(seed) + k)

    def _write(self, k: int, obs, info: dict) -> None:
        if self._dict_obs:
            for key, buf in self._obs.items():
                buf[k] = obs[key]
        else:
            self._obs["observation"][k] = obs
        for key, buf in self._info.items():
            buf[k] = info.get(key, 0)

    def _output(self, with_reward: bool) -> TensorDict:
        # copies: the buffers are reused by the next step
        out = {key: torch.from_numpy(buf.copy()) for key, buf in self._obs.items()}
        out.update({key: torch.from_numpy(buf.copy()) for key, buf in self._info.items()})
        terminated = torch.from_numpy(self._terminated.copy())
        truncated = torch.from_numpy(self._truncated.copy())
        out.update(terminated=terminated, truncated=truncated, done=terminated | truncated)
        if with_reward:
            out["reward"] = torch.from_numpy(self._reward.copy())
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        n = self.batch_size[0]
        mask = np.ones(n, dtype=bool)
        if tensordict is not None:
            reset = tensordict.get("_reset", None)
            if reset is not None:
                mask = reset.reshape(n).cpu().numpy()
            episode_seeds = tensordict.get("episode_seed", None)
            if episode_seeds is not None:
                if episode_seeds.numel() != n:
                    raise ValueError(f"The reset entry 'episode_seed' needs one seed per slot, shape [{n}] or [{n}, 1].")
                seeds = list(self._seeds)
                for k, s in zip(np.flatnonzero(mask), episode_seeds.reshape(n)[torch.as_tensor(mask)].tolist()):
                    seeds[k] = s
                self.set_episode_seeds(seeds)
        for k in np.flatnonzero(mask):
            seed, self._seeds[k] = self._seeds[k], None
            obs, info = self.envs[k].reset(seed=seed)
            self._write(k, obs, info)
        self._terminated[mask] = False
        self._truncated[mask] = False
        return self._output(with_reward=False)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        actions = tensordict.get("action").detach().cpu().numpy()
        self._reward[:] = 0
        live = np.flatnonzero(~(self._terminated[:, 0] | self._truncated[:, 0]))  # finished slots stay frozen
        for k in live:
            obs, reward, terminated, truncated, info = self.envs[k].step(actions[k])
            self._write(k, obs, info)
            self._reward[k, 0] = reward
            self._terminated[k, 0] = terminated
            self._truncated[k, 0] = truncated
        return self._output(with_reward=True)

    def close(self, *, raise_if_closed: bool = True):
        for env in self.envs:
            env.close()
        super().close(raise_if_closed=raise_if_closed)
