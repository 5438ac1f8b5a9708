"""OGBench's evaluation protocol for any TorchRL policy, all episodes side by side.

OGBench (Park et al., 2024) evaluates goal reaching on 5 fixed tasks per maze
(``env.reset(options=dict(task_id=i))``), 50 episodes each, with the env's own time limit and
``terminate_at_goal=True``; an episode succeeds when the env's ``info["success"]`` is set at its
last step; the score is the mean over tasks, and the published tables average 8 training seeds.

:func:`evaluate_ogbench` runs that protocol on an :class:`~torchrl_skills.envs.OGBenchMazeEnv`
holding every episode at once (or ``num_envs`` at a time): one policy call per step for all of
them, e.g. one batched planner call for all episodes that replan at that step. Each episode has
its own seed, so its outcome does not depend on the batch it ran in. :class:`OGBenchResult` holds
per-episode records and paths, merges training seeds, and gives per-task success, 95% confidence
intervals, a JSON report and a PNG of the maze.

Command line (a skill-model checkpoint from ``examples/train_skill_model.py``)::

    python -m torchrl_skills.evaluation.ogbench --checkpoint runs/skill_model/checkpoint.pt \\
        --dataset pointmaze-medium-navigate-v0 --episodes-per-task 50
    python -m torchrl_skills.evaluation.ogbench --policy oracle --dataset pointmaze-giant-navigate-v0
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs.utils import step_mdp

from torchrl_skills.utils.outputs import save_figure, write_text_atomic

__all__ = ["OGBenchOraclePolicy", "OGBenchResult", "evaluate_ogbench", "make_ogbench_policy", "validation_tasks"]


# ------------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a success rate over ``n`` independent episodes."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


# two-sided 97.5% Student-t quantiles for 1..30 degrees of freedom (beyond: the normal 1.96)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]  # fmt: skip


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% Student-t interval of the mean of ``values`` (e.g. one success rate per training seed)."""
    n = len(values)
    if n < 2:
        return (float("nan"), float("nan"))
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return (mean - t * sd / math.sqrt(n), mean + t * sd / math.sqrt(n))


