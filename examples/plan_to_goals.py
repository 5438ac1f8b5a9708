"""Zero-shot goal reaching by planning over skills (Freed et al., ICML 2023), end to end.

One command runs the whole pipeline on PointMaze medium:

1. generates the package's PointMaze dataset in the local Minari store if it is absent;
2. trains a skill model on it (``examples/train_skill_model.py``), or loads ``--checkpoint``;
3. evaluates goal reaching over ``--episodes`` episodes whose starts and goals are drawn by the
   env: TorchRL's ``CEMPlanner`` over a ``SkillModelEnv`` plans 3 skills ahead, the first one is
   executed by the deterministic low-level policy for 30 env steps, then it replans; the same
   episodes are run by two baselines (skills drawn from the prior without planning, and random
   actions);
4. writes ``results.json`` (success rate, final distance, steps, planning time per replan) and
   PNG plots (maze, executed trajectories, goals, the world model's predicted skill end points).

    python examples/plan_to_goals.py                              # PointMaze medium, ~2 min on 2 idle CPU cores
    python examples/plan_to_goals.py --maze large --episodes 100
    python examples/plan_to_goals.py --checkpoint runs/skill_model/checkpoint.pt
    python examples/plan_to_goals.py --dataset D4RL/antmaze/medium-play-v1 --env AntMaze_Medium-v4 \\
        --state-key achieved_goal observation   # when that dataset is in the local Minari store

A re-run with the same ``--out-dir`` and training settings reuses (or finishes) the trained
checkpoint instead of training again, and replaces the results and plots of the previous run.
Ctrl-C or SIGTERM during training finishes the current step and writes the checkpoint; during
evaluation it stops after the current step. Either way the command is printed that continues
(the same command: training resumes from its checkpoint, evaluation starts again), exit status
130 / 143.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from torchrl_skills.utils import (
    ArgumentParser,
    CheckpointNotFoundError,
    OutputDir,
    RunStopped,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
    save_figure,
    stop_on_signals,
)

EXAMPLES_DIR = Path(__file__).resolve().parent
if str(EXAMPLES_DIR) not in sys.path:  # so that the training script imports as a module
    sys.path.insert(0, str(EXAMPLES_DIR))

MAZE_ENVS = {"umaze": "PointMaze_UMaze-v3", "medium": "PointMaze_Medium-v3", "large": "PointMaze_Large-v3"}
METHODS = ["planner", "prior", "random"]
# The results of one run: a re-run replaces all of them (a method or a failure plot that the new
# run does not produce must not survive from the previous one).
OUTPUTS = ["results.json", "summary.png", *(f"{name}_trajectories.png" for name in METHODS), "planner_failures.png"]

# Embedded default of the main job, sized so that dataset generation + training + 3 x 50
# evaluation episodes finish in <= 150 s on 2 idle CPU cores. Networks are smaller than the
# package defaults (z 256, hidden 256): one CEM replan at K=1000 x 10 iterations x 3 skills costs
# ~4x less. 800 EM steps of 200 subtrajectories at lr 1e-3 were chosen on validation seeds 7 and
# 8 (planner success 0.86 / 0.90, against 0.80 / 0.92 for the former 3000 steps of 100 at 3e-4, in
# less than half the time; a batch of 200 runs 1.3x more subtrajectories/s than one of 100). See
# the README for the numbers.
DEFAULTS = {
    "train_steps": 800,
    "batch_size": 200,
    "seq_len": 30,
    "z_dim": 64,
    "hidden_dim": 128,
    "lr": 1e-3,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--maze", choices=sorted(MAZE_ENVS), default="medium", help="PointMaze layout")
    p.add_argument("--dataset", default=None, help="Minari dataset id (None: torchrl_skills/pointmaze/<maze>-v0)")
    p.add_argument("--env", default=None, help="gymnasium env id (None: PointMaze_<Maze>-v3)")
    p.add_argument("--checkpoint", default=None,
                   help="skill-model checkpoint (from train_skill_model.py) to load instead of training")
    p.add_argument(
        "--state-key",
        nargs="+",
        default=["observation"],
        help="observation entries forming the state (concatenated); e.g. 'achieved_goal observation' for AntMaze",
    )
    # training (ignored with --checkpoint)
    p.add_argument("--train-steps", type=positive_int, default=DEFAULTS["train_steps"],
                   help="EM steps of the skill model (train_skill_model.py --steps)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"], help="subtrajectories per batch")
    p.add_argument("--seq-len", type=positive_int, default=DEFAULTS["seq_len"],
                   help="skill length T in training (30 = --replan-every here; train_skill_model.py's default is 10)")
    p.add_argument("--z-dim", type=positive_int, default=DEFAULTS["z_dim"],
                   help="skill size (smaller than train_skill_model.py's 256: a replan costs ~4x less)")
    p.add_argument("--hidden-dim", type=positive_int, default=DEFAULTS["hidden_dim"],
                   help="network width (smaller than train_skill_model.py's 256, see --z-dim)")
    p.add_argument("--lr", type=positive_float, default=DEFAULTS["lr"], help="Adam learning rate")
    # planning and execution
    p.add_argument("--episodes", type=positive_int, default=50, help="evaluation episodes per method")
    p.add_argument("--num-envs", type=non_negative_int, default=0,
                   help="episodes run side by side (0: all of them at once; 1: one after the other)")
    p.add_argument("--replan-every", type=positive_int, default=30, help="env steps per executed skill")
    p.add_argument("--horizon", type=positive_int, default=3, help="skills planned ahead")
    p.add_argument("--candidates", type=positive_int, default=1000, help="CEM candidates per replan")
    p.add_argument("--elites", type=positive_int, default=200, help="CEM elites (refit the sampling distribution)")
    p.add_argument("--iterations", type=positive_int, default=10, help="CEM iterations per replan")
    p.add_argument(
        "--eps-penalty",
        type=float,
        default=None,
        help="lambda of lambda * mean(eps^2); None: the paper's 10 for AntMaze's 4 m cells, scaled with the "
        "squared cell size (0.625 for PointMaze's 1 m cells)",
    )
    p.add_argument("--eps-bound", type=positive_float, default=None, help="clip planned noise to [-b, b] (None: no clip)")
    p.add_argument("--xy-indices", type=int, nargs=2, default=[0, 1], help="x-y entries of the state")
    p.add_argument("--success-distance", type=positive_float, default=0.5,
                   help="an episode succeeds when the agent comes this close to the goal")
    p.add_argument("--max-episode-steps", type=positive_int, default=None, help="episode length (None: the env's own limit)")
    p.add_argument("--baselines", nargs="*", default=["prior", "random"], choices=["prior", "random"],
                   help="baselines run on the same episodes (none: only the planner)")
    p.add_argument("--plot-episodes", type=positive_int, default=6, help="episodes drawn per trajectory plot")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="training seed and episode seeds")
    # Two threads: the two cores the job is sized for (training 1.4x, a replan 1.5x faster than one
    # thread). On a machine whose cores are busy with other work, OpenMP threads waiting for a busy
    # core made training several times slower (measured: 416 s instead of 40 s): pass 1 there.
    p.add_argument("--num-threads", type=int, default=2,
                   help="torch CPU threads (0: torch's default; 2: the two cores the job is sized for; 1 on a "
                        "machine busy with other work)")
    p.add_argument("--out-dir", default="outputs/plan_to_goals",
                   help="results, plots and the trained model (skill_model/), reused by a re-run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = p.parse_args(argv)
    if args.dataset is None:
        args.dataset = f"torchrl_skills/pointmaze/{args.maze}-v0"
    if args.env is None:
        args.env = MAZE_ENVS[args.maze]
    if args.elites > args.candidates:
        p.error(f"--elites ({args.elites}) must be <= --candidates ({args.candidates})")
    return args


# ---------------------------------------------------------------------------------------------
# data and model


def ensure_dataset(dataset_id: str, progress: bool) -> float:
    """Generates the package's PointMaze dataset if absent; other datasets must be local."""
    from torchrl_skills.data import local_minari_root

    start = time.perf_counter()
    if (local_minari_root() / dataset_id / "data").is_dir():
        return 0.0
    match = re.fullmatch(r"torchrl_skills/pointmaze/(umaze|medium|large)(-full)?-v0", dataset_id)
    if match is None:
        raise FileNotFoundError(
            f"Dataset {dataset_id!r} is not in the local Minari store ({local_minari_root()}). Datasets cannot be "
            "downloaded here: copy it into the store (or set MINARI_DATASETS_PATH), or use a generated "
            "torchrl_skills/pointmaze/<maze>-v0 dataset."
        )
    from torchrl_skills.data.pointmaze import ensure_pointmaze_dataset

    print(f"generating {dataset_id} ...")
    ensure_pointmaze_dataset(match.group(1), full=bool(match.group(2)), progress=progress)
    return time.perf_counter() - start


