"""Episodes of a batched env run side by side until every one is done."""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import step_mdp

__all__ = ["SeededRandomPolicy", "rollout_side_by_side"]


@torch.no_grad()
def rollout_side_by_side(
    env: EnvBase, policy, max_steps: int, tensordict: TensorDictBase | None = None, stop=None
) -> tuple[TensorDictBase, torch.Tensor]:
    """Steps every episode of a batched env (batch ``[N]``) until all are done, one policy call per step.

    The env must keep finished episodes frozen until they are reset (as
    :class:`~torchrl_skills.envs.BatchedGymEnv` and :class:`~torchrl_skills.envs.OGBenchMazeEnv`
    do): ``env.rollout(break_when_any_done=False)`` would instead reset them and start new
    episodes. A policy that plans, like :class:`~torchrl_skills.modules.SkillMPCPolicy`, then
    plans all the episodes that replan at a step in one batched call and skips finished ones.

    Args:
        env (EnvBase): a batched env of batch ``[N]``.
        policy: reads the env's keys and writes ``"action"``.
        max_steps (int): at most this many steps (episodes still running are cut there).
        tensordict (TensorDictBase, optional): the reset tensordict. Defaults to ``env.reset()``.
        stop (callable, optional): checked after every step; a truthy value ends the rollout
            early (e.g. a :class:`~torchrl_skills.utils.GracefulStop`).

    Returns:
        ``(rollout, lengths)``: the steps stacked as a ``[N, T]`` tensordict (root entries,
        ``"action"`` and ``"next"``, as :meth:`~torchrl.envs.EnvBase.rollout` writes them) and
        the number of steps of each episode, ``[N]`` int64 (episode ``k`` is ``rollout[k, :lengths[k]]``;
        its later entries repeat the frozen final state).

    Examples:
        >>> import gymnasium as gym, gymnasium_robotics
        >>> from torchrl.envs.utils import RandomPolicy
        >>> from torchrl_skills.envs import BatchedGymEnv
        >>> gym.register_envs(gymnasium_robotics)
        >>> env = BatchedGymEnv("PointMaze_UMaze-v3", num_envs=3, seeds=[0, 1, 2], max_episode_steps=20)
        >>> rollout, lengths = rollout_side_by_side(env, RandomPolicy(env.action_spec), max_steps=100)
        >>> rollout.shape, lengths.tolist()
        (torch.Size([3, 20]), [20, 20, 20])
    """
    td = env.reset() if tensordict is None else tensordict
    n = td.batch_size.numel()
    lengths = torch.zeros(n, dtype=torch.int64)
    steps = []
    for _ in range(max_steps):
        live = ~td.get("done").reshape(n).cpu()
        if not live.any():
            break
        td = env.step(policy(td))
        steps.append(td)
        lengths += live
        td = step_mdp(td, exclude_action=True)
        if stop:
            break
    if not steps:
        raise ValueError("rollout_side_by_side ran no step: every episode was done at the start (reset the env first).")
    return torch.stack(steps, dim=td.ndim), lengths


class SeededRandomPolicy:
    """Uniform random actions in a bounded action spec, drawn from the policy's own generator.

    TorchRL's :class:`~torchrl.envs.utils.RandomPolicy` calls ``spec.rand()``, which draws from
    torch's global generator: a "random actions" reference measured after other work (another
    seed's training, a resumed run) then changes from one invocation to the next. This policy
    gives the same actions for the same ``seed`` whatever ran before.

    Args:
        action_spec (Bounded): the env's action spec (batched specs included, e.g. ``[N, A]``).
        seed (int): seed of the policy's generator.
        action_key (NestedKey, optional): where the action is written. Defaults to ``"action"``.

    Examples:
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> spec = Bounded(-1.0, 1.0, shape=(4, 2))
        >>> a = SeededRandomPolicy(spec, seed=0)(TensorDict({}, [4]))["action"]
        >>> _ = torch.rand(100)  # other draws in between change nothing
        >>> b = SeededRandomPolicy(spec, seed=0)(TensorDict({}, [4]))["action"]
        >>> a.shape, bool((a == b).all()), bool(a.abs().max() <= 1)
        (torch.Size([4, 2]), True, True)
    """

    def __init__(self, action_spec, seed: int, action_key="action"):
        space = getattr(action_spec, "space", None)
        if space is None or not hasattr(space, "low"):
            raise TypeError(f"SeededRandomPolicy needs a bounded action spec (torchrl Bounded), got {type(action_spec).__name__}.")
        self.low = space.low.expand(action_spec.shape).clone()
        self.high = space.high.expand(action_spec.shape).clone()
        self.action_key = action_key
        self.generator = torch.Generator(device=self.low.device).manual_seed(int(seed))

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        u = torch.rand(self.low.shape, generator=self.generator, device=self.low.device, dtype=self.low.dtype)
        return tensordict.set(self.action_key, self.low + u * (self.high - self.low))
