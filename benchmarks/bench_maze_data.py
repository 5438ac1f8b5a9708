"""Throughput of the OGBench PointMaze navigate generator: M envs side by side vs one env vs raw env steps.

Three loops over the same number of steps of ``pointmaze-{maze}-v0``:

* ``side by side``: :func:`~torchrl_skills.data.ogbench.generate_ogbench_dataset` with ``num_envs=M``
  (one vectorised subgoal/expert computation for all M envs per step);
* ``one env``: the same generator with ``num_envs=1`` (the same work, one env at a time);
* ``raw env.step``: a plain loop of ``env.step(random action)`` on one gymnasium-made env (wrappers
  included, as a user would step it), with no expert, no bookkeeping and no writing: the ceiling
  the generator's per-step overhead is measured against.

The generator's steps/s count collection only (``steps_per_s`` in the dataset's metadata), not the
Minari write, which is reported separately as the end-to-end time. All three run in one process,
so their ratios are comparable even on a loaded machine; absolute numbers are not. ::

    python benchmarks/bench_maze_data.py                       # medium, 8 episodes of 1001 steps
    python benchmarks/bench_maze_data.py --maze giant --num-envs 16 --episodes 16

This is a script, not a test; it writes into a throw-away Minari store.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def raw_steps_per_s(env_id: str, num_steps: int, episode_length: int, seed: int) -> float:
    """Steps/s of ``env.step`` with uniform random actions, resetting every ``episode_length`` steps."""
    import gymnasium
    import ogbench.locomaze  # noqa: F401  (registers the envs)

    env = gymnasium.make(env_id, terminate_at_goal=False, max_episode_steps=episode_length)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(episode_length)]
    env.reset(seed=seed)
    start = time.perf_counter()
    done = 0
    while done < num_steps:
        env.reset()
        for action in actions[: num_steps - done]:
            env.step(action)
        done += min(episode_length, num_steps - done)
    elapsed = time.perf_counter() - start
    env.close()
    return num_steps / elapsed


def generator_steps_per_s(maze: str, episodes: int, num_envs: int, seed: int) -> tuple[float, float, float]:
    """(collection steps/s, end-to-end seconds, goal-reaching rate) of one generator run."""
    import minari

    from torchrl_skills.data.ogbench import generate_ogbench_dataset

    start = time.perf_counter()
    dataset_id = generate_ogbench_dataset(
        f"pointmaze-{maze}-navigate-v0",
        num_episodes=episodes,
        num_envs=num_envs,
        seed=seed,
        progress=False,
        dataset_id=f"bench/pointmaze-{maze}-m{num_envs}-v0",
        overwrite=True,
    )
    total = time.perf_counter() - start
    stats = minari.load_dataset(dataset_id).storage.metadata["torchrl_skills_generator"]
    return stats["steps_per_s"], total, stats["goal_reaching_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maze", default="medium", choices=["medium", "large", "giant", "teleport"])
    parser.add_argument("--episodes", type=int, default=8, help="episodes per generator run (default: %(default)s)")
    parser.add_argument("--num-envs", type=int, default=8, help="M, envs side by side (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from torchrl_skills.data.ogbench import NAVIGATE_SIZES

    episode_length = NAVIGATE_SIZES[args.maze][1]
    num_steps = args.episodes * episode_length
    with tempfile.TemporaryDirectory() as store:
        os.environ["MINARI_DATASETS_PATH"] = store
        # Warm-up: imports, env registration and the first MuJoCo model load stay out of the timings.
        generator_steps_per_s(args.maze, 1, 1, args.seed)
        side, side_total, side_rate = generator_steps_per_s(args.maze, args.episodes, args.num_envs, args.seed)
        one, one_total, one_rate = generator_steps_per_s(args.maze, args.episodes, 1, args.seed)
    raw = raw_steps_per_s(f"pointmaze-{args.maze}-v0", num_steps, episode_length, args.seed)

    print(f"pointmaze-{args.maze}: {args.episodes} episodes x {episode_length} steps = {num_steps:,} steps per run")
    print(f"{'loop':<28}{'steps/s':>10}{'end-to-end s':>14}{'goal rate':>11}")
    print(f"{f'side by side (M={args.num_envs})':<28}{side:>10,.0f}{side_total:>14.2f}{side_rate:>11.3f}")
    print(f"{'one env (M=1)':<28}{one:>10,.0f}{one_total:>14.2f}{one_rate:>11.3f}")
    print(f"{'raw env.step, random':<28}{raw:>10,.0f}{num_steps / raw:>14.2f}{'-':>11}")
    print(f"side by side / one env:      {side / one:.2f}x")
    print(f"side by side / raw env.step: {side / raw:.2f}x")
    print(f"one env / raw env.step:      {one / raw:.2f}x")
    assert np.isfinite([side, one, raw]).all()


if __name__ == "__main__":
    main()