def train_or_load(args: argparse.Namespace, out_dir: Path):
    """Returns ``(model, checkpoint path, training seconds)``; training is resumed, not redone."""
    from torchrl_skills.modules import load_skill_model

    from torchrl_skills.utils import load_checkpoint

    if args.checkpoint is not None:
        if not Path(args.checkpoint).is_file():
            raise CheckpointNotFoundError(
                f"--checkpoint {args.checkpoint}: no such file. Pass a checkpoint written by "
                "examples/train_skill_model.py, or leave --checkpoint out to train one here."
            )
        return load_skill_model(args.checkpoint, map_location=args.device), Path(args.checkpoint), 0.0
    from train_skill_model import main as train_main

    train_dir = out_dir / "skill_model"
    train_argv = [
        "--dataset", args.dataset, "--state-key", *args.state_key, "--steps", str(args.train_steps),
        "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--z-dim", str(args.z_dim),
        "--hidden-dim", str(args.hidden_dim), "--lr", str(args.lr), "--device", args.device,
        "--seed", str(args.seed), "--out-dir", str(train_dir), "--logger", "csv",
    ]  # fmt: skip
    if args.no_progress:
        train_argv.append("--no-progress")
    ckpt_path = train_dir / "checkpoint.pt"
    if ckpt_path.exists():
        saved = load_checkpoint(ckpt_path).get("args", {})  # a damaged file is named in the error
        same = all(
            saved.get(k) == v
            for k, v in {
                "dataset": args.dataset, "state_key": list(args.state_key), "batch_size": args.batch_size,
                "seq_len": args.seq_len, "z_dim": args.z_dim, "hidden_dim": args.hidden_dim, "seed": args.seed,
                "lr": args.lr,
            }.items()
        )  # fmt: skip
        if same and saved.get("steps", math.inf) <= args.train_steps:
            train_argv.append("--resume")  # finishes an interrupted run, or does nothing
        else:
            print(f"{ckpt_path} was trained with other settings: training again")
    start = time.perf_counter()
    try:
        ckpt_path = train_main(train_argv)
    except RunStopped as stop:  # continued by running this command again, not by train_skill_model's --resume
        raise RunStopped(stop.signum, f"training step {stop.where.split()[-1]}", stop.checkpoint,
                         "the same command resumes the training") from None  # fmt: skip
    return load_skill_model(ckpt_path, map_location=args.device), ckpt_path, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# evaluation