@dataclasses.dataclass
class OGBenchResult:
    """Per-episode outcomes of an OGBench evaluation, for one or several training seeds.

    Attributes:
        env_name (str): the OGBench dataset / env name.
        episodes (list of dict): one record per episode: ``task`` (id, or ``"val<k>"`` for a
            validation task), ``episode_seed``, ``training_seed``, ``success``, ``steps``,
            ``final_distance``.
        paths (list of np.ndarray): the executed x-y path of each episode ``[steps + 1, 2]``.
        plans (list of np.ndarray): per episode, ``[replans, 4]`` rows ``(x, y, planned_x, planned_y)``:
            where the policy (re)planned and where the world model expected the skill to end.
        wall_time_s (float): seconds spent evaluating.
        plan_steps (list of np.ndarray): per episode, the env step of each row of ``plans``
            (``[replans]`` int); empty for results made before it was recorded, whose plan ``i``
            was made at step ``i * replan_every``.
    """

    env_name: str
    episodes: list = dataclasses.field(default_factory=list)
    paths: list = dataclasses.field(default_factory=list)
    plans: list = dataclasses.field(default_factory=list)
    wall_time_s: float = 0.0
    plan_steps: list = dataclasses.field(default_factory=list)

    @classmethod
    def merge(cls, results: Sequence[OGBenchResult]) -> OGBenchResult:
        """Pools results of several training seeds (same env)."""
        if not results:
            raise ValueError("merge needs at least one result.")
        if len({r.env_name for r in results}) != 1:
            raise ValueError(f"Cannot merge results of different envs: {sorted({r.env_name for r in results})}.")
        merged = cls(results[0].env_name, wall_time_s=sum(r.wall_time_s for r in results))
        for r in results:
            merged.episodes += r.episodes
            merged.paths += r.paths
            merged.plans += r.plans
            merged.plan_steps += r.plan_steps
        return merged

    @property
    def tasks(self) -> list:
        return list(dict.fromkeys(ep["task"] for ep in self.episodes))

    def task_success(self) -> dict:
        """Success rate per task (pooled over episodes and training seeds)."""
        return {t: float(np.mean([ep["success"] for ep in self.episodes if ep["task"] == t])) for t in self.tasks}

    @property
    def success_rate(self) -> float:
        """OGBench's score: the mean over tasks of the per-task success."""
        return float(np.mean(list(self.task_success().values()))) if self.episodes else float("nan")

    def seed_success(self) -> dict:
        """The score of each training seed."""
        seeds = sorted({ep["training_seed"] for ep in self.episodes})
        out = {}
        for s in seeds:
            eps = [ep for ep in self.episodes if ep["training_seed"] == s]
            tasks = list(dict.fromkeys(ep["task"] for ep in eps))
            out[s] = float(np.mean([np.mean([e["success"] for e in eps if e["task"] == t]) for t in tasks]))
        return out

    def confidence_interval(self) -> dict:
        """95% intervals: Wilson over pooled episodes, and Student-t over training seeds (>= 2)."""
        n = len(self.episodes)
        return {
            "episodes_wilson": wilson_interval(sum(ep["success"] for ep in self.episodes), n),
            "seeds_t": t_interval(list(self.seed_success().values())),
        }

    def summary(self) -> dict:
        return {
            "env": self.env_name,
            "success_rate": self.success_rate,
            "task_success": {str(k): v for k, v in self.task_success().items()},
            "seed_success": {str(k): v for k, v in self.seed_success().items()},
            "ci95": self.confidence_interval(),
            "episodes": len(self.episodes),
            "mean_steps_success": float(np.mean([ep["steps"] for ep in self.episodes if ep["success"]]))
            if any(ep["success"] for ep in self.episodes)
            else None,
            "wall_time_s": self.wall_time_s,
        }

    def table(self) -> str:
        """A plain-text table: per-task success, the score and its intervals."""
        s = self.summary()
        lines = [f"{self.env_name}: {s['episodes']} episodes, {len(s['seed_success'])} training seed(s)"]
        for task, rate in s["task_success"].items():
            n = sum(1 for ep in self.episodes if str(ep["task"]) == task)
            lines.append(f"  task {task:>5}: {rate:.3f} ({n} episodes)")
        lo, hi = s["ci95"]["episodes_wilson"]
        line = f"  overall   : {s['success_rate']:.3f}  95% CI over episodes [{lo:.3f}, {hi:.3f}]"
        tlo, thi = s["ci95"]["seeds_t"]
        if not math.isnan(tlo):
            line += f", over seeds [{tlo:.3f}, {thi:.3f}]"
        lines.append(line)
        return "\n".join(lines)

    def skill_tracking(self, replan_every: int) -> dict:
        """How far the executed skills went against how far the world model said they would.

        For every (re)planning point of every episode, with ``p`` the x-y where it planned, ``e``
        the world model's mean skill end point and ``r`` the x-y reached ``replan_every`` steps
        later (the next regular planning point): the planned progress ``||e - p||``, the realised
        progress ``||r - p||`` and the end-point error ``||e - r||``. Skills cut short by the
        episode's end are left out. The step of each plan is read from ``plan_steps``; results
        without them had plan ``i`` at step ``i * replan_every``.

        With ``replan_every`` equal to the skill length ``T`` each skill runs to its end, so the
        three numbers compare like with like; with a shorter ``replan_every`` (the paper replans
        every 30 steps of a 40-step skill) the realised progress covers only part of the skill.

        Returns:
            dict of ``planned``, ``realised``, ``end_error`` (``np.ndarray`` of metres, one per
            skill) and their ``median_*``, plus ``skills`` (how many).

        Examples:
            >>> r = OGBenchResult("pointmaze-medium-navigate-v0")
            >>> r.paths = [np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])]
            >>> r.plans = [np.array([[0.0, 0.0, 3.0, 0.0], [2.0, 0.0, 4.0, 0.0], [2.0, 0.0, 2.0, 2.0]])]
            >>> out = r.skill_tracking(replan_every=2)   # the third skill is cut short: left out
            >>> out["planned"].tolist(), out["realised"].tolist(), out["end_error"].tolist()
            ([3.0, 2.0], [2.0, 0.0], [1.0, 2.0])
        """
        if isinstance(replan_every, bool) or not isinstance(replan_every, int) or replan_every < 1:
            raise ValueError(f"replan_every must be a positive integer, got {replan_every!r}.")
        planned, realised, error = [], [], []
        steps = self.plan_steps if len(self.plan_steps) == len(self.plans) else [None] * len(self.plans)
        for path, plan, at in zip(self.paths, self.plans, steps):
            if not len(plan):
                continue
            ends = (np.arange(len(plan)) * replan_every if at is None else np.asarray(at)) + replan_every
            full = ends < len(path)  # the skill ran replan_every steps before the episode ended
            here, predicted, reached = plan[full, :2], plan[full, 2:4], path[ends[full]]
            planned.append(np.linalg.norm(predicted - here, axis=-1))
            realised.append(np.linalg.norm(reached - here, axis=-1))
            error.append(np.linalg.norm(predicted - reached, axis=-1))
        out = {name: np.concatenate(v) if v else np.zeros(0) for name, v in
               (("planned", planned), ("realised", realised), ("end_error", error))}  # fmt: skip
        for name in ("planned", "realised", "end_error"):
            out[f"median_{name}"] = float(np.median(out[name])) if len(out[name]) else float("nan")
        out["skills"] = len(out["planned"])
        return out

    def skill_tracking_summary(self, replan_every: int) -> tuple[dict, str]:
        """The scalar part of :meth:`skill_tracking` (for a JSON report) and a one-line description of it."""
        tracked = {k: v for k, v in self.skill_tracking(replan_every).items() if not isinstance(v, np.ndarray)}
        line = (
            f"skills: planned progress {tracked['median_planned']:.2f} m, realised {tracked['median_realised']:.2f} m "
            f"in {replan_every} steps, end-point error {tracked['median_end_error']:.2f} m (medians of {tracked['skills']})"
        )
        return tracked, line

    @classmethod
    def load_json(cls, path: str | Path) -> OGBenchResult:
        """The per-episode records of a :meth:`save_json` report (paths and plans are not saved)."""
        report = json.loads(Path(path).read_text())
        return cls(report["env"], episodes=report["per_episode"], wall_time_s=report.get("wall_time_s", 0.0))

    def save_json(self, path: str | Path, extra: dict | None = None) -> Path:
        report = {**self.summary(), "per_episode": self.episodes, **(extra or {})}
        return write_text_atomic(path, json.dumps(report, indent=1, default=str))

    def plot(self, path: str | Path, title: str | None = None, paths_per_task: int = 3) -> Path:
        """The maze with each task's start and goal, a few executed paths per task (green:
        success, red: failure) and the planned skill end points (x) joined to where they were planned."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        from torchrl_skills.data.maze_grid import MazeGrid
        from torchrl_skills.envs.ogbench_maze import make_ogbench_env

        env = make_ogbench_env(self.env_name)
        grid = MazeGrid.from_ogbench(env)
        radius = env.unwrapped._goal_tol
        env.close()
        tasks = self.tasks
        cols = min(len(tasks), 5)
        rows = math.ceil(len(tasks) / cols)
        xmin, xmax, ymin, ymax = grid.extent()
        aspect = (ymax - ymin) / (xmax - xmin)
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * aspect * rows + 0.6), squeeze=False)
        for ax, task in zip(axes.flat, tasks):
            for x0, y0, w, h in grid.wall_rectangles():
                ax.add_patch(Rectangle((x0, y0), w, h, color="0.3", zorder=0))
            idx = [i for i, ep in enumerate(self.episodes) if ep["task"] == task]
            rate = np.mean([self.episodes[i]["success"] for i in idx])
            shown = _paths_to_show([bool(self.episodes[i]["success"]) for i in idx], paths_per_task)
            shown = [idx[j] for j in shown]
            for i in shown:
                ok = self.episodes[i]["success"]
                xy = self.paths[i]
                ax.plot(xy[:, 0], xy[:, 1], "-", lw=1.2, color="tab:green" if ok else "tab:red", alpha=0.8)
                ax.plot(*xy[0], "o", color="tab:blue", ms=5)
                plan = self.plans[i] if i < len(self.plans) else None
                if plan is not None and len(plan):
                    for x, y, px, py in plan:
                        ax.plot([x, px], [y, py], ":", color="tab:orange", lw=0.8)
                    ax.plot(plan[:, 2], plan[:, 3], "x", color="tab:orange", ms=4, mew=1.2)
                goal = self.episodes[i]["goal"]
                ax.add_patch(plt.Circle(goal, radius, color="gold", alpha=0.5, zorder=1))
                ax.plot(*goal, "*", color="darkorange", ms=11, zorder=2)
            ax.set_xlim(xmin, xmax)
            ax.set_ylim(ymin, ymax)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"task {task}: {rate:.2f} ({len(idx)} ep.)", fontsize=9)
        for ax in axes.flat[len(tasks) :]:
            ax.axis("off")
        fig.suptitle(
            (title or self.env_name) + f" — success {self.success_rate:.2f}; green/red: success/failure paths, "
            "x: planned skill end points, star: goal",
            fontsize=9,
        )
        fig.tight_layout()
        return save_figure(fig, path)


def _paths_to_show(success: Sequence[bool], num: int) -> list[int]:
    """Which of a task's episodes to draw: successes and failures in proportion to the task's
    success rate, at least one of each kind that occurred (so a 0.86 task does not look like
    failures only, nor a 0.06 task like successes only).

    Examples:
        >>> _paths_to_show([True] * 43 + [False] * 7, 3), _paths_to_show([False, True, False, False], 3)
        ([0, 1, 43], [1, 0, 2])
    """
    wins = [i for i, ok in enumerate(success) if ok]
    losses = [i for i, ok in enumerate(success) if not ok]
    num = min(num, len(success))
    if not wins or not losses:
        return (wins or losses)[:num]
    num_wins = min(max(round(num * len(wins) / len(success)), 1), max(num - 1, 1))
    return wins[:num_wins] + losses[: num - num_wins]


# ------------------------------------------------------------------------------------- policies
class OGBenchOraclePolicy(TensorDictModuleBase):
    """Scripted expert: heads for the next cell of the BFS path to the goal (OGBench's
    ``get_oracle_subgoal``), then for the goal itself once in its cell, optionally with Gaussian
    action noise. The point takes the unit direction as its action; the ant is walked along it by
    a direction-following expert (by default the one shipped with the package, which walked the
    regenerated ant datasets). An upper bound with privileged knowledge of the route, and a test
    oracle.

    Reads ``"achieved_goal"`` and ``"desired_goal"`` (x-y), and for the ant ``"observation"``;
    writes ``"action"`` in ``[-1, 1]``.

    Args:
        env_name (str): the OGBench maze, e.g. ``"pointmaze-medium-navigate-v0"``.
        noise (float, optional): std of the Gaussian action noise (the navigate datasets: 0.2).
            Defaults to ``0.0``.
        expert (optional): ant mazes: a ``DirectionExpert`` or the path of an expert file.
            Defaults to the shipped ant expert.

    Examples:
        >>> from torchrl_skills.envs import OGBenchMazeEnv
        >>> env = OGBenchMazeEnv("pointmaze-medium-navigate-v0", num_envs=2)
        >>> policy = OGBenchOraclePolicy("pointmaze-medium-navigate-v0")
        >>> policy(env.reset())["action"].norm(dim=-1)
        tensor([1.0000, 1.0000])
    """

    def __init__(self, env_name: str, noise: float = 0.0, expert=None):
        super().__init__()
        from torchrl_skills.data.maze_grid import MazeGrid
        from torchrl_skills.envs.ogbench_maze import make_ogbench_env

        env = make_ogbench_env(env_name)
        self.grid = MazeGrid.from_ogbench(env)
        action_shape = env.action_space.shape
        env.close()
        self.noise = float(noise)
        self.expert = None
        self.in_keys = ["achieved_goal", "desired_goal"]
        if action_shape != (2,):
            from torchrl_skills.modules.direction_expert import DirectionExpert, load_direction_expert

            self.expert = expert if isinstance(expert, DirectionExpert) else load_direction_expert(expert)
            self.in_keys.append("observation")
        self.out_keys = ["action"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        xy = tensordict.get("achieved_goal").cpu().double().numpy().reshape(-1, 2)
        goal = tensordict.get("desired_goal").cpu().double().numpy().reshape(-1, 2)
        # Next cell centre, and the goal itself once in its cell: OGBench's subgoal stays at the
        # goal cell's centre, which can be farther than the success radius from a noisy goal
        # (the data's action noise moves the agent on; a noise-free oracle would wait there).
        direction = self.grid.next_waypoints(xy, goal) - xy
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-6
        if self.expert is not None:  # the ant's own observation (x-y first, as the expert was trained) is dropped
            obs = tensordict.get("observation").cpu().numpy()
            direction = self.expert(obs.reshape(len(xy), -1)[:, 2:], direction)
        action = torch.as_tensor(direction, dtype=torch.float32).reshape(*tensordict.batch_size, -1)
        if self.noise:
            action = action + self.noise * torch.randn_like(action)
        tensordict.set("action", action.clamp(-1, 1).to(tensordict.device))
        return tensordict


def validation_tasks(env_name: str, num_tasks: int = 20, seed: int = 0, min_cells: int | None = None) -> list[dict]:
    """Start/goal cell pairs of our own for choosing settings, never one of the evaluation tasks.

    Starts are drawn from all free cells and goals from the vertex cells (as OGBench's data), at
    least ``min_cells`` cells of shortest path apart. By default that is the length of the
    env's shortest evaluation task (6 cells on the medium mazes, 12 on the large ones), so that
    settings are chosen on problems as long as those they are evaluated on: with shorter
    validation pairs, a planner that is only good at short range looks better than it is.

    Args:
        env_name (str): OGBench dataset / env name.
        num_tasks (int, optional): pairs to draw. Defaults to ``20``.
        seed (int, optional): seed of the draw. Defaults to ``0``.
        min_cells (int, optional): the shortest allowed start-goal path, in maze cells.
            Defaults to the shortest evaluation task's.

    Examples:
        >>> tasks = validation_tasks("pointmaze-medium-navigate-v0", 3, seed=0)
        >>> sorted(tasks[0])
        ['goal_ij', 'init_ij']
    """
    from torchrl_skills.data.maze_grid import MazeGrid
    from torchrl_skills.envs.ogbench_maze import make_ogbench_env

    env = make_ogbench_env(env_name)
    grid = MazeGrid.from_ogbench(env)
    task_infos = env.unwrapped.task_infos
    env.close()

    def cells(init, goal) -> float:  # inf where no path joins them
        return float(grid.distance[init[0] * grid.width + init[1], goal[0] * grid.width + goal[1]])

    evaluation = {(tuple(t["init_ij"]), tuple(t["goal_ij"])) for t in task_infos}
    if min_cells is None:
        min_cells = min(cells(t["init_ij"], t["goal_ij"]) for t in task_infos)
    free, vertex = grid.free_cells(), grid.vertex_cells()
    pairs = [(i, g) for i in free for g in vertex if (i, g) not in evaluation and min_cells <= cells(i, g) < math.inf]
    if not pairs:
        raise ValueError(f"No start/goal pair of {env_name} is {min_cells} cells apart or more: pass a smaller min_cells.")
    rng = np.random.default_rng(seed)
    return [{"init_ij": init, "goal_ij": goal} for init, goal in (pairs[k] for k in rng.integers(len(pairs), size=num_tasks))]


def make_ogbench_policy(
    kind: str,
    env_name: str,
    model=None,
    cost=None,
    horizon: int = 3,
    candidates: int = 1000,
    elites: int = 200,
    iterations: int = 10,
    replan_every: int = 30,
    eps_penalty: float = 0.1,
    off_data_penalty: float = 0.0,
    off_data_radius: float | None = None,
    detour_slack: float | None = None,
    stall_distance: float | None = None,
    oracle_noise: float = 0.0,
    select: str = "mean",
    stall_check_every: int | None = None,
    min_up: float | None = None,
    progress_discount: float = 1.0,
    eps_bound: float | None = None,
):
    """The policies the CLI and the examples evaluate.

    Args:
        kind (str): ``"planner"`` (CEM over skills on the skill model, executed by its low-level
            policy), ``"prior"`` (skills drawn from the prior, no planning), ``"oracle"``
            (:class:`OGBenchOraclePolicy`: the BFS route, walked by the ant expert on the ant
            mazes) or ``"random"`` (uniform actions).
        env_name (str): the OGBench dataset / env name.
        model (SkillModel, optional): needed by ``"planner"`` and ``"prior"``.
        cost (optional): the planning cost (e.g. :class:`~torchrl_skills.envs.GraphDistanceCost`);
            ``None``: the Euclidean distance to the goal.
        horizon, candidates, elites, iterations: CEM's skills planned ahead, candidates, elites
            and iterations.
        replan_every (int): env steps each skill runs before replanning.
        eps_penalty (float): weight of the penalty on the planned noise; 0.1 was chosen on validation
            goals of the OGBench point mazes (see the README). Defaults to ``0.1``.
        off_data_penalty (float): weight of :class:`~torchrl_skills.envs.OffDataPenalty` on each
            imagined skill (needs a :class:`~torchrl_skills.envs.GraphDistanceCost` ``cost``);
            ``0`` turns it off. Defaults to ``0.0``.
        off_data_radius (float, optional): the penalty's free distance around each graph node;
            ``None``: the graph's ``support_radius``, measured on the data. Defaults to ``None``.
        detour_slack (float, optional): the penalty also charges imagined skills whose start and
            end the graph joins only by a path this much longer than the straight segment (corner
            cuts; ``OffDataPenalty(detour_slack=)``). ``None``: not checked. Defaults to ``None``.
        stall_distance (float, optional): ``"planner"`` only: an episode whose last skill moved it
            less than this (x-y, metres) runs its next skill from the prior (stall recovery of
            :class:`~torchrl_skills.modules.SkillMPCPolicy`). ``None`` or ``0``: off. Defaults to ``None``.
        oracle_noise (float): ``"oracle"`` only: std of its Gaussian action noise (the navigate
            datasets': 0.2). Defaults to ``0.0``.
        select (str): ``"planner"`` only: execute the CEM elites' mean (``"mean"``) or the best
            candidate seen (``"best"``); see :class:`~torchrl_skills.modules.SkillCEMPlanner`.
            Defaults to ``"mean"``.
        stall_check_every (int, optional): ``"planner"`` only: also check for a stall every this many
            steps inside a skill (needs ``stall_distance``). ``None`` or ``0``: only at the end of each
            skill period. Defaults to ``None``.
        min_up (float, optional): ``"planner"`` and ``"prior"`` on the ant mazes: zero the action while
            the torso's up axis has a z component below this (:class:`~torchrl_skills.modules.UprightGuard`).
            ``None``: no guard. Defaults to ``None``.
        progress_discount (float): ``"planner"`` only: the planned skills' progress is weighted
            ``gamma ** i`` (:class:`~torchrl_skills.envs.SkillModelEnv`); ``1.0``: the paper's
            objective. Defaults to ``1.0``.
        eps_bound (float, optional): ``"planner"`` only: planned skills keep their noise within
            ``[-eps_bound, eps_bound]`` prior standard deviations (:class:`~torchrl_skills.envs.SkillModelEnv`).
            ``None``: unbounded. Defaults to ``None``.

    Examples:
        >>> policy = make_ogbench_policy("oracle", "pointmaze-medium-navigate-v0")
        >>> type(policy).__name__
        'OGBenchOraclePolicy'
    """
    from torchrl.envs.utils import RandomPolicy

    from torchrl_skills.modules import SkillMPCPolicy, UprightGuard, make_skill_planner

    if kind not in ("planner", "prior", "oracle", "random"):
        raise ValueError(f"Unknown policy {kind!r}: choose planner, prior, oracle or random.")
    if kind == "oracle":
        return OGBenchOraclePolicy(env_name, noise=oracle_noise)
    if kind == "random":
        # no spec yet: evaluate_ogbench sets it from its batched env, as torchrl's collectors do (a
        # per-env spec fails on the batch: RandomPolicy draws with the spec's own shape)
        return RandomPolicy()
    if model is None:
        raise ValueError(f"The {kind!r} policy needs a skill model: pass --checkpoint.")
    if min_up is not None and not env_name.startswith("antmaze"):
        raise ValueError(f"min_up guards the ant's torso; {env_name} has no ant: leave it None.")

    def guarded(policy):
        return policy if min_up is None else UprightGuard(policy, min_up=min_up)

    if kind == "prior":
        return guarded(SkillMPCPolicy(model, None, replan_every=replan_every))
    skill_penalty = None
    if detour_slack is not None and not off_data_penalty:
        raise ValueError("detour_slack is charged with the off-data penalty's weight: set off_data_penalty > 0 too.")
    if off_data_penalty:
        from torchrl_skills.envs import GraphDistanceCost, OffDataPenalty

        if not isinstance(cost, GraphDistanceCost):
            raise ValueError(
                "off_data_penalty measures the distance to the dataset graph: use the graph cost (--cost graph), "
                "or set the penalty to 0."
            )
        skill_penalty = OffDataPenalty(cost, off_data_penalty, radius=off_data_radius, detour_slack=detour_slack)
    planner = make_skill_planner(
        model, planning_horizon=horizon, num_candidates=candidates, top_k=elites, optim_steps=iterations,
        cost=cost, eps_penalty=eps_penalty, skill_penalty=skill_penalty, select=select,
        progress_discount=progress_discount, eps_bound=eps_bound,
    )  # fmt: skip
    policy = SkillMPCPolicy(
        model, planner, replan_every=replan_every, stall_distance=stall_distance or None,
        stall_check_every=stall_check_every or None,
    )  # fmt: skip
    return guarded(policy)


# ------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_ogbench(
    policy,
    env_name: str,
    episodes_per_task: int = 50,
    tasks: Sequence | None = None,
    num_envs: int | None = None,
    seed: int = 0,
    training_seed: int | None = None,
    device="cpu",
    primer=None,
    progress: bool = True,
) -> OGBenchResult:
    """Runs OGBench's protocol: ``episodes_per_task`` episodes of each task, side by side.

    Args:
        policy: reads the :class:`~torchrl_skills.envs.OGBenchMazeEnv` keys (``"observation"``,
            ``"desired_goal"``, ...) and writes ``"action"``. A policy with
            ``make_tensordict_primer()`` (e.g. :class:`~torchrl_skills.modules.SkillMPCPolicy`)
            gets its carried state registered on the env.
        env_name (str): OGBench dataset name, e.g. ``"pointmaze-medium-navigate-v0"``.
        episodes_per_task (int, optional): OGBench uses 50. Defaults to ``50``.
        tasks (sequence, optional): task ids (default: all of the env's, 1-5) or custom
            ``dict(init_ij=..., goal_ij=...)`` tasks, e.g. from :func:`validation_tasks`.
        num_envs (int, optional): episodes run side by side. Defaults to all at once.
        seed (int, optional): episode ``k`` (over all tasks) gets seed ``seed * 100_003 + k``.
        training_seed (int, optional): recorded with each episode, for intervals over seeds.
            Defaults to ``seed``.
        device (torch.device, optional): device of the env's tensordicts. Defaults to CPU.
        primer (Transform, optional): appended to the env, e.g. the primer of a policy's carried
            state. Defaults to ``policy.make_tensordict_primer()`` when the policy has one.
        progress (bool, optional): a tqdm bar over episodes. Defaults to ``True``.

    Returns:
        OGBenchResult: per-episode records (task, episode seed, success, steps, final distance,
        goal), executed x-y paths and, for a policy writing ``"skill_step"`` and
        ``("next", "skill_end")``, the points it (re)planned from and the planned skill ends.

    The loop is written out rather than ``env.rollout``: finished episodes stay frozen in the
    batch (see :class:`~torchrl_skills.envs.OGBenchMazeEnv`) until the last one is done.

    Examples:
        >>> policy = OGBenchOraclePolicy("pointmaze-medium-navigate-v0")
        >>> result = evaluate_ogbench(policy, "pointmaze-medium-navigate-v0", episodes_per_task=1, progress=False)
        >>> result.success_rate, len(result.episodes)
        (1.0, 5)
    """
    from tqdm.auto import tqdm

    from torchrl_skills.envs.ogbench_maze import OGBenchMazeEnv

    if isinstance(episodes_per_task, bool) or not isinstance(episodes_per_task, int) or episodes_per_task < 1:
        raise ValueError(f"episodes_per_task must be a positive integer, got {episodes_per_task!r}.")
    if num_envs is not None and (isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1):
        raise ValueError(f"num_envs must be a positive integer (or None: all episodes at once), got {num_envs!r}.")
    from torchrl_skills.envs.ogbench_maze import make_ogbench_env

    probe = make_ogbench_env(env_name)  # unknown names fail here, before any work
    num_tasks = probe.unwrapped.num_tasks
    probe.close()
    tasks = list(range(1, num_tasks + 1)) if tasks is None else list(tasks)
    if not tasks:
        raise ValueError("tasks is empty: pass task ids in 1..5, or None for all of them.")
    for task in tasks:
        if not isinstance(task, dict) and (isinstance(task, bool) or not 1 <= int(task) <= num_tasks):
            raise ValueError(
                f"Task ids of {env_name} run from 1 to {num_tasks}, got {task!r}: pass a subset of them, or "
                "dict(init_ij=..., goal_ij=...) tasks of your own (see validation_tasks)."
            )
    schedule = [(task, t) for t, task in enumerate(tasks) for _ in range(episodes_per_task)]
    seeds = [seed * 100_003 + k for k in range(len(schedule))]
    num_envs = len(schedule) if num_envs is None else min(int(num_envs), len(schedule))
    result = OGBenchResult(env_name)
    start = time.perf_counter()
    if primer is None and hasattr(policy, "make_tensordict_primer"):
        primer = policy.make_tensordict_primer()
    base = OGBenchMazeEnv(env_name, num_envs=num_envs, device=device)
    env = base if primer is None else base.append_transform(primer)
    if hasattr(policy, "set_action_spec_from_env"):  # torchrl's lazily specced policies (RandomPolicy())
        policy.set_action_spec_from_env(base)
    bar = tqdm(total=len(schedule), desc=f"eval {env_name}", unit="ep", disable=not progress)
    successes = 0
    for first in range(0, len(schedule), num_envs):
        chunk = list(range(first, min(first + num_envs, len(schedule))))
        pad = num_envs - len(chunk)  # the last batch re-plays its first episodes in empty slots, unrecorded
        slots = chunk + chunk[:1] * pad
        base.set_episodes([schedule[k][0] for k in slots], [seeds[k] for k in slots])
        td = env.reset()
        xy = [td["achieved_goal"].cpu().numpy()]
        plans = [[] for _ in slots]
        plan_steps = [[] for _ in slots]
        steps = np.zeros(len(slots), dtype=np.int64)
        while not td["done"].all():
            live = ~td["done"].reshape(-1).cpu().numpy()
            td = policy(td)
            started = td.get("skill_started", None)
            if started is None and "skill_step" in td.keys():  # a policy of its own, without the marker
                started = td["skill_step"] == 0
            if started is not None:
                planned = started.reshape(-1).cpu().numpy() & live
                for k in np.flatnonzero(planned):
                    here = td["achieved_goal"][k].cpu().numpy()
                    end = td["next", "skill_end"][k, :2].cpu().numpy()
                    plans[k].append([*here, *end])
                    plan_steps[k].append(int(steps[k]))
            td = env.step(td)
            steps += live
            xy.append(td["next", "achieved_goal"].cpu().numpy())
            td = step_mdp(td)
        xy = np.stack(xy, 1)
        success = td["success"].reshape(-1).cpu().numpy()
        for slot, k in enumerate(chunk):
            task = schedule[k][0]
            goal = base.envs[slot].unwrapped.cur_goal_xy
            n = int(steps[slot])
            result.episodes.append(
                {
                    "task": task if not isinstance(task, dict) else f"val{schedule[k][1]}",
                    "episode_seed": seeds[k],
                    "training_seed": seed if training_seed is None else training_seed,
                    "success": bool(success[slot]),
                    "steps": n,
                    "final_distance": float(np.linalg.norm(xy[slot, n] - goal)),
                    "goal": [float(goal[0]), float(goal[1])],
                }
            )
            result.paths.append(xy[slot, : n + 1])
            result.plans.append(np.array(plans[slot]).reshape(-1, 4))
            result.plan_steps.append(np.array(plan_steps[slot], dtype=np.int64))
            successes += bool(success[slot])
        bar.update(len(chunk))
        bar.set_postfix(success=f"{successes}/{len(result.episodes)}")
    bar.close()
    env.close()
    result.wall_time_s = time.perf_counter() - start
    return result


def main(argv: Sequence[str] | None = None) -> OGBenchResult:
    """Command line: ``python -m torchrl_skills.evaluation.ogbench``."""
    from torchrl_skills.utils.cli import ArgumentParser, non_negative_int, positive_int
    from torchrl_skills.utils.outputs import OutputDir

    p = ArgumentParser(
        prog="python -m torchrl_skills.evaluation.ogbench",
        description="Evaluate a policy with OGBench's protocol (5 tasks per maze, success from the env). Results "
        "are written at the end, replacing those of an earlier run in --out-dir; a run stopped with Ctrl-C or "
        "SIGTERM writes nothing.",
    )
    p.add_argument("--dataset", default="pointmaze-medium-navigate-v0", help="OGBench name (default: %(default)s)")
    p.add_argument("--policy", choices=["planner", "prior", "oracle", "random"], default="planner",
                   help="what to evaluate (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="skill-model checkpoint (planner and prior)")
    p.add_argument("--cost", choices=["euclidean", "graph"], default="euclidean",
                   help="planning cost; 'graph' needs --graph-dataset (default: %(default)s)")
    p.add_argument("--graph-dataset", default=None, help="Minari id whose states build the graph cost")
    p.add_argument("--graph-nodes", type=positive_int, default=1000, help="nodes of the dataset graph (default: %(default)s)")
    p.add_argument("--graph-edge-steps", type=positive_int, default=None,
                   help="join two nodes when the data went from one to the other within this many steps (None: as "
                        "the OGBench examples do, 20 on the ant mazes, 10 on the point mazes)")
    p.add_argument("--graph-entry-nodes", type=positive_int, default=1,
                   help="a position enters the graph at the best of its N nearest nodes (default: %(default)s)")
    p.add_argument("--episodes-per-task", type=positive_int, default=50, help="OGBench: 50 (default: %(default)s)")
    p.add_argument("--num-envs", type=positive_int, default=None, help="episodes side by side (None: all)")
    p.add_argument("--horizon", type=positive_int, default=3, help="skills planned ahead (default: %(default)s)")
    p.add_argument("--candidates", type=positive_int, default=1000, help="CEM candidates (default: %(default)s)")
    p.add_argument("--elites", type=positive_int, default=200, help="CEM elites (default: %(default)s)")
    p.add_argument("--iterations", type=positive_int, default=10, help="CEM iterations (default: %(default)s)")
    p.add_argument("--replan-every", type=positive_int, default=30, help="env steps per skill (default: %(default)s)")
    p.add_argument("--eps-penalty", type=float, default=0.1, help="lambda of the noise penalty, chosen on validation goals (default: %(default)s)")
    p.add_argument("--off-data-penalty", type=float, default=0.0,
                   help="weight of OffDataPenalty on imagined skills (--cost graph only; 10000 on the ant mazes) "
                        "(default: %(default)s)")
    p.add_argument("--off-data-radius", type=float, default=None,
                   help="free distance around each graph node (None: the graph's support_radius)")
    p.add_argument("--detour-slack", type=float, default=None,
                   help="the off-data penalty also charges skills whose graph path is this much longer than their "
                        "straight segment (m; None: not checked)")
    p.add_argument("--progress-discount", type=float, default=1.0,
                   help="weight gamma ** i on the progress of the i-th planned skill (1: the paper's objective, the best "
                        "end over the horizon; < 1 favours plans that progress in the skills executed first)")
    p.add_argument("--eps-bound", type=float, default=None,
                   help="planned skills keep their noise within [-B, B] prior standard deviations (None: unbounded)")
    p.add_argument("--oracle-noise", type=float, default=0.0,
                   help="--policy oracle: std of its action noise (the navigate datasets: 0.2) (default: %(default)s)")
    p.add_argument("--stall-distance", type=float, default=0.0,
                   help="stall recovery: the next skill of an episode that moved less than this is drawn from the "
                        "prior (0: off; 0.3 on the ant mazes) (default: %(default)s)")
    p.add_argument("--stall-check-every", type=non_negative_int, default=0,
                   help="also check for a stall every this many steps inside a skill (0: only at each replan) "
                        "(default: %(default)s)")
    p.add_argument("--min-up", type=float, default=None,
                   help="ant mazes: zero the action while the torso's up axis has a z component below this (0.8 "
                        "on the ant mazes; None: no guard) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="episode seeds (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--out-dir", default="outputs/ogbench_eval", help="results.json and results.png (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="only merge results.json files of several training seeds (run side by side) into one report")
    args = p.parse_args(argv)
    for name in ("off_data_penalty", "stall_distance", "oracle_noise"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0 (0: off), got {getattr(args, name)}")
    if not 0 < args.progress_discount <= 1:
        p.error(f"--progress-discount must lie in (0, 1], got {args.progress_discount}")
    if args.eps_bound is not None and args.eps_bound <= 0:
        p.error(f"--eps-bound must be > 0, got {args.eps_bound}")
    outputs = ["results.json", "results.png"]  # what a run writes into --out-dir, and replaces
    if args.merge:
        try:
            result = OGBenchResult.merge([OGBenchResult.load_json(f) for f in args.merge])
        except (OSError, KeyError, ValueError) as err:
            p.error(f"--merge: {err}")
        with OutputDir(args.out_dir, owned=outputs) as out:
            out.clear()  # a results.png of an earlier evaluation would not describe the merged results
            result.save_json(out / "results.json", extra={"merged": args.merge})
        print(result.table())
        return result
    # Errors (a missing or damaged checkpoint, an unknown dataset) propagate: run_cli prints them in one line.
    model = cost = None
    if args.policy in ("planner", "prior"):
        if args.checkpoint is None:
            raise ValueError(f"--policy {args.policy} needs --checkpoint (a skill model from train_skill_model.py).")
        from torchrl_skills.modules import load_skill_model

        model = load_skill_model(args.checkpoint, map_location=args.device).eval()
    if args.cost == "graph":
        if args.graph_dataset is None:
            raise ValueError("--cost graph needs --graph-dataset (the Minari id the model was trained on).")
        from torchrl_skills.data.ogbench import parse_ogbench_name
        from torchrl_skills.envs import GraphDistanceCost

        if args.graph_edge_steps is None:
            args.graph_edge_steps = 20 if parse_ogbench_name(args.dataset)[0] == "ant" else 10
        cost = GraphDistanceCost.from_dataset(
            args.graph_dataset, num_nodes=args.graph_nodes, max_edge_steps=args.graph_edge_steps,
            entry_nodes=args.graph_entry_nodes,
        ).to(args.device)
    policy = make_ogbench_policy(
        args.policy, args.dataset, model, cost, horizon=args.horizon, candidates=args.candidates,
        elites=args.elites, iterations=args.iterations, replan_every=args.replan_every,
        eps_penalty=args.eps_penalty, off_data_penalty=args.off_data_penalty, off_data_radius=args.off_data_radius,
        detour_slack=args.detour_slack, stall_distance=args.stall_distance, oracle_noise=args.oracle_noise,
        stall_check_every=args.stall_check_every, min_up=args.min_up, progress_discount=args.progress_discount,
        eps_bound=args.eps_bound,
    )  # fmt: skip
    result = evaluate_ogbench(
        policy, args.dataset, args.episodes_per_task, num_envs=args.num_envs, seed=args.seed,
        device=args.device, progress=not args.no_progress,
    )  # fmt: skip
    with OutputDir(args.out_dir, owned=outputs) as out:
        out.clear()
        result.save_json(out / "results.json", extra={"config": vars(args)})
        result.plot(out / "results.png", title=f"{args.dataset}: {args.policy}")
    print(result.table())
    print(f"wrote {out / 'results.json'} and {out / 'results.png'}")
    return result


if __name__ == "__main__":
    from torchrl_skills.utils.cli import run_cli

    run_cli(main, interrupted="no results were written; run the same command again")
