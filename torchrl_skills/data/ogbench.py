"""OGBench "navigate" datasets, regenerated locally with OGBench's documented procedure.

OGBench (Park et al., 2024) publishes its datasets for download only; where they cannot be
downloaded, this module regenerates them from the real OGBench environments, following the
procedure of OGBench's ``data_gen_scripts/generate_locomaze.py`` and ``commands.sh``:

* env ``pointmaze-{maze}-v0`` with ``terminate_at_goal=False``; ``navigate`` datasets hold 1000
  episodes of 1001 steps (giant: 500 of 2001), plus ``num_episodes // 10`` validation episodes
  (a separate ``-val`` dataset);
* each episode starts in a cell drawn uniformly from all free cells, with a goal drawn from the
  "vertex" cells (free cells that are not straight corridors); the env adds uniform noise of
  +-1 m (a quarter cell) to both, from the global ``np.random``;
* at each step the expert is given the unit direction to the env's next BFS subgoal (the centre
  of the next cell on a shortest path to the goal's cell, OGBench's ``get_oracle_subgoal``): the
  point's expert action *is* that direction; an ant or humanoid expert maps
  ``concat(observation[2:], direction)`` to an action; Gaussian noise is added (0.5 for the point,
  0.2 for the ant) and the action clipped to [-1, 1];
* when the agent reaches its goal (``info["success"]``: within 1 m for the point), a new goal is
  drawn from the vertex cells (``env.unwrapped.set_goal(goal_ij)``, noise added again).

Many envs run side by side: the subgoals and the expert's actions of all of them come from one
vectorised computation through :class:`~torchrl_skills.data.maze_grid.MazeGrid` (a lookup table
instead of a BFS per step); only the MuJoCo steps are per env. The datasets are written to the
local Minari store under ``torchrl_skills/ogbench/`` and read back like any Minari dataset (e.g.
:class:`~torchrl_skills.data.SkillDataset` with ``state_key=None`` or ``"observation"``).

From the command line::

    python -m torchrl_skills.data.ogbench --dataset pointmaze-medium-navigate-v0          # small, seconds
    python -m torchrl_skills.data.ogbench --dataset pointmaze-medium-navigate-v0 --full   # published size
"""
from __future__ import annotations

import concurrent.futures
import functools
import os
import re
import time
from collections.abc import Callable, Sequence

import numpy as np

from torchrl_skills.data.goal_reaching import dataset_goal_reaching_stats, goal_reaching_stats
from torchrl_skills.data.maze_grid import MazeGrid
from torchrl_skills.data.minari_store import (
    GENERATOR_METADATA_KEY,
    check_new_dataset,
    dataset_path,
    read_generator_metadata,
    reuse_dataset,
    write_minari_dataset,
)

__all__ = [
    "NAVIGATE_SIZES",
    "ensure_ogbench_dataset",
    "generate_ogbench_dataset",
    "ogbench_dataset_id",
    "parse_ogbench_name",
]

NAMESPACE = "torchrl_skills/ogbench"
#: Published sizes of OGBench's navigate datasets: (episodes, steps per episode).
NAVIGATE_SIZES = {"medium": (1000, 1001), "large": (1000, 1001), "giant": (500, 2001), "teleport": (1000, 1001)}
#: Small default sizes: a tenth of the episodes, generated in seconds.
SMALL_SIZES = {"medium": 100, "large": 100, "giant": 50, "teleport": 100}
#: OGBench's action noise of the navigate datasets, per agent.
NOISE = {"point": 0.5, "ant": 0.2, "humanoid": 0.2}
#: A goal counts for the goal-reaching rate if reached within this many steps of being set: the
#: 1000 steps that OGBench's evaluation gives every navigate task (``max_episode_steps`` of its
#: maze envs). A fixed shorter budget would fail goals for being far: on giant, 15% of the
#: goals lie farther along the maze than the ant expert walks in 500 steps at its median speed.
GOAL_BUDGET = 1000
#: The budget of the datasets written before it was recorded in their metadata.
LEGACY_GOAL_BUDGET = 500

_NAME_RE = re.compile(r"(point|ant|humanoid)maze-(medium|large|giant|teleport)-navigate-v0")

Expert = Callable[[np.ndarray, np.ndarray], np.ndarray]