def make_env(env_id: str, max_episode_steps: int | None, device: str):
    import gymnasium as gym
    from torchrl.envs import GymEnv

    from torchrl_skills.utils import import_gymnasium_robotics

    gym.register_envs(import_gymnasium_robotics())
    kwargs = {"continuing_task": False}  # an episode ends when the goal is reached (<= 0.45)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return GymEnv(env_id, device=device, **kwargs)


def check_state_holds_xy(env, state_keys: list[str], xy_indices) -> None:
    """The cost compares ``state[xy_indices]`` with the goal: they must be the agent's x-y position."""
    td = env.reset()
    state = torch.cat([td[k].reshape(-1) for k in state_keys])
    xy = state[list(xy_indices)].double()
    if not torch.allclose(xy, td["achieved_goal"].double(), atol=1e-4):
        raise ValueError(
            f"State entries {list(xy_indices)} of {state_keys} ({xy.tolist()}) are not the agent's x-y position "
            f"(achieved_goal {td['achieved_goal'].tolist()}), so a cost on them cannot measure the distance to the "
            "goal. AntMaze's 'observation' has no x-y: train on and pass --state-key achieved_goal observation, "
            "or give the right --xy-indices."
        )


def make_batch_env(env_id: str, max_episode_steps: int | None, device: str, num_envs: int):
    """``num_envs`` episodes side by side (finished ones stay frozen until all are done)."""
    import gymnasium as gym

    from torchrl_skills.envs import BatchedGymEnv
    from torchrl_skills.utils import import_gymnasium_robotics

    gym.register_envs(import_gymnasium_robotics())
    kwargs = {"continuing_task": False}  # an episode ends when the goal is reached (<= 0.45)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return BatchedGymEnv(env_id, num_envs, device=device, **kwargs)


