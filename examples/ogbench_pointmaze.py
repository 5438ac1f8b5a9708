"""Zero-shot goal reaching on OGBench PointMaze by planning over skills, with OGBench's protocol.

One file, top to bottom:

1. regenerate OGBench's ``pointmaze-{medium,large,giant}-navigate-v0`` dataset with its documented
   procedure (noisy BFS-subgoal expert) into the local Minari store, if it is not there yet;
2. train a skill model (posterior, low-level policy, temporally abstract world model, prior) on it
   with EM, one model per training seed (``examples/train_skill_model.py``; a re-run resumes);
3. build the planning cost: the squared x-y distance of the paper (``--cost euclidean``), or the
   squared shortest-path distance through a graph of the dataset's own states (``--cost graph``,
   no maze map, no training: it only knows where the data went);
4. plan with TorchRL's ``CEMPlanner`` over a ``SkillModelEnv`` and execute each planned skill with
   the low-level policy for ``--replan-every`` steps, all episodes side by side in one batched env
   with one batched planner call per step;
5. evaluate on OGBench's 5 tasks per maze (``--episodes-per-task`` each, OGBench uses 50), success
   read from the env, 95% confidence intervals over episodes and training seeds, a results JSON
   and a PNG of executed paths, planned skill end points and task goals.

Settings are chosen on validation goals of our own (``--validate``: random start and goal cells,
never the 5 evaluation tasks), not on the evaluation tasks.

    python examples/ogbench_pointmaze.py                                   # CPU default, < 10 min
    python examples/ogbench_pointmaze.py --maze large --cost euclidean     # the paper's cost
    python examples/ogbench_pointmaze.py --maze large --full --seeds 0 1 2 --train-steps 8000 \\
        --episodes-per-task 50 --candidates 1000 --elites 200 --device cuda --num-workers 5   # README table
    python examples/ogbench_pointmaze.py --validate                        # validation goals only

A re-run with the same --out-dir resumes (or reuses) each seed's skill model. Ctrl-C or SIGTERM
during training finishes the current step and writes its checkpoint; during dataset generation
or evaluation it stops at once (a dataset is written only when complete). The same command then
continues; exit status 130 / 143.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from torchrl_skills.utils import (
    ArgumentParser,
    OutputDir,
    RunStopped,
    file_tag,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
)

EXAMPLES_DIR = Path(__file__).resolve().parent
if str(EXAMPLES_DIR) not in sys.path:  # so that the training script imports as a module
    sys.path.insert(0, str(EXAMPLES_DIR))


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--maze", choices=["medium", "large", "giant", "teleport"], default="medium",
                   help="OGBench PointMaze layout (default: %(default)s)")
    p.add_argument("--full", action="store_true",
                   help="the published dataset size (1000 episodes x 1001 steps; giant 500 x 2001) instead of the small one")
    p.add_argument("--num-episodes", type=positive_int, default=None, help="dataset episodes (None: the small or the --full size)")
    p.add_argument("--num-workers", type=positive_int, default=1,
                   help="processes generating the dataset; the data does not depend on it (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: %(default)s)")
    # skill model
    p.add_argument("--train-steps", type=positive_int, default=3000, help="EM steps per seed (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="subtrajectories per batch (default: %(default)s)")
    p.add_argument("--seq-len", type=positive_int, default=30, help="skill length T (default: %(default)s)")
    p.add_argument("--z-dim", type=positive_int, default=64, help="skill size (default: %(default)s; paper 256)")
    p.add_argument("--hidden-dim", type=positive_int, default=128, help="network width (default: %(default)s; paper 256)")
    p.add_argument("--lr", type=positive_float, default=3e-4, help="Adam learning rate (default: %(default)s)")
    # planning
    p.add_argument("--cost", choices=["graph", "euclidean"], default="graph",
                   help="planning cost: shortest paths through the dataset's states, or the paper's straight line "
                        "(default: %(default)s)")
    p.add_argument("--graph-nodes", type=positive_int, default=1000, help="nodes of the dataset graph (default: %(default)s)")
    p.add_argument("--graph-edge-steps", type=positive_int, default=10,
                   help="join two nodes when the data went from one to the other within this many steps "
                        "(default: %(default)s)")
    p.add_argument("--graph-entry-nodes", type=positive_int, default=1,
                   help="a position enters the dataset graph at the best of its N nearest nodes (1: the nearest; "
                        "GraphDistanceCost(entry_nodes=))")
    p.add_argument("--horizon", type=positive_int, default=3, help="skills planned ahead (default: %(default)s)")
    p.add_argument("--candidates", type=positive_int, default=500,
                   help="CEM candidates per episode (default: %(default)s; paper and full runs 1000)")
    p.add_argument("--elites", type=positive_int, default=100, help="CEM elites (default: %(default)s; paper and full runs 200)")
    p.add_argument("--iterations", type=positive_int, default=10, help="CEM iterations (default: %(default)s)")
    p.add_argument("--replan-every", type=positive_int, default=None, help="env steps per executed skill (None: --seq-len)")
    p.add_argument("--eps-penalty", type=float, default=0.1,
                   help="lambda of lambda * mean(eps^2); chosen among 10 (the paper's, for 4 m cells), 1 and 0.1 on "
                        "validation goals (README) (default: %(default)s)")
    p.add_argument("--off-data-penalty", type=float, default=0.0,
                   help="weight of the penalty on imagined skills that leave the data (through walls; graph cost "
                        "only); 10000 on the ant mazes, not yet chosen for the point mazes (default: %(default)s)")
    p.add_argument("--off-data-radius", type=float, default=None,
                   help="free distance around each graph node before the off-data penalty starts (None: the 99th "
                        "percentile of the data's own distances to their nearest node)")
    p.add_argument("--stall-distance", type=float, default=0.0,
                   help="stall recovery: an episode whose last skill moved less than this runs its next skill from the "
                        "prior (0: off); 0.3 on the ant mazes, not chosen for the point mazes (default: %(default)s)")
    # evaluation
    p.add_argument("--episodes-per-task", type=positive_int, default=10, help="episodes per task (default: %(default)s; OGBench 50)")
    p.add_argument("--validate", action="store_true",
                   help="evaluate on random validation start/goal cells of our own instead of the 5 tasks")
    p.add_argument("--validation-tasks", type=positive_int, default=20, help="validation start/goal pairs (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: %(default)s)")
    p.add_argument("--num-threads", type=non_negative_int, default=1, help="torch CPU threads, 0: torch's default (default: %(default)s)")
    p.add_argument("--out-dir", default=None, help="output folder (None: outputs/ogbench_pointmaze/<maze>[-full])")
    p.add_argument("--tag", type=file_tag, default=None,
                   help="suffix of the output files (validation-TAG.json, results-TAG.png): settings evaluated from one "
                        "trained model keep their outputs apart in one --out-dir")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = p.parse_args(argv)
    if args.elites > args.candidates:
        p.error(f"--elites ({args.elites}) must be <= --candidates ({args.candidates})")
    if args.stall_distance < 0:
        p.error(f"--stall-distance must be >= 0 (0: off), got {args.stall_distance}")
    if args.off_data_radius is not None and args.off_data_radius < 0:
        p.error(f"--off-data-radius must be >= 0, got {args.off_data_radius}")
    if args.off_data_penalty < 0 or (args.off_data_penalty and args.cost != "graph"):
        p.error(f"--off-data-penalty must be >= 0 and needs --cost graph, got {args.off_data_penalty} with --cost {args.cost}")
    if args.replan_every is None:
        args.replan_every = args.seq_len
    if args.out_dir is None:
        args.out_dir = f"outputs/ogbench_pointmaze/{args.maze}{'-full' if args.full else ''}"
    return args


def main(argv=None) -> dict:
    """The whole experiment; returns ``{"result": OGBenchResult, "timing": dict}``.

    Raises :class:`~torchrl_skills.utils.RunStopped` when SIGINT / SIGTERM stops a training run.
    """
    args = parse_args(argv)
    with OutputDir(args.out_dir) as out:  # a failed start leaves no empty folder
        return run(args, out)


def run(args, out: OutputDir) -> dict:
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    from train_skill_model import main as train_skill_model

    from torchrl_skills.data.ogbench import ensure_ogbench_dataset
    from torchrl_skills.envs import GraphDistanceCost
    from torchrl_skills.evaluation.ogbench import OGBenchResult, evaluate_ogbench, make_ogbench_policy, validation_tasks
    from torchrl_skills.modules import load_skill_model
    from torchrl_skills.utils import resolve_device, seed_everything

    device = resolve_device(args.device)
    out_dir = out.path
    env_name = f"pointmaze-{args.maze}-navigate-v0"
    timing = {}

    # ---- 1. data: OGBench's procedure, regenerated into the local Minari store
    t0 = time.perf_counter()
    dataset_id = ensure_ogbench_dataset(
        env_name, full=args.full, num_episodes=args.num_episodes, num_workers=args.num_workers,
        progress=not args.no_progress,
    )
    timing["dataset_s"] = time.perf_counter() - t0
    print(f"dataset {dataset_id} ({timing['dataset_s']:.0f} s)")

    # ---- 3 (built once, shared by every seed). the cost only needs the dataset's x-y positions
    t0 = time.perf_counter()
    cost = None
    if args.cost == "graph":
        cost = GraphDistanceCost.from_dataset(
            dataset_id, num_nodes=args.graph_nodes, max_edge_steps=args.graph_edge_steps, entry_nodes=args.graph_entry_nodes
        ).to(device)
        print(f"planning cost: {cost}")
    timing["cost_s"] = time.perf_counter() - t0

    results, timing["train_s"], timing["eval_s"] = [], [], []
    for seed in args.seeds:
        # ---- 2. the skill model, trained with EM (resumed, not redone, when the checkpoint exists)
        seed_everything(seed)
        t0 = time.perf_counter()
        run_dir = out_dir / f"skill_model_seed{seed}"
        train_argv = [
            "--dataset", dataset_id, "--state-key", "observation", "--steps", str(args.train_steps),
            "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--z-dim", str(args.z_dim),
            "--hidden-dim", str(args.hidden_dim), "--lr", str(args.lr), "--device", str(device),
            "--seed", str(seed), "--out-dir", str(run_dir), "--num-threads", str(args.num_threads),
        ]  # fmt: skip
        if (run_dir / "checkpoint.pt").exists():
            train_argv.append("--resume")
        if args.no_progress:
            train_argv.append("--no-progress")
        try:
            ckpt_path = train_skill_model(train_argv)
        except RunStopped as stop:  # continued by this command, not by train_skill_model's --resume
            raise RunStopped(stop.signum, f"training step {stop.where.split()[-1]} of seed {seed}", stop.checkpoint,
                             "the same command resumes the training") from None  # fmt: skip
        model = load_skill_model(ckpt_path, map_location=device).eval()
        timing["train_s"].append(time.perf_counter() - t0)

        # ---- 4. CEM over skills on the world model, executed by the low-level policy
        policy = make_ogbench_policy(
            "planner", env_name, model, cost, horizon=args.horizon, candidates=args.candidates,
            elites=args.elites, iterations=args.iterations, replan_every=args.replan_every,
            eps_penalty=args.eps_penalty, off_data_penalty=args.off_data_penalty,
            off_data_radius=args.off_data_radius, stall_distance=args.stall_distance,
        )  # fmt: skip

        # ---- 5. OGBench's protocol (or validation goals of our own), all episodes side by side
        t0 = time.perf_counter()
        tasks = validation_tasks(env_name, args.validation_tasks, seed=1000 + seed) if args.validate else None
        result = evaluate_ogbench(
            policy,
            env_name,
            episodes_per_task=args.episodes_per_task,
            tasks=tasks,
            seed=seed,
            training_seed=seed,
            device=device,
            progress=not args.no_progress,
        )
        timing["eval_s"].append(time.perf_counter() - t0)
        print(f"seed {seed}: success {result.success_rate:.3f} ({time.perf_counter() - t0:.0f} s)")
        results.append(result)

    merged = OGBenchResult.merge(results)
    name = ("validation" if args.validate else "results") + (f"-{args.tag}" if args.tag else "")
    # the world model's promise against what the low level delivered, skill by skill
    tracked, line = merged.skill_tracking_summary(args.replan_every)
    print(line)
    merged.save_json(out_dir / f"{name}.json", extra={"config": vars(args), "dataset": dataset_id, "timing": timing,
                                                      "skill_tracking": tracked})  # fmt: skip
    merged.plot(out_dir / f"{name}.png", title=f"{env_name}: CEM over skills, {args.cost} cost")
    print(merged.table())
    print(f"wrote {out_dir / (name + '.json')} and {out_dir / (name + '.png')}")
    return {"result": merged, "timing": timing}


if __name__ == "__main__":
    run_cli(main, interrupted="the dataset (if complete) and trained models are kept; the same command continues")