def parse_ogbench_name(dataset: str) -> tuple[str, str]:
    """``(agent, maze)`` of an OGBench navigate dataset name, e.g. ``("point", "medium")``."""
    match = _NAME_RE.fullmatch(str(dataset))
    if match is None:
        raise ValueError(
            f"Unknown OGBench navigate dataset {dataset!r}: expected '<agent>maze-<maze>-navigate-v0' with agent "
            "point|ant|humanoid and maze medium|large|giant|teleport, e.g. 'pointmaze-medium-navigate-v0'."
        )
    return match.group(1), match.group(2)


def ogbench_dataset_id(
    dataset: str = "pointmaze-medium-navigate-v0", full: bool = False, num_episodes: int | None = None, val: bool = False
) -> str:
    """Minari id of a regenerated OGBench dataset.

    The published size is ``torchrl_skills/ogbench/<name>`` (e.g. ``.../pointmaze-medium-navigate-v0``),
    the small default ``...-navigate-small-v0`` and any other episode count ``...-navigate-<N>ep-v0``.
    OGBench's validation split of each (a tenth of its episodes, another seed; OGBench saves it
    as ``<name>-val.npz``) appends ``-val``: ``...-navigate-val-v0``, ``...-navigate-small-val-v0``,
    ``...-navigate-<N>ep-val-v0``.

    Args:
        dataset (str, optional): OGBench name. Defaults to ``"pointmaze-medium-navigate-v0"``.
        full (bool, optional): the published size. Defaults to ``False`` (the small default).
        num_episodes (int, optional): any other number of training episodes (overrides ``full``).
        val (bool, optional): the validation split of that size. Defaults to ``False``.

    Examples:
        >>> ogbench_dataset_id("pointmaze-large-navigate-v0", full=True)
        'torchrl_skills/ogbench/pointmaze-large-navigate-v0'
        >>> ogbench_dataset_id("pointmaze-large-navigate-v0")
        'torchrl_skills/ogbench/pointmaze-large-navigate-small-v0'
        >>> ogbench_dataset_id("pointmaze-large-navigate-v0", num_episodes=7)
        'torchrl_skills/ogbench/pointmaze-large-navigate-7ep-v0'
        >>> ogbench_dataset_id("pointmaze-large-navigate-v0", full=True, val=True)
        'torchrl_skills/ogbench/pointmaze-large-navigate-val-v0'
    """
    agent, maze = parse_ogbench_name(dataset)
    published = NAVIGATE_SIZES[maze][0]
    if num_episodes is None:
        size = "" if full else "-small"
    else:
        _check_positive("num_episodes", num_episodes)
        size = "" if num_episodes == published else f"-{int(num_episodes)}ep"
    return f"{NAMESPACE}/{agent}maze-{maze}-navigate{size}{'-val' if val else ''}-v0"


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _point_expert(agent_obs: np.ndarray, direction: np.ndarray) -> np.ndarray:
    # OGBench's point "expert" is the subgoal direction itself.
    return direction


def _resolve_expert(agent: str, dataset: str, expert):
    """The expert callable: the point's direction oracle, the shipped ant expert, a path to an
    expert file, or the user's callable."""
    if expert is None and agent == "point":
        return _point_expert
    if expert is None and agent == "ant":
        from torchrl_skills.modules.direction_expert import load_direction_expert

        return load_direction_expert()
    if expert is None:
        raise ValueError(
            f"{dataset} needs a trained {agent} expert: pass expert=callable(agent_obs, direction) -> actions "
            "or the path of an expert file (examples/train_ant_expert.py writes one)."
        )
    if isinstance(expert, (str, os.PathLike)):
        from torchrl_skills.modules.direction_expert import load_direction_expert

        return load_direction_expert(expert)
    if not callable(expert):
        raise TypeError(f"expert must be a callable or the path of an expert file, got {type(expert).__name__}.")
    return expert


