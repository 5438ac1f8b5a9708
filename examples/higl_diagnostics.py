"""Diagnostics of a HIGL agent trained by ``examples/higl_pointmaze.py``: the encoder, the low level, the high level.

A HIGL agent that does not solve the maze can fail in three places; this script looks at each
one on its own, for one trained seed of a ``higl_pointmaze.py`` run:

1. **the encoder** ``E``: do latent distances follow the maze's shortest paths? Over random
   pairs of positions (drawn uniformly inside the free cells, at rest), the latent distance
   ``||E(a) - E(b)||`` against the breadth-first-search distance in cells, with their Spearman
   rank correlation -> ``encoder_vs_shortest_path.png``;
2. **the low level** alone, pursuing ``E(goal)`` with no high level, on goals one cell and up to
   two cells from the start (``--max-cells``), ``--low-level-episodes`` deterministic episodes of
   ``--low-level-steps`` steps each -> ``low_level_success.json``;
3. **the high level**: one deterministic episode of the full HIGL policy (a fixed episode seed),
   with the goals it emitted: the subgoal states of `RelativeSubgoal`, otherwise the sampled position whose latent is nearest ->
   ``high_level_goals.png``; and, for the nearby-state goal maps (``RelativeSubgoal``,
   ``LandmarkSubgoal``), what its learned correction adds: success on the run's own evaluation
   episodes with the trained high level against the same goal map with the high-level action
   ignored (``action_scale = 0``: the straight line, or the landmark route, alone).

The agent is rebuilt with ``higl_pointmaze.py``'s own classes from the configuration saved in
``<run-dir>/results.json``, then ``<run-dir>/ckpt_higl_seed<seed>.pt`` is loaded::

    python examples/higl_pointmaze.py --algos higl --seeds 0 --out-dir runs/higl_pointmaze
    python examples/higl_diagnostics.py --run-dir runs/higl_pointmaze --seed 0

The last line printed is one JSON object: the Spearman rho of the encoder, the low level's
success rates, the outcome of the high-level episode and the two success rates of the correction.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_skills.data.maze_grid import MazeGrid
from torchrl_skills.evaluation import (
    latent_vs_shortest_path,
    low_level_success,
    nearest_states,
    plot_high_level_goals,
    plot_latent_vs_shortest_path,
    rollout_side_by_side,
    sample_free_positions,
)
from torchrl_skills.utils import (
    ArgumentParser,
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    load_replay_buffer_state,
    non_negative_int,
    positive_int,
    run_cli,
    seed_everything,
    state_dict_mismatch,
)

EXAMPLE = Path(__file__).resolve().with_name("higl_pointmaze.py")


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--run-dir", required=True, help="output folder of examples/higl_pointmaze.py (results.json, checkpoints)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="training seed whose checkpoint ckpt_higl_seed<seed>.pt is diagnosed")
    p.add_argument("--out-dir", default=None, help="where the plots and JSON go (default: --run-dir)")
    p.add_argument("--num-positions", type=positive_int, default=4000,
                   help="positions sampled uniformly in the free cells (encoder pairs, candidates for decoding goals)")
    p.add_argument("--num-pairs", type=positive_int, default=2000, help="random pairs of positions for the encoder plot")
    p.add_argument("--low-level-episodes", type=positive_int, default=50, help="low-level episodes per goal distance")
    p.add_argument("--low-level-steps", type=positive_int, default=100, help="steps per low-level episode")
    p.add_argument("--max-cells", type=positive_int, nargs="+", default=[1, 2],
                   help="low-level tasks: goals 1 to this many cells (BFS) from the start, one rate per value")
    p.add_argument("--episode-seed", type=non_negative_int, default=None,
                   help="seed of the high-level episode (default: the run's first evaluation episode of --seed)")
    p.add_argument("--num-threads", type=non_negative_int, default=1, help="torch CPU threads (0: torch's default)")
    return p.parse_args(argv)


def load_example():
    """``examples/higl_pointmaze.py`` as a module (its classes rebuild the agent)."""
    spec = importlib.util.spec_from_file_location("higl_pointmaze", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_agent(run_dir: Path, seed: int):
    """``(example module, agent, training args)``: the trained HIGL agent of ``seed``, rebuilt from ``results.json``
    and the checkpoint (both are looked for before the example is imported)."""
    train = f"python examples/higl_pointmaze.py --algos higl --seeds {seed} --out-dir {run_dir}"
    results_path, ckpt_path = run_dir / "results.json", run_dir / f"ckpt_higl_seed{seed}.pt"
    if not results_path.is_file():
        raise CheckpointNotFoundError(f"--run-dir {run_dir}: no results.json there; train first: {train}")
    if not ckpt_path.is_file():
        raise CheckpointNotFoundError(
            f"no checkpoint {ckpt_path} (no HIGL run of seed {seed} there); train one in a new folder (a run replaces "
            f"what its --out-dir holds): python examples/higl_pointmaze.py --algos higl --seeds {seed} --out-dir <new folder>"
        )
    config = json.loads(results_path.read_text()).get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{results_path} has no 'config' entry: it was not written by examples/higl_pointmaze.py.")
    example = load_example()
    args = example.parse_args([])  # the defaults, for options newer than the run
    vars(args).update(config)
    args.device = "cpu"
    env = example.make_env(args, 1, None)
    spec = env.action_spec[0]
    env.close()
    agent = example.HIGLAgent(args, spec, torch.device("cpu"))
    ck = load_checkpoint(ckpt_path)
    # SACLoss registers its target-entropy buffer on first use (its own load_state_dict does it,
    # a parent's does not): create it so that the saved one loads.
    agent.loss.sac_loss.target_entropy
    # compared flat: TorchRL losses would load other networks silently (see load_module_state)
    misfit = "; ".join(f"{name}: {m}" for name in ("loss", "high_loss")
                       if (m := state_dict_mismatch(getattr(agent, name), ck.get(name) or {})))  # fmt: skip
    if misfit:  # e.g. a run of an older examples/higl_pointmaze.py
        raise CheckpointError(
            f"{ckpt_path} does not fit the agent that examples/higl_pointmaze.py builds from the configuration in "
            f"{results_path} ({misfit}); retrain with the current example."
        )
    agent.loss.load_state_dict(ck["loss"])
    agent.high_loss.load_state_dict(ck["high_loss"])
    if args.goal_space == "landmark":  # its landmarks come from the replay the run saved
        load_replay_buffer_state(agent.rb, ck["rb"])
        agent.refresh()
    return example, agent, args


@torch.no_grad()
def high_level_episode(example, args, agent, episode_seed: int, candidates: torch.Tensor) -> dict:
    """One deterministic episode of the full HIGL policy; the emitted goals decoded among ``candidates``."""
    env = example.make_env(args, 1, [episode_seed], agent.policy)
    try:
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout, lengths = rollout_side_by_side(env, agent.policy, args.max_episode_steps)
    finally:
        env.close()
    episode = rollout[0, : int(lengths[0])]
    path_xy = torch.cat([episode["observation"][:1, :2], episode["next", "observation"][:, :2]])
    emitted = episode["goal_set"].reshape(-1)
    return {
        "path_xy": path_xy,
        "goal_xy": episode["desired_goal"][0],
        # RelativeSubgoal goals are E(a state it wrote down): draw that state; other goal maps emit
        # latents only: draw the candidate position with the nearest latent
        "emitted_goal_xy": (
            episode["subgoal_observation"][emitted][:, :2]
            if "subgoal_observation" in episode.keys()
            else nearest_states(agent.encoder, episode["goal"][emitted], candidates)[:, :2]
        ),
        "emitted_at_xy": episode["observation"][emitted][:, :2],
        "success": bool(episode["next", "reward"].sum() > 0),
        "steps": int(lengths[0]),
    }


def main(argv=None) -> dict:
    """Writes the three diagnostics of one trained seed; returns the summary printed as JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads) if args.num_threads else None
    run_dir = Path(args.run_dir)
    out_dir = Path(args.out_dir) if args.out_dir is not None else run_dir
    example, agent, train_args = load_agent(run_dir, args.seed)
    seed_everything(args.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = example.make_env(train_args, 1, None)
    grid = MazeGrid.from_gymnasium_robotics(env.base_env.envs[0])
    env.close()
    generator = torch.Generator().manual_seed(args.seed)
    positions = sample_free_positions(grid, args.num_positions, generator, obs_dim=example.OBS_DIM)

    # 1. the encoder
    encoder_result = latent_vs_shortest_path(agent.encoder, grid, positions, args.num_pairs, generator)
    plot_latent_vs_shortest_path(
        encoder_result, out_dir / "encoder_vs_shortest_path.png",
        title=f"{train_args.env_id}, HIGL seed {args.seed}: latent distance vs maze distance",
    )  # fmt: skip

    # 2. the low level alone
    success = {
        str(m): low_level_success(
            agent.encoder, agent.loss.sac_loss.actor_network, train_args.seq_len, env_id=train_args.env_id,
            num_episodes=args.low_level_episodes, max_cells=m, max_steps=args.low_level_steps, seed=args.seed,
        )  # fmt: skip
        for m in args.max_cells
    }
    low_level = {
        "env_id": train_args.env_id, "seed": args.seed, "episodes": args.low_level_episodes,
        "max_steps": args.low_level_steps, "min_cells": 1, "success_rate_by_max_cells": success,
    }  # fmt: skip
    (out_dir / "low_level_success.json").write_text(json.dumps(low_level, indent=2))

    # 3. the high level, on one episode
    episode_seed = 10_000 * (args.seed + 1) if args.episode_seed is None else args.episode_seed
    episode = high_level_episode(example, train_args, agent, episode_seed, positions)
    outcome = "success" if episode["success"] else "failure"
    plot_high_level_goals(
        grid, episode["path_xy"], episode["goal_xy"], episode["emitted_goal_xy"], out_dir / "high_level_goals.png",
        title=f"HIGL seed {args.seed}, episode seed {episode_seed}: {outcome} in {episode['steps']} steps, "
              f"{len(episode['emitted_goal_xy'])} goals (k={train_args.k})",
        emitted_at_xy=episode["emitted_at_xy"],
    )  # fmt: skip

    # 4. what the high level's learned correction adds (nearby-state goal maps only)
    correction = None
    goal_map = agent.policy.goal_map
    if isinstance(goal_map, example.RelativeSubgoal):
        scale, correction = goal_map.action_scale, {}
        for name, goal_map.action_scale in (("trained", scale), ("without", 0.0)):
            correction[name] = example.evaluate(train_args, args.seed, agent.policy, agent.env_policy)
        goal_map.action_scale = scale

    summary = {
        "spearman": encoder_result["spearman"],
        "low_level_success": success,
        "high_level_episode": {"seed": episode_seed, "success": episode["success"], "steps": episode["steps"],
                               "goals": len(episode["emitted_goal_xy"])},
        "high_level_correction": correction,
        "out_dir": str(out_dir),
    }  # fmt: skip
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    run_cli(main)