def run_episodes(
    env, policy, seeds, max_steps: int, success_distance: float, name: str, progress: bool, stop=None, checkpoint=None
):
    """Runs one episode per seed, ``env.batch_size`` of them side by side; returns per-episode
    metrics, the rollouts and the planning calls ``(seconds, episodes planned)``.

    ``env`` is a batched env (:func:`make_batch_env`, possibly with the policy's primer); episode
    ``k`` resets its slot from ``seeds[k]``, so it plays out the same in any slot or batch. A
    policy that plans plans every episode that replans at a step in one batched call.
    ``stop`` (a :class:`~torchrl_skills.utils.GracefulStop`) is read after each step: the
    evaluation then ends early and :class:`~torchrl_skills.utils.RunStopped` is raised, naming
    the model's ``checkpoint``.
    """
    from torchrl_skills.evaluation import rollout_side_by_side

    base = getattr(env, "base_env", env)
    n = base.batch_size[0]
    episodes, rollouts = [], []
    bar = tqdm(total=len(seeds), desc=f"{name:>8}", disable=not progress, leave=True)
    successes = 0
    # Only a planner plans; the prior baseline's skill draws are not planning time.
    plans = getattr(policy, "planner", None) is not None
    n_calls = len(getattr(policy, "planning_times", []))
    for first in range(0, len(seeds), n):
        chunk = [int(seed) for seed in seeds[first : first + n]]
        base.set_episode_seeds(chunk + chunk[:1] * (n - len(chunk)))  # a short last batch replays, unrecorded
        td = env.reset()
        starts = td["achieved_goal"].double().cpu().numpy()
        goals = td["desired_goal"].double().cpu().numpy()
        rollout, lengths = rollout_side_by_side(env, policy, max_steps, td, stop=stop)
        if stop:
            bar.close()
            raise stop.stopped(
                f"evaluation episodes {first + 1}-{first + len(chunk)} of {len(seeds)} ({name})", checkpoint,
                "no results were written; the same command reuses the model and evaluates again",
            )  # fmt: skip
        for slot, seed in enumerate(chunk):
            episode = rollout[slot, : int(lengths[slot])]
            xy = episode["next", "achieved_goal"].double().cpu().numpy()
            dist = np.linalg.norm(xy - goals[slot], axis=-1)
            reached = np.flatnonzero(dist <= success_distance)
            success = reached.size > 0
            successes += success
            replans = int(episode["skill_started"].sum()) if "skill_started" in episode.keys() else 0
            episodes.append(
                {
                    "seed": seed,
                    "start": starts[slot].tolist(),
                    "goal": goals[slot].tolist(),
                    "success": bool(success),
                    "steps": int(reached[0] + 1) if success else int(len(dist)),
                    "episode_steps": int(len(dist)),
                    "final_distance": float(dist[-1]),
                    "min_distance": float(dist.min()),
                    "replans": replans,  # skills started (planned, or drawn from the prior)
                }
            )
            rollouts.append(episode)
        # postfix and count move together: "success=a/b" always counts the b episodes shown as done
        bar.set_postfix(success=f"{successes}/{len(episodes)}", refresh=False)
        bar.update(len(chunk))
    bar.close()
    calls = []
    if plans:
        calls = list(zip(policy.planning_times[n_calls:], policy.planning_sizes[n_calls:]))
    return episodes, rollouts, calls