def generate_ogbench_dataset(
    dataset: str = "pointmaze-medium-navigate-v0",
    full: bool = False,
    num_episodes: int | None = None,
    episode_length: int | None = None,
    noise: float | None = None,
    seed: int = 0,
    num_envs: int = 16,
    num_workers: int = 1,
    val: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    expert: Expert | None = None,
    dataset_id: str | None = None,
    goal_budget: int = GOAL_BUDGET,
) -> str:
    """Regenerates an OGBench navigate dataset into the local Minari store (see the module docstring).

    Args:
        dataset (str, optional): OGBench name, e.g. ``"pointmaze-giant-navigate-v0"``.
        full (bool, optional): the published number of episodes. Defaults to ``False`` (the small
            default: a tenth of them).
        num_episodes (int, optional): any other number of episodes (overrides ``full``).
        episode_length (int, optional): steps per episode. Defaults to OGBench's (1001; giant 2001).
        noise (float, optional): std of the Gaussian action noise. Defaults to OGBench's (point 0.5).
        seed (int, optional): seeds the cells, the action noise and the env's own noise (through the
            global ``np.random``, which OGBench's env uses); each chunk of ``num_envs`` episodes
            is seeded from ``(seed, first episode)``, so the data is repeatable for a given ``seed``
            and ``num_envs``. Defaults to ``0``.
        num_envs (int, optional): envs stepped side by side in each process. Defaults to ``16``.
        num_workers (int, optional): processes generating chunks of ``num_envs`` episodes in
            parallel. The data is the same for any number of workers. Defaults to ``1``.
        val (bool, optional): OGBench's validation split instead: ``num_episodes // 10`` episodes
            (of the requested size) with seed ``seed + 1``, id ``...-navigate-val-v0``.
        overwrite (bool, optional): regenerate an existing dataset. Defaults to ``False``.
        progress (bool, optional): a tqdm bar over steps. Defaults to ``True``.
        expert (callable or path, optional): ``expert(agent_obs [M, d], direction [M, 2]) -> actions
            [M, A]``, batched over the envs, with ``agent_obs = observation[:, 2:]``, or the path of an
            expert file (:func:`~torchrl_skills.modules.direction_expert.save_direction_expert`).
            Defaults to the point's direction oracle, and for the ant to the expert shipped with the
            package (:func:`~torchrl_skills.modules.direction_expert.load_direction_expert`).
        dataset_id (str, optional): override the Minari id.
        goal_budget (int, optional): a goal counts for the recorded goal-reaching rate if reached
            within this many steps (:func:`~torchrl_skills.data.goal_reaching.goal_reaching_stats`).
            Defaults to ``1000``, OGBench's evaluation episode length. It changes only the recorded
            statistics, not the data; :func:`~torchrl_skills.data.goal_reaching.dataset_goal_reaching_stats`
            rescores stored data with another budget.

    Returns:
        the dataset id.

    Examples:
        >>> import minari
        >>> dataset_id = generate_ogbench_dataset("pointmaze-medium-navigate-v0", num_episodes=2,
        ...                                       episode_length=300, progress=False, overwrite=True)
        >>> minari.load_dataset(dataset_id).total_steps
        600
    """
    import gymnasium
    import ogbench.locomaze  # noqa: F401  (registers the envs)
    from tqdm.auto import tqdm

    agent, maze = parse_ogbench_name(dataset)
    published_episodes, published_length = NAVIGATE_SIZES[maze]
    if dataset_id is None:
        dataset_id = ogbench_dataset_id(dataset, full=full, num_episodes=num_episodes, val=val)
    if num_episodes is None:
        num_episodes = published_episodes if full else SMALL_SIZES[maze]
    if val:
        num_episodes, seed = max(1, num_episodes // 10), seed + 1
    episode_length = published_length if episode_length is None else episode_length
    noise = NOISE[agent] if noise is None else noise
    for name, value in {"num_episodes": num_episodes, "episode_length": episode_length, "num_envs": num_envs}.items():
        _check_positive(name, value)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    expert = _resolve_expert(agent, dataset, expert)
    _check_positive("num_workers", num_workers)
    _check_positive("goal_budget", goal_budget)
    check_new_dataset(dataset_id, overwrite, ", or use ensure_ogbench_dataset() to reuse it")

    start = time.perf_counter()
    env_id = f"{agent}maze-{maze}-v0"
    num_envs = min(num_envs, num_episodes)
    # Chunks of num_envs episodes are independent (each seeded from (seed, chunk index)), so the
    # data does not depend on how many worker processes produced them.
    chunks = [(first, min(num_envs, num_episodes - first)) for first in range(0, num_episodes, num_envs)]
    job = functools.partial(
        _collect_chunk, env_id=env_id, episode_length=episode_length, noise=noise, seed=seed, expert=expert
    )
    episodes = []
    bar = tqdm(total=num_episodes * episode_length, desc=dataset, unit="step", unit_scale=True, disable=not progress)
    with bar:
        if num_workers > 1 and len(chunks) > 1:
            import multiprocessing

            with concurrent.futures.ProcessPoolExecutor(
                min(num_workers, len(chunks)), mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_sigint,
            ) as pool:
                try:
                    outputs = pool.map(job, chunks)
                    for buffers in outputs:
                        episodes += buffers
                        bar.update(len(buffers) * episode_length)
                except BaseException:
                    # Ctrl-C / SIGTERM / an error: only the running chunks are waited for
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        else:
            for chunk in chunks:
                episodes += job(chunk, bar=bar)
    collection_time = time.perf_counter() - start
    stats = {
        **goal_reaching_stats((episode.infos["success"] for episode in episodes), goal_budget),
        "collection_time_s": round(collection_time, 3),
        "steps_per_s": round(num_episodes * episode_length / collection_time, 1),
    }
    settings = {
        "generator": "torchrl_skills.data.ogbench",
        "ogbench_dataset": dataset,
        "env_id": env_id,
        "dataset_type": "navigate",
        "split": "val" if val else "train",
        "num_episodes": int(num_episodes),
        "episode_length": int(episode_length),
        "noise": float(noise),
        "seed": int(seed),
        "num_envs": int(num_envs),
        "num_workers": int(num_workers),
        "expert": "direction oracle" if expert is _point_expert else getattr(expert, "__name__", type(expert).__name__),
    }
    if hasattr(expert, "metrics"):  # a trained DirectionExpert: how it was trained and how fast it walks
        settings["expert_metrics"] = dict(expert.metrics)
        # the steps it was trained for (an interim export of a longer run has fewer than its --steps)
        settings["expert_env_steps"] = expert.metrics.get("env_steps", expert.settings.get("steps"))
    description = (
        f"OGBench {dataset} regenerated with OGBench's procedure (generate_locomaze.py, navigate): "
        f"{num_episodes} episodes of {episode_length} steps in {env_id} (terminate_at_goal=False); starts from all free "
        f"cells, goals from vertex cells, a new goal on arrival; expert heading for the next BFS subgoal, Gaussian "
        f"action noise std {noise:g}, clipped to [-1, 1]; seed {seed}. Goal-reaching rate "
        f"{stats['goal_reaching_rate']:.3f}. Generated by torchrl-skills (python -m torchrl_skills.data.ogbench)."
    )
    # The collection env's spec (terminate_at_goal=False, the episode length) is stored so that
    # dataset.recover_environment() rebuilds it; the eval spec is OGBench's evaluation setting
    # (terminate at the goal, 1000 steps).
    env = gymnasium.make(env_id, terminate_at_goal=False, max_episode_steps=episode_length)
    eval_env = gymnasium.make(env_id)
    try:
        write_minari_dataset(
            dataset_id,
            episodes,
            env=env,
            eval_env=eval_env.spec,
            settings=settings,
            stats=stats,
            description=description,
            algorithm_name=f"OGBench navigate procedure, BFS-subgoal {agent} expert",
            requirements=["ogbench>=1.1", "mujoco>=3.1.6"],
            overwrite=overwrite,
            start_time=start,
        )
    finally:
        env.close()
        eval_env.close()
    return dataset_id


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group, and only the parent handles it
    (it stops the generation); workers finish their chunk quietly instead of printing tracebacks."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _collect_chunk(chunk, env_id, episode_length, noise, seed, expert, bar=None):
    """Runs ``chunk = (first episode, count)`` episodes side by side; returns their episode buffers."""
    import gymnasium
    import ogbench.locomaze  # noqa: F401  (registers the envs)

    first, m = chunk
    rng = np.random.default_rng([seed, first])
    np.random.seed(rng.integers(2**32))  # OGBench's env draws its start/goal noise from the global generator
    envs = [gymnasium.make(env_id, terminate_at_goal=False, max_episode_steps=episode_length) for _ in range(m)]
    # The episode length is enforced here, so the raw MazeEnv is stepped directly: gymnasium's
    # wrappers (time limit, order enforcing, passive checker) cost more than the point's physics.
    live = [env.unwrapped for env in envs]
    grid = MazeGrid.from_ogbench(envs[0])
    free, vertex = grid.free_cells(), grid.vertex_cells()
    obs = []
    for env in live:
        init_ij, goal_ij = free[rng.integers(len(free))], vertex[rng.integers(len(vertex))]
        env.reset(seed=int(rng.integers(2**31)), options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij)))
        obs.append(env.get_ob())
    obs_dim = len(obs[0])
    observations = np.empty((m, episode_length + 1, obs_dim))
    actions = np.empty((m, episode_length, envs[0].action_space.shape[0]), dtype=np.float32)
    rewards = np.empty((m, episode_length))
    success = np.zeros((m, episode_length + 1), dtype=bool)
    goals = np.empty((m, episode_length + 1, 2))
    qpos = np.empty((m, episode_length + 1, live[0].data.qpos.size))
    qvel = np.empty((m, episode_length + 1, live[0].data.qvel.size))
    observations[:, 0] = obs
    goals[:, 0] = [env.cur_goal_xy for env in live]
    qpos[:, 0] = [env.data.qpos for env in live]
    qvel[:, 0] = [env.data.qvel for env in live]
    action_noise = rng.normal(0.0, noise, size=actions.shape)
    steps = [env.step for env in live]
    for t in range(episode_length):
        xy = np.stack([env.get_xy() for env in live])
        direction = grid.oracle_subgoal(xy, goals[:, t]) - xy
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-6
        act = np.asarray(expert(observations[:, t, 2:], direction), dtype=np.float64)
        actions[:, t] = np.clip(act + action_noise[:, t], -1.0, 1.0)
        for k, step in enumerate(steps):  # separate MuJoCo models: one step call each
            ob, rewards[k, t], _, _, info = step(actions[k, t])
            observations[k, t + 1] = ob
            success[k, t + 1] = info["success"]
            qpos[k, t + 1], qvel[k, t + 1] = info["qpos"], info["qvel"]
        goals[:, t + 1] = goals[:, t]
        for k in np.flatnonzero(success[:, t + 1]):  # only the few envs that just arrived
            live[k].set_goal(vertex[rng.integers(len(vertex))])
            goals[k, t + 1] = live[k].cur_goal_xy
        if bar is not None:
            bar.update(m)
    for env in envs:
        env.close()
    return [
        _episode_buffer(first + k, observations[k], actions[k], rewards[k], success[k], goals[k], qpos[k], qvel[k])
        for k in range(m)
    ]


