"""D4RL-style PointMaze datasets, generated locally and written to the Minari store.

Public datasets cannot be downloaded on every machine this package runs on, so this
module produces its own offline datasets from the *real* gymnasium-robotics
``PointMaze_{UMaze,Medium,Large}-v3`` environments, in the spirit of D4RL's
``maze2d`` data:

* a :class:`~torchrl_skills.data.maze_grid.MazeGrid` (the maze layer shared by every
  generator) computes, once per maze, all-pairs shortest paths over the
  maze cells (breadth-first search on the 4-connected free-cell grid) and turns them
  into a ``next_cell[cell, goal_cell]`` lookup table;
* a :class:`WaypointController` drives the ball with a PD law towards the next
  waypoint (the centre of the next cell on the shortest path, or the goal itself once
  in the goal cell), plus Gaussian action noise;
* :func:`generate_pointmaze_dataset` runs the environment with
  ``continuing_task=True, reset_target=True`` (a new goal is drawn by the environment
  each time the current one is reached), cuts the stream into fixed-length episodes
  and writes them with :func:`minari.create_dataset_from_buffers` into the local
  Minari store (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``) under the
  ``torchrl_skills/pointmaze`` namespace.

The datasets are then read exactly like downloaded ones, e.g. with
:func:`minari.load_dataset` or
:class:`torchrl.data.datasets.MinariExperienceReplay` with
``load_from_local_minari=True``.

From the command line::

    python -m torchrl_skills.data.pointmaze --maze medium            # default size
    python -m torchrl_skills.data.pointmaze --maze medium --full     # 1M steps

"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time

from typing import Sequence

import numpy as np

from torchrl_skills.data.goal_reaching import goal_reaching_stats
from torchrl_skills.data.maze_grid import MazeGrid
from torchrl_skills.data.minari_store import (
    GENERATOR_METADATA_KEY,
    check_new_dataset,
    dataset_path as _dataset_path,
    read_generator_metadata as _read_metadata,
    reuse_dataset,
    write_minari_dataset,
)

__all__ = [
    "DEFAULT_NUM_STEPS",
    "FULL_NUM_STEPS",
    "MAZES",
    "MazeGrid",
    "WaypointController",
    "ensure_pointmaze_dataset",
    "generate_pointmaze_dataset",
    "pointmaze_dataset_id",
]

#: Maze name (as used in dataset ids and on the command line) -> gymnasium env id.
MAZES: dict[str, str] = {
    "umaze": "PointMaze_UMaze-v3",
    "medium": "PointMaze_Medium-v3",
    "large": "PointMaze_Large-v3",
}

#: Number of steps of the default dataset (``{maze}-v0``): about 10 s to generate on
#: one free CPU core, which leaves a wide margin under the 2 minute budget on a
#: loaded machine.
DEFAULT_NUM_STEPS = 300_000
#: Number of steps of the full dataset (``{maze}-full-v0``), the size of D4RL's
#: ``maze2d-umaze`` and of Minari's ``D4RL/pointmaze/*`` datasets.
FULL_NUM_STEPS = 1_000_000
DEFAULT_EPISODE_LENGTH = 1000
DEFAULT_KP = 10.0
DEFAULT_KD = 1.0
DEFAULT_ACTION_NOISE = 0.5
#: A goal counts as reached for the goal-reaching rate if it is reached within this
#: many steps of being set. The largest maze needs < 400 steps for its longest paths.
DEFAULT_GOAL_BUDGET = 500

NAMESPACE = "torchrl_skills/pointmaze"
DATASET_VERSION = 0



class WaypointController:
    """Noisy PD controller that follows a :class:`~torchrl_skills.data.maze_grid.MazeGrid`'s waypoints.

    The action is ``clip(kp * (waypoint - pos) - kd * vel + noise, -1, 1)`` where
    ``pos, vel`` come from the PointMaze observation ``[x, y, vx, vy]`` and
    ``noise ~ N(0, action_noise^2)`` independently per dimension.

    Args:
        planner (MazeGrid): the maze's shortest paths.
        kp (float, optional): proportional gain. Defaults to ``10.0``.
        kd (float, optional): derivative (velocity) gain. Defaults to ``1.0``.
        action_noise (float, optional): standard deviation of the Gaussian noise added
            before clipping. Defaults to ``0.5``.
        seed (int or np.random.Generator, optional): seed of the noise generator.

    Examples:
        >>> from gymnasium_robotics.envs.maze.maps import U_MAZE
        >>> controller = WaypointController(MazeGrid(U_MAZE), action_noise=0.0)
        >>> controller([-1.0, 1.0, 0.0, 0.0], [-1.0, -1.0])  # towards cell (1, 2)
        array([1., 0.], dtype=float32)
    """

    def __init__(
        self,
        planner: MazeGrid,
        kp: float = DEFAULT_KP,
        kd: float = DEFAULT_KD,
        action_noise: float = DEFAULT_ACTION_NOISE,
        seed: int | np.random.Generator | None = None,
    ):
        if kp <= 0 or kd < 0:
            raise ValueError(f"Expected kp > 0 and kd >= 0, got kp={kp}, kd={kd}.")
        if action_noise < 0:
            raise ValueError(f"action_noise must be >= 0, got {action_noise}.")
        self.planner = planner
        self.kp = float(kp)
        self.kd = float(kd)
        self.action_noise = float(action_noise)
        self.rng = np.random.default_rng(seed)

    def _act(
        self, x: float, y: float, vx: float, vy: float, gx: float, gy: float, nx: float, ny: float
    ) -> tuple[float, float]:
        # Scalar arithmetic on Python floats: for two dimensions this is several times
        # faster than numpy, and the controller runs once per environment step.
        wx, wy = self.planner._waypoint(x, y, gx, gy)
        ax = self.kp * (wx - x) - self.kd * vx + nx
        ay = self.kp * (wy - y) - self.kd * vy + ny
        return min(1.0, max(-1.0, ax)), min(1.0, max(-1.0, ay))

    def __call__(
        self, observation: Sequence[float], goal: Sequence[float], noise: Sequence[float] | None = None
    ) -> np.ndarray:
        """Action for one observation ``[x, y, vx, vy]`` and goal ``(x, y)``.

        ``noise`` overrides the controller's own noise draw when given.
        """
        if noise is None:
            noise = self.rng.normal(scale=self.action_noise, size=2)
        x, y, vx, vy = (float(v) for v in observation[:4])
        return np.array(
            self._act(x, y, vx, vy, float(goal[0]), float(goal[1]), float(noise[0]), float(noise[1])),
            dtype=np.float32,
        )


def _check_maze(maze) -> str:
    """The dataset name of a maze: its name, or ``custom-<hash>`` for a layout (list of rows)."""
    if not isinstance(maze, str):
        layout = _check_layout(maze)
        digest = hashlib.sha1(json.dumps(layout).encode()).hexdigest()[:8]
        return f"custom-{digest}"
    name = str(maze).lower()
    if name not in MAZES:
        raise ValueError(
            f"Unknown PointMaze maze {maze!r}. Valid mazes: {', '.join(sorted(MAZES))}, or a custom layout "
            "(a list of rows of 0/1, e.g. [[1,1,1,1],[1,0,0,1],[1,1,1,1]])."
        )
    return name


def _check_layout(maze_map) -> list[list]:
    """A gymnasium-robotics ``maze_map`` as plain lists, validated (rectangular, walled, free cells)."""
    try:
        layout = [[c if isinstance(c, str) else int(c) for c in row] for row in maze_map]
    except (TypeError, ValueError):
        raise ValueError(f"A custom maze must be a list of rows of 0/1 (or 'r'/'g'/'c') cells, got {maze_map!r}.")
    if not layout or len({len(row) for row in layout}) != 1 or len(layout[0]) < 3 or len(layout) < 3:
        raise ValueError("A custom maze_map must be a rectangular list of at least 3 rows of at least 3 cells.")
    if not any(c != 1 for row in layout for c in row):
        raise ValueError("A custom maze_map needs at least one free (0) cell.")
    return layout


def pointmaze_dataset_id(maze: str = "medium", full: bool = False, num_steps: int | None = None) -> str:
    """Minari id of a generated PointMaze dataset.

    ``torchrl_skills/pointmaze/{maze}-v0`` holds the default size
    (:data:`DEFAULT_NUM_STEPS`), ``torchrl_skills/pointmaze/{maze}-full-v0`` the full
    1M-step version. Any other size gets its own id,
    ``torchrl_skills/pointmaze/{maze}-{num_steps}steps-v0``, so that a small test
    dataset can never be mistaken for a default one.

    Args:
        maze (str, optional): ``"umaze"``, ``"medium"`` or ``"large"``. Defaults to
            ``"medium"``.
        full (bool, optional): id of the full dataset. Defaults to ``False``.
        num_steps (int, optional): dataset size; overrides ``full`` when given.

    Examples:
        >>> pointmaze_dataset_id("medium")
        'torchrl_skills/pointmaze/medium-v0'
        >>> pointmaze_dataset_id("large", full=True)
        'torchrl_skills/pointmaze/large-full-v0'
    """
    maze = _check_maze(maze)
    if num_steps is None:
        num_steps = FULL_NUM_STEPS if full else DEFAULT_NUM_STEPS
    if num_steps == DEFAULT_NUM_STEPS:
        name = maze
    elif num_steps == FULL_NUM_STEPS:
        name = f"{maze}-full"
    else:
        name = f"{maze}-{int(num_steps)}steps"
    return f"{NAMESPACE}/{name}-v{DATASET_VERSION}"


def _collect(
    env,
    controller: WaypointController,
    num_steps: int,
    episode_length: int,
    seed: int,
    goal_budget: int,
    progress: bool,
    description: str,
):
    """Runs the controller in ``env`` and returns (episode buffers, statistics)."""
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    act = controller._act
    noise_std = controller.action_noise
    episodes = []
    goals_reached = 0  # for the progress bar; the statistics come from the stored success flags

    obs, info = env.reset(seed=seed)
    remaining = num_steps
    pbar = tqdm(
        total=num_steps, desc=description, unit="step", unit_scale=True, disable=not progress
    )
    with pbar:
        while remaining > 0:
            # Only the last episode can be shorter: the dataset has exactly num_steps.
            length = min(episode_length, remaining)
            observation = np.empty((length + 1, 4))
            achieved_goal = np.empty((length + 1, 2))
            desired_goal = np.empty((length + 1, 2))
            success = np.empty(length + 1, dtype=bool)
            actions = np.empty((length, 2), dtype=np.float32)
            rewards = np.empty(length)
            terminations = np.zeros(length, dtype=bool)
            truncations = np.zeros(length, dtype=bool)
            # One draw per episode: much cheaper than one numpy call per step.
            noise = (rng.standard_normal((length, 2)) * noise_std).tolist()

            observation[0] = obs["observation"]
            achieved_goal[0] = obs["achieved_goal"]
            desired_goal[0] = obs["desired_goal"]
            success[0] = info.get("success", False)
            t = 0
            for t in range(length):
                x, y, vx, vy = obs["observation"].tolist()
                gx, gy = obs["desired_goal"].tolist()
                nx, ny = noise[t]
                action = act(x, y, vx, vy, gx, gy, nx, ny)
                actions[t] = action
                obs, reward, terminated, truncated, info = env.step(actions[t])
                observation[t + 1] = obs["observation"]
                achieved_goal[t + 1] = obs["achieved_goal"]
                desired_goal[t + 1] = obs["desired_goal"]
                rewards[t] = reward
                terminations[t] = terminated
                truncations[t] = truncated
                # With reset_target=True the env has already drawn the next goal on arrival;
                # it shows up in the next observation's desired_goal.
                success[t + 1] = info["success"]
                if terminated or truncated:
                    break
            if t + 1 < length:
                # PointMaze with continuing_task=True never terminates and the time
                # limit equals episode_length, so this is a genuine surprise.
                raise RuntimeError(f"Episode ended after {t + 1} steps, expected {length}.")
            # The last, possibly shorter, episode is cut by us, not by the TimeLimit.
            truncations[-1] = True
            goals_reached += int(success[1:].sum())
            episodes.append(
                EpisodeBuffer(
                    id=len(episodes),
                    # env.reset was seeded only for the first episode; later resets
                    # continue the env's generator, so the whole run is reproducible.
                    seed=seed if not episodes else None,
                    observations={
                        "achieved_goal": achieved_goal,
                        "desired_goal": desired_goal,
                        "observation": observation,
                    },
                    actions=actions,
                    rewards=rewards,
                    terminations=terminations,
                    truncations=truncations,
                    infos={"success": success},
                )
            )
            remaining -= length
            pbar.update(length)
            pbar.set_postfix(episodes=len(episodes), goals=goals_reached, refresh=False)
            if remaining > 0:
                obs, info = env.reset()

    stats = goal_reaching_stats((episode.infos["success"] for episode in episodes), goal_budget)
    del stats["goal_budget"]  # recorded with the settings
    return episodes, stats


def generate_pointmaze_dataset(
    maze: str | list = "medium",
    num_steps: int = DEFAULT_NUM_STEPS,
    episode_length: int = DEFAULT_EPISODE_LENGTH,
    seed: int = 0,
    action_noise: float = DEFAULT_ACTION_NOISE,
    dataset_id: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    *,
    kp: float = DEFAULT_KP,
    kd: float = DEFAULT_KD,
    goal_budget: int = DEFAULT_GOAL_BUDGET,
) -> str:
    """Generates a D4RL-style PointMaze dataset and writes it to the local Minari store.

    The real ``PointMaze_{UMaze,Medium,Large}-v3`` environment is run with
    ``continuing_task=True, reset_target=True`` and a time limit of ``episode_length``:
    starts and goals are drawn by the environment's own reset, and each time the ball
    reaches its goal (within 0.45) the environment draws a new one. A
    :class:`WaypointController` (shortest path over cells + noisy PD) chooses the
    actions. Observations are the environment's dict observations (``observation``
    ``[x, y, vx, vy]``, ``achieved_goal``, ``desired_goal``); infos hold ``success``.
    Rewards are the environment's sparse rewards, terminations are always ``False``
    and every episode ends with a truncation.

    The dataset is written with :func:`minari.create_dataset_from_buffers`, with
    ``env_spec`` set (so ``dataset.recover_environment()`` rebuilds the collection
    env) and ``eval_env_spec`` set to the same maze with a fixed goal per episode
    (``reset_target=False``) and the env's registered time limit. The generator
    settings and statistics, including the measured goal-reaching rate, are stored in
    the metadata entry ``"torchrl_skills_generator"``
    (``minari.load_dataset(id).storage.metadata["torchrl_skills_generator"]``) and
    summarised in the description. The dataset directory is moved into place only
    once complete, so an interrupted run leaves nothing behind.

    Args:
        maze (str or list, optional): ``"umaze"``, ``"medium"`` or ``"large"``, or any layout
            the gymnasium-robotics env accepts as ``maze_map`` (a list of rows, ``1`` = wall; its
            dataset name is ``custom-<hash of the layout>`` and the layout is stored in the
            metadata). Defaults to ``"medium"``.
        num_steps (int, optional): total number of transitions. Defaults to
            :data:`DEFAULT_NUM_STEPS` (300k, about 10 s); use :data:`FULL_NUM_STEPS`
            for the full 1M-step dataset.
        episode_length (int, optional): steps per episode; the last episode is shorter
            if ``num_steps`` is not a multiple of it. Defaults to ``1000``.
        seed (int, optional): seed of the environment and of the action noise.
            Defaults to ``0``.
        action_noise (float, optional): standard deviation of the Gaussian action
            noise. Defaults to ``0.5``.
        dataset_id (str, optional): Minari id to write. Defaults to
            :func:`pointmaze_dataset_id` ``(maze, num_steps=num_steps)``.
        overwrite (bool, optional): replace an existing dataset with the same id.
            Defaults to ``False`` (an existing dataset raises ``FileExistsError``).
        progress (bool, optional): show a tqdm progress bar over steps. Defaults to
            ``True``.

    Keyword Args:
        kp (float, optional): PD proportional gain. Defaults to ``10.0``.
        kd (float, optional): PD velocity gain. Defaults to ``1.0``.
        goal_budget (int, optional): a goal counts as reached for the goal-reaching
            rate if reached within this many steps; goals still pending at the end of
            an episode after fewer steps are left out of the rate. Defaults to ``500``.

    Returns:
        the dataset id.

    Examples:
        >>> import minari
        >>> dataset_id = generate_pointmaze_dataset(
        ...     "umaze", num_steps=2000, episode_length=500, progress=False, overwrite=True
        ... )
        >>> dataset_id
        'torchrl_skills/pointmaze/umaze-2000steps-v0'
        >>> dataset = minari.load_dataset(dataset_id)
        >>> dataset.total_steps, dataset.total_episodes
        (2000, 4)
        >>> dataset.storage.metadata["torchrl_skills_generator"]["goal_reaching_rate"]
        1.0
    """
    import gymnasium as gym

    from torchrl_skills.utils.third_party import import_gymnasium_robotics

    gymnasium_robotics = import_gymnasium_robotics()  # without its AdroitHand notice
    maze_name = _check_maze(maze)
    sizes = {"num_steps": num_steps, "episode_length": episode_length, "goal_budget": goal_budget}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if num_steps < episode_length:
        raise ValueError(
            f"num_steps ({num_steps}) must be at least episode_length ({episode_length})."
        )
    if action_noise < 0:
        raise ValueError(f"action_noise must be >= 0, got {action_noise}.")
    if dataset_id is None:
        dataset_id = pointmaze_dataset_id(maze, num_steps=num_steps)
    check_new_dataset(dataset_id, overwrite, ", or use ensure_pointmaze_dataset() to reuse it")

    gym.register_envs(gymnasium_robotics)
    layout = None if isinstance(maze, str) else _check_layout(maze)
    env_id = MAZES["umaze"] if layout is not None else MAZES[_check_maze(maze)]
    layout_kwargs = {} if layout is None else {"maze_map": layout}
    start = time.perf_counter()
    env = gym.make(
        env_id, continuing_task=True, reset_target=True, max_episode_steps=episode_length, **layout_kwargs
    )
    try:
        planner = MazeGrid.from_gymnasium_robotics(env)
        controller = WaypointController(planner, kp=kp, kd=kd, action_noise=action_noise)
        episodes, stats = _collect(
            env,
            controller,
            num_steps=num_steps,
            episode_length=episode_length,
            seed=seed,
            goal_budget=goal_budget,
            progress=progress,
            description=f"PointMaze {maze_name}",
        )
        eval_spec = dataclasses.replace(
            env.spec,
            kwargs={**env.spec.kwargs, "continuing_task": True, "reset_target": False},
            max_episode_steps=gym.spec(env_id).max_episode_steps,
        )
        collection_time = time.perf_counter() - start

        settings = {
            "generator": "torchrl_skills.data.pointmaze",
            "env_id": env_id,
            "maze": maze_name,
            **({} if layout is None else {"maze_map": layout}),
            "num_steps": int(num_steps),
            "episode_length": int(episode_length),
            "seed": int(seed),
            "action_noise": float(action_noise),
            "kp": float(kp),
            "kd": float(kd),
            "goal_budget": int(goal_budget),
            "planner": "bfs-next-cell (4-connected cells; next cell centre, goal in goal cell)",
        }
        description = (
            f"D4RL-style PointMaze {maze_name} dataset ({env_id}, continuing_task=True, "
            f"reset_target=True): {num_steps} steps in {len(episodes)} episodes of up to "
            f"{episode_length} steps. Actions from a shortest-path (BFS over maze cells) "
            f"waypoint planner and a PD controller, clip(kp*(waypoint-pos) - kd*vel + noise, "
            f"-1, 1) with kp={kp:g}, kd={kd:g} and Gaussian noise std {action_noise:g}; "
            f"seed {seed}. Goal-reaching rate {stats['goal_reaching_rate']:.3f} "
            f"({stats['goals_reached']} goals reached, budget {goal_budget} steps). "
            "Generated by torchrl-skills (python -m torchrl_skills.data.pointmaze)."
        )

        stats["collection_time_s"] = round(collection_time, 3)
        write_minari_dataset(
            dataset_id,
            episodes,
            env=env,
            eval_env=eval_spec,
            settings=settings,
            stats=stats,
            description=description,
            algorithm_name="torchrl_skills BFS waypoint planner + noisy PD controller",
            requirements=["gymnasium-robotics>=1.3", "mujoco>=3.0"],
            overwrite=overwrite,
            start_time=start,
        )
    finally:
        env.close()
    return dataset_id


def ensure_pointmaze_dataset(maze: str | list = "medium", full: bool = False, **kwargs) -> str:
    """Returns the id of a generated PointMaze dataset, generating it only if missing.

    A dataset counts as present when the local Minari store holds a complete dataset
    written by :func:`generate_pointmaze_dataset` under the id. If it was generated
    with settings other than the ones passed here, a warning is raised and the stored
    dataset is still returned (pass ``overwrite=True`` to regenerate).

    Args:
        maze (str or list, optional): ``"umaze"``, ``"medium"`` or ``"large"``, or a custom
            layout (see :func:`generate_pointmaze_dataset`). Defaults to ``"medium"``.
        full (bool, optional): the full 1M-step dataset rather than the default size.
            Defaults to ``False``.
        **kwargs: forwarded to :func:`generate_pointmaze_dataset` (``num_steps``, if
            given, overrides ``full``).

    Examples:
        >>> dataset_id = ensure_pointmaze_dataset("umaze", num_steps=2000, progress=False)
        >>> ensure_pointmaze_dataset("umaze", num_steps=2000) == dataset_id  # no work
        True
    """
    name = _check_maze(maze)
    kwargs.setdefault("num_steps", FULL_NUM_STEPS if full else DEFAULT_NUM_STEPS)
    dataset_id = kwargs.get("dataset_id") or pointmaze_dataset_id(maze, num_steps=kwargs["num_steps"])
    kwargs["dataset_id"] = dataset_id
    ignored = ("dataset_id", "overwrite", "progress")
    requested = {"maze": name, **{k: v for k, v in kwargs.items() if k not in ignored}}
    hint = ""
    if isinstance(maze, str):  # a custom layout has no command line
        hint = f" (CLI: python -m torchrl_skills.data.pointmaze --maze {name} --num-steps {kwargs['num_steps']} --overwrite)"
    if not reuse_dataset(dataset_id, requested, overwrite=kwargs.get("overwrite", False), regenerate_hint=hint):
        return generate_pointmaze_dataset(maze, **kwargs)
    return dataset_id


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: ``python -m torchrl_skills.data.pointmaze``."""
    from torchrl_skills.utils.cli import ArgumentParser, positive_int

    parser = ArgumentParser(
        prog="python -m torchrl_skills.data.pointmaze",
        description=(
            "Generate a D4RL-style PointMaze dataset (waypoint planner + noisy PD "
            "controller) into the local Minari store (MINARI_DATASETS_PATH or "
            "~/.minari/datasets). The dataset is written only when complete: a run "
            "stopped with Ctrl-C or SIGTERM writes nothing."
        ),
    )
    parser.add_argument("--maze", default="medium", choices=sorted(MAZES), help="maze layout (default: %(default)s)")
    parser.add_argument(
        "--maze-map",
        default=None,
        help="a custom layout as JSON, e.g. '[[1,1,1,1],[1,0,0,1],[1,1,1,1]]' (1 = wall); overrides --maze",
    )
    parser.add_argument(
        "--full", action="store_true", help=f"generate the full {FULL_NUM_STEPS:,}-step dataset"
    )
    parser.add_argument(
        "--num-steps", type=positive_int, default=None,
        help=f"number of steps (None: {DEFAULT_NUM_STEPS:,}, or {FULL_NUM_STEPS:,} with --full)",
    )
    parser.add_argument("--episode-length", type=positive_int, default=DEFAULT_EPISODE_LENGTH,
                        help="steps per episode (the env's time limit)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env and the controller's noise")
    parser.add_argument("--action-noise", type=float, default=DEFAULT_ACTION_NOISE,
                        help="std of the Gaussian noise added to the PD controller's actions")
    parser.add_argument("--dataset-id", default=None, help="override the Minari dataset id")
    parser.add_argument("--overwrite", action="store_true", help="regenerate if the dataset exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.full and args.num_steps is not None and args.num_steps != FULL_NUM_STEPS:
        parser.error("--full and --num-steps are mutually exclusive")
    num_steps = args.num_steps or (FULL_NUM_STEPS if args.full else DEFAULT_NUM_STEPS)
    if args.maze_map is not None:
        try:
            args.maze = _check_layout(json.loads(args.maze_map))
            _check_maze(args.maze)
        except ValueError as err:
            parser.error(f"--maze-map: {err}")
    dataset_id = args.dataset_id or pointmaze_dataset_id(args.maze, num_steps=num_steps)

    existing = None if args.overwrite else _read_metadata(dataset_id)
    if existing is None:
        try:
            generate_pointmaze_dataset(
                args.maze,
                num_steps=num_steps,
                episode_length=args.episode_length,
                seed=args.seed,
                action_noise=args.action_noise,
                dataset_id=dataset_id,
                overwrite=args.overwrite,
                progress=not args.no_progress,
            )
        except (ValueError, FileExistsError) as err:
            parser.error(str(err))
        status = "generated"
    else:
        status = "already present; --overwrite regenerates it"
    info = _read_metadata(dataset_id)
    stats = info[GENERATOR_METADATA_KEY]
    print(f"dataset id:         {dataset_id} ({status})")
    print(f"path:               {_dataset_path(dataset_id)}")
    print(f"steps / episodes:   {info['total_steps']} / {info['total_episodes']}")
    print(f"generation time:    {stats['generation_time_s']:.1f} s "
          f"({stats['num_steps'] / stats['generation_time_s']:,.0f} steps/s)")
    print(f"goal-reaching rate: {stats['goal_reaching_rate']:.4f} "
          f"({stats['goals_reached']} goals reached, {stats['goals_timed_out']} timed out, "
          f"budget {stats['goal_budget']} steps, mean {stats['mean_steps_to_goal']:.1f} steps/goal)")


if __name__ == "__main__":
    from torchrl_skills.utils.cli import run_cli

    run_cli(main, interrupted="no dataset was written (it is written only when complete); run the same command again")