def summarize(episodes: list[dict], seconds: float, plan_calls=()) -> dict:
    """``plan_calls``: ``(seconds, episodes planned)`` of each batched planning call."""
    plan_ms = [1e3 * t / max(1, size) for t, size in plan_calls for _ in range(size)]  # per replan, amortised
    success_steps = [ep["steps"] for ep in episodes if ep["success"]]
    return {
        "episodes": len(episodes),
        "success_rate": float(np.mean([ep["success"] for ep in episodes])),
        "mean_final_distance": float(np.mean([ep["final_distance"] for ep in episodes])),
        "mean_min_distance": float(np.mean([ep["min_distance"] for ep in episodes])),
        "mean_steps": float(np.mean([ep["steps"] for ep in episodes])),
        "mean_steps_to_success": float(np.mean(success_steps)) if success_steps else None,
        "replans": sum(ep["replans"] for ep in episodes),
        "planning_ms_per_replan_mean": float(np.mean(plan_ms)) if plan_ms else None,
        "planning_ms_per_replan_median": float(np.median(plan_ms)) if plan_ms else None,
        "planning_calls": len(plan_calls),
        "planning_ms_per_call_mean": float(np.mean([1e3 * t for t, _ in plan_calls])) if plan_calls else None,
        "wall_time_s": seconds,
    }


# ---------------------------------------------------------------------------------------------
# plots