def _episode_buffer(index, observations, actions, rewards, success, goals, qpos, qvel):
    from minari.data_collector.episode_buffer import EpisodeBuffer

    n = len(actions)
    truncations = np.zeros(n, dtype=bool)
    truncations[-1] = True
    return EpisodeBuffer(
        id=index,
        observations=observations.astype(np.float32),
        actions=actions,
        rewards=rewards,
        terminations=np.zeros(n, dtype=bool),
        truncations=truncations,
        infos={"success": success, "goal": goals, "qpos": qpos, "qvel": qvel},
    )


def ensure_ogbench_dataset(dataset: str = "pointmaze-medium-navigate-v0", full: bool = False, **kwargs) -> str:
    """The id of a regenerated OGBench dataset, generating it only if it is missing.

    Args:
        dataset (str, optional): OGBench name. Defaults to ``"pointmaze-medium-navigate-v0"``.
        full (bool, optional): the published size. Defaults to ``False``.
        **kwargs: passed to :func:`generate_ogbench_dataset`.

    Examples:
        >>> dataset_id = ensure_ogbench_dataset(num_episodes=2, episode_length=100, progress=False)
        >>> ensure_ogbench_dataset(num_episodes=2, episode_length=100) == dataset_id  # no work
        True
    """
    dataset_id = kwargs.get("dataset_id") or ogbench_dataset_id(
        dataset, full=full, num_episodes=kwargs.get("num_episodes"), val=kwargs.get("val", False)
    )
    # Only settings that change the data of a given id are compared with the stored ones.
    requested = {k: kwargs[k] for k in ("episode_length", "noise", "seed") if kwargs.get(k) is not None}
    if kwargs.get("val") and "seed" in requested:
        requested["seed"] += 1  # the validation split is stored with its own seed
    if read_generator_metadata(dataset_id) is not None and not callable(kwargs.get("expert")):
        # Ant data depends on the expert that walked it: a dataset made by another (e.g. an
        # interim export) is still reused, but with a warning that names the difference.
        agent, _ = parse_ogbench_name(dataset)
        if agent != "point":
            expert = _resolve_expert(agent, dataset, kwargs.get("expert"))
            if hasattr(expert, "metrics"):
                requested["expert_env_steps"] = expert.metrics.get("env_steps", expert.settings.get("steps"))
    hint = f" (CLI: python -m torchrl_skills.data.ogbench --dataset {dataset}{' --full' if full else ''} --overwrite)"
    if reuse_dataset(dataset_id, requested, overwrite=kwargs.get("overwrite", False), regenerate_hint=hint):
        return dataset_id
    return generate_ogbench_dataset(dataset, full=full, **{**kwargs, "dataset_id": dataset_id})


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m torchrl_skills.data.ogbench --dataset pointmaze-medium-navigate-v0``."""
    from torchrl_skills.utils.cli import ArgumentParser, positive_int

    parser = ArgumentParser(
        prog="python -m torchrl_skills.data.ogbench",
        description="Regenerate an OGBench navigate dataset with OGBench's procedure into the local Minari store "
        "(MINARI_DATASETS_PATH or ~/.minari/datasets). The dataset is written only when complete: a run stopped "
        "with Ctrl-C or SIGTERM writes nothing.",
    )
    parser.add_argument("--dataset", default="pointmaze-medium-navigate-v0", help="OGBench name (default: %(default)s)")
    parser.add_argument("--full", action="store_true", help="the published size (1000 x 1001 steps; giant 500 x 2001)")
    parser.add_argument("--num-episodes", type=positive_int, default=None, help="episodes (None: a tenth of the published)")
    parser.add_argument("--val", action="store_true", help="OGBench's validation split (a tenth of the episodes)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--num-envs", type=positive_int, default=16, help="envs stepped side by side (default: %(default)s)")
    parser.add_argument("--num-workers", type=positive_int, default=1, help="generating processes (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate if the dataset exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--expert", default=None,
                        help="ant mazes: an expert file from examples/train_ant_expert.py (default: the shipped expert)")
    parser.add_argument("--goal-budget", type=positive_int, default=GOAL_BUDGET,
                        help="steps within which a goal counts as reached in the goal-reaching rate; an existing dataset "
                             "is rescored with it (default: %(default)s, OGBench's evaluation episode length)")
    args = parser.parse_args(argv)
    try:
        dataset_id = ogbench_dataset_id(args.dataset, full=args.full, num_episodes=args.num_episodes, val=args.val)
        status = "already present; --overwrite regenerates it"
        if args.overwrite or read_generator_metadata(dataset_id) is None:
            generate_ogbench_dataset(
                args.dataset, full=args.full, num_episodes=args.num_episodes, seed=args.seed, num_envs=args.num_envs, num_workers=args.num_workers,
                val=args.val, overwrite=args.overwrite, progress=not args.no_progress, expert=args.expert,
                goal_budget=args.goal_budget,
            )  # fmt: skip
            status = "generated"
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as err:
        parser.error(str(err))
    info = read_generator_metadata(dataset_id)
    stats = info[GENERATOR_METADATA_KEY]
    print(f"dataset id:         {dataset_id} ({status})")
    print(f"path:               {dataset_path(dataset_id)}")
    print(f"steps / episodes:   {info['total_steps']} / {info['total_episodes']}")
    print(f"generation time:    {stats['generation_time_s']:.1f} s ({stats['steps_per_s']:,.0f} steps/s collecting)")
    goals, note = stats, ""
    # datasets written before the budget was recorded used 500 steps
    if stats.get("goal_budget", LEGACY_GOAL_BUDGET) != args.goal_budget:
        goals, note = dataset_goal_reaching_stats(dataset_id, args.goal_budget), ", rescored from the stored episodes"
    print(
        f"goal-reaching rate: {goals['goal_reaching_rate']:.4f} ({goals['goals_reached']} goals reached, "
        f"{goals['goals_timed_out']} timed out within {args.goal_budget} steps{note}; "
        f"mean {goals['mean_steps_to_goal']:.1f} steps/goal)"
    )
    if "software" in stats:  # datasets written before versions were recorded have none
        print(f"generated with:     {', '.join(f'{k} {v}' for k, v in stats['software'].items())}")


if __name__ == "__main__":
    from torchrl_skills.utils.cli import run_cli

    run_cli(main, interrupted="no dataset was written (it is written only when complete); run the same command again")
