"""Episodes of a batched env run side by side until every one is done."""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import step_mdp

__all__ = ["rollout_side_by_side"]


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