def draw_maze(ax, maze) -> None:
    """Walls of a gymnasium-robotics maze in world coordinates (cell (i, j), row 0 at the top)."""
    from matplotlib.patches import Rectangle

    scale = maze.maze_size_scaling
    for i, row in enumerate(maze.maze_map):
        for j, cell in enumerate(row):
            if cell == 1:
                x = j * scale - maze.x_map_center
                y = maze.y_map_center - (i + 1) * scale
                ax.add_patch(Rectangle((x, y), scale, scale, color="0.25", zorder=0))
    ax.set_xlim(-maze.x_map_center, maze.x_map_center)
    ax.set_ylim(-maze.y_map_center, maze.y_map_center)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_trajectories(
    path: Path,
    maze,
    rollouts,
    episodes,
    title: str,
    xy_indices,
    n: int,
    show_plan: bool,
    indices=None,
    radius: float = 0.5,
) -> None:
    """A grid of episodes: maze, executed path, goal (success radius) and, for skill executors,
    the replanning states and the world model's predicted skill end points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(rollouts))
    if n == 0:
        return
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        rollout, ep = rollouts[k], episodes[k]
        draw_maze(ax, maze)
        xy = torch.cat([rollout["achieved_goal"][:1], rollout["next", "achieved_goal"]]).cpu().numpy()
        ax.plot(xy[:, 0], xy[:, 1], "-", color="tab:blue", lw=1.5, label="executed")
        ax.plot(*xy[0], "o", color="tab:blue", ms=7, label="start")
        goal = ep["goal"]
        ax.add_patch(plt.Circle(goal, radius, color="tab:green", alpha=0.25))
        ax.plot(*goal, "*", color="tab:green", ms=14, label="goal")
        if show_plan and "skill_started" in rollout.keys():
            replan = rollout["skill_started"].reshape(-1).cpu().numpy()
            at = rollout["achieved_goal"].cpu().numpy()[replan]
            pred = rollout["next", "skill_end"].cpu().numpy()[replan][:, list(xy_indices)]
            for a, b in zip(at, pred):
                ax.plot([a[0], b[0]], [a[1], b[1]], ":", color="tab:orange", lw=1)
            ax.plot(pred[:, 0], pred[:, 1], "x", color="tab:orange", ms=7, mew=2, label="predicted skill end")
            ax.plot(at[:, 0], at[:, 1], ".", color="k", ms=5, label="replanning state")
        outcome = "success" if ep["success"] else "failure"
        ax.set_title(f"ep {k if indices is None else indices[k]}: {outcome} ({ep['steps']} steps)", fontsize=9)
        if k == 0:
            ax.legend(loc="lower left", fontsize=6, framealpha=0.8)
    fig.suptitle(textwrap.fill(title, 45 * cols), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_summary(path: Path, results: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    rates = [results[n]["summary"]["success_rate"] for n in names]
    ax1.bar(names, rates, color=["tab:blue", "tab:orange", "tab:gray"][: len(names)])
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("success rate")
    for i, r in enumerate(rates):
        ax1.text(i, r + 0.02, f"{r:.2f}", ha="center")
    dists = [[ep["final_distance"] for ep in results[n]["episodes"]] for n in names]
    ax2.boxplot(dists)
    ax2.set_xticks(range(1, len(names) + 1), names)
    ax2.set_ylabel("final distance to goal")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """The whole pipeline; returns the report written to ``results.json``.

    Raises :class:`~torchrl_skills.utils.RunStopped` when SIGINT / SIGTERM stops it.
    """
    args = parse_args(argv)
    with OutputDir(args.out_dir, owned=OUTPUTS) as out:  # a failed start leaves no empty folder
        return run(args, out)


def run(args: argparse.Namespace, out: OutputDir) -> dict:
    t_start = time.perf_counter()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    from torchrl.envs import TransformedEnv
    from torchrl.envs.utils import RandomPolicy

    from torchrl_skills.modules.skill_planner import SkillMPCPolicy, make_skill_planner
    from torchrl_skills.utils import resolve_device, seed_everything

    resolve_device(args.device)  # fails early, with the fix, when CUDA is asked for but absent
    out_dir = out.path
    progress = not args.no_progress
    seed_everything(args.seed)

    dataset_s = ensure_dataset(args.dataset, progress) if args.checkpoint is None else 0.0
    model, ckpt_path, train_s = train_or_load(args, out_dir)
    model.eval()

    base_env = make_env(args.env, args.max_episode_steps, args.device)
    import gymnasium as gym

    max_steps = args.max_episode_steps or gym.spec(args.env).max_episode_steps
    if max_steps is None:
        raise ValueError(f"{args.env} has no episode time limit: pass --max-episode-steps.")
    maze = base_env.unwrapped.maze  # GymEnv forwards attributes to the gymnasium env

    check_state_holds_xy(base_env, args.state_key, args.xy_indices)
    if args.eps_penalty is None:
        # The penalty trades off against squared distances, so it scales with the squared maze
        # unit: lambda = 10 (the paper's value, AntMaze, 4 m cells) is 16x too strong on
        # PointMaze's 1 m cells, where the planner then prefers the prior's mean skill to the
        # last half metre to the goal (measured: 68% success at 10 vs 84% at 0.3-1 on medium).
        args.eps_penalty = 10.0 * (maze.maze_size_scaling / 4.0) ** 2
    planner = make_skill_planner(
        model,
        planning_horizon=args.horizon,
        num_candidates=args.candidates,
        top_k=args.elites,
        optim_steps=args.iterations,
        xy_indices=args.xy_indices,
        eps_penalty=args.eps_penalty,
        eps_bound=args.eps_bound,
    )
    common = {
        "replan_every": args.replan_every,
        "observation_key": args.state_key if len(args.state_key) > 1 else args.state_key[0],
        "action_spec": base_env.action_spec,
    }
    policies = {"planner": SkillMPCPolicy(model, planner, **common)}
    if "prior" in args.baselines:
        policies["prior"] = SkillMPCPolicy(model, None, **common)
    # All episodes of a method side by side (or --num-envs at a time): one policy call, and one
    # batched CEM call for the episodes that replan, per step.
    num_envs = min(args.num_envs or args.episodes, args.episodes)
    batch_env = make_batch_env(args.env, args.max_episode_steps, args.device, num_envs)
    if "random" in args.baselines:
        policies["random"] = RandomPolicy(batch_env.action_spec)

    # The same start/goal pairs for every method: each episode resets the env from its own seed.
    seeds = [args.seed * 100_003 + i for i in range(args.episodes)]
    results, all_rollouts = {}, {}
    with stop_on_signals() as stop:  # Ctrl-C / SIGTERM: stop after the current step
        for name, policy in policies.items():
            env = batch_env
            if isinstance(policy, SkillMPCPolicy):
                env = TransformedEnv(batch_env, policy.make_tensordict_primer())
            torch.manual_seed(args.seed)  # the prior baseline's skill draws are repeatable too
            t0 = time.perf_counter()
            episodes, rollouts, plan_calls = run_episodes(
                env, policy, seeds, max_steps, args.success_distance, name, progress, stop, ckpt_path
            )
            summary = summarize(episodes, time.perf_counter() - t0, plan_calls)
            results[name] = {"summary": summary, "episodes": episodes}
            all_rollouts[name] = rollouts
    goals = {name: [ep["goal"] for ep in r["episodes"]] for name, r in results.items()}
    if any(g != goals["planner"] for g in goals.values()):
        raise RuntimeError("The methods did not see the same goals; the env seeding is not repeatable.")

    label = f"{args.env}, {args.episodes} episodes"
    out.clear()  # the previous run's results and plots: what follows replaces them
    plot_trajectories(
        out_dir / "planner_trajectories.png", maze, all_rollouts["planner"], results["planner"]["episodes"],
        f"CEM over skills ({label}); x: world-model skill end points", args.xy_indices, args.plot_episodes, True,
        radius=args.success_distance,
    )  # fmt: skip
    failed = [k for k, ep in enumerate(results["planner"]["episodes"]) if not ep["success"]][: args.plot_episodes]
    if failed:
        plot_trajectories(
            out_dir / "planner_failures.png", maze, [all_rollouts["planner"][k] for k in failed],
            [results["planner"]["episodes"][k] for k in failed], f"CEM over skills, failed episodes ({label})",
            args.xy_indices, args.plot_episodes, True, indices=failed, radius=args.success_distance,
        )  # fmt: skip
    for name in policies:
        if name != "planner":
            plot_trajectories(
                out_dir / f"{name}_trajectories.png", maze, all_rollouts[name], results[name]["episodes"],
                f"baseline '{name}' ({label})", args.xy_indices, args.plot_episodes, name == "prior",
                radius=args.success_distance,
            )  # fmt: skip
    plot_summary(out_dir / "summary.png", results, label)

    report = {
        "env": args.env,
        "dataset": args.dataset,
        "checkpoint": str(ckpt_path),
        "model": dict(model.hparams),
        "config": vars(args),
        "timing_s": {"dataset": dataset_s, "training": train_s, "total": time.perf_counter() - t_start},
        "methods": results,
    }
    with open(out_dir / "results.json", "w") as f:
        json.dump(report, f, indent=1)
    print(f"\n{label}; total {report['timing_s']['total']:.0f}s (dataset {dataset_s:.0f}s, training {train_s:.0f}s)")
    for name, r in results.items():
        s = r["summary"]
        planned = s["planning_ms_per_replan_mean"] is not None  # the planner; baselines do not plan
        plan = f", planning {s['planning_ms_per_replan_mean']:.0f} ms/replan" if planned else ""
        print(
            f"  {name:>8}: success {s['success_rate']:.2f}, final distance {s['mean_final_distance']:.2f}, "
            f"steps {s['mean_steps']:.0f}{plan}"
        )
    print(f"results and plots in {out_dir}")
    return report


if __name__ == "__main__":
    run_cli(main)  # a stopped run continues when the same command runs again
