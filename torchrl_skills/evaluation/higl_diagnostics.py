"""Diagnostics of a HIGL agent on a maze: which part works, the encoder, the low level or the high level?

A HIGL agent that fails a maze task can fail in three places; each function here looks at one
of them on its own:

- **the encoder** ``E``: do latent distances follow the maze's shortest paths (around the walls,
  not through them)? :func:`latent_vs_shortest_path` compares ``||E(a) - E(b)||`` with the
  breadth-first-search distance in cells between the cells of ``a`` and ``b`` (Spearman rank
  correlation), :func:`plot_latent_vs_shortest_path` draws it;
- **the low level** alone: can it reach a goal one or two cells away when it pursues the goal's
  own latent, with no high level? :func:`low_level_success` runs it on such tasks
  (:class:`NearbyGoalWrapper` draws them, :class:`LatentGoalReacher` is the policy);
- **the high level**: where are the latent goals it emits? :func:`nearest_states` decodes them
  (the candidate state whose latent is nearest), :func:`plot_high_level_goals` draws them along
  the executed path.

Everything works on a batch at once: one encoder call for all states, one ``cdist`` for all
goals, all episodes side by side in one batched env.
"""
from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import nn

from torchrl_skills.data.maze_grid import MazeGrid
from torchrl_skills.utils.outputs import save_figure

__all__ = [
    "LatentGoalReacher",
    "NearbyGoalWrapper",
    "latent_vs_shortest_path",
    "low_level_success",
    "nearest_states",
    "plot_high_level_goals",
    "plot_latent_vs_shortest_path",
    "sample_free_positions",
]


# ------------------------------------------------------------------------------------ the encoder
def sample_free_positions(
    grid: MazeGrid, num_positions: int, generator: torch.Generator | None = None, *, obs_dim: int = 2
) -> torch.Tensor:
    """Positions drawn uniformly over the free area of a maze, as observations at rest.

    Each position lies strictly inside a free cell (uniform over the union of the free cells);
    ``obs_dim > 2`` pads it with zeros, e.g. ``[x, y, 0, 0]`` for PointMaze's ``[x, y, vx, vy]``.

    Args:
        grid (MazeGrid): the maze.
        num_positions (int): how many positions.
        generator (torch.Generator, optional): the random generator. Defaults to torch's global one.

    Keyword Args:
        obs_dim (int): observation size (``>= 2``): ``x, y`` then zeros. Defaults to 2.

    Returns:
        a float32 tensor ``[num_positions, obs_dim]``.

    Examples:
        >>> import torch
        >>> from gymnasium_robotics.envs.maze.maps import U_MAZE
        >>> from torchrl_skills.data.maze_grid import MazeGrid
        >>> grid = MazeGrid(U_MAZE)
        >>> obs = sample_free_positions(grid, 100, torch.Generator().manual_seed(0), obs_dim=4)
        >>> obs.shape, bool((grid.shortest_path_length(obs[:, :2].numpy(), obs[:1, :2].numpy()) >= 0).all())
        (torch.Size([100, 4]), True)
    """
    if num_positions < 1 or obs_dim < 2:
        raise ValueError(f"num_positions must be >= 1 and obs_dim >= 2, got {num_positions} and {obs_dim}.")
    centres = torch.as_tensor(grid.cell_centres[grid.free.ravel()], dtype=torch.float32)
    cell = torch.randint(len(centres), (num_positions,), generator=generator)
    # offsets in (-s/2, s/2), shrunk by a hair so that no position falls on a cell border
    offset = (torch.rand(num_positions, 2, generator=generator) - 0.5) * (grid.scaling * (1 - 1e-4))
    xy = centres[cell] + offset
    return torch.cat([xy, xy.new_zeros(num_positions, obs_dim - 2)], -1)


@torch.no_grad()
def latent_vs_shortest_path(
    encoder: nn.Module,
    grid: MazeGrid,
    observations: torch.Tensor,
    num_pairs: int = 2000,
    generator: torch.Generator | None = None,
) -> dict:
    """Latent distance against shortest-path distance in the maze, over random pairs of states.

    Draws ``num_pairs`` pairs of distinct states among ``observations``, encodes every state in
    one call and returns, per pair, ``||E(a) - E(b)||`` and the breadth-first-search distance in
    cells between the cells of ``a`` and ``b`` (:meth:`MazeGrid.shortest_path_length`; pairs with
    no path, ``-1``, are dropped), with their Spearman rank correlation. An encoder whose
    latents follow the maze's paths scores close to 1; one that only follows the straight-line
    distance scores lower, since it puts states on both sides of a wall close together.

    Args:
        encoder (nn.Module): ``E``, observations ``[N, obs_dim]`` -> latents ``[N, D]``.
        grid (MazeGrid): the maze, in the observations' world coordinates.
        observations (Tensor): ``[N, obs_dim]`` states, ``x, y`` first (``N >= 2``).
        num_pairs (int): pairs drawn (with replacement). Defaults to 2000.
        generator (torch.Generator, optional): draws the pairs. Defaults to torch's global one.

    Returns:
        a dict with ``"latent_distance"`` (``np.ndarray`` float ``[P]``), ``"path_cells"``
        (``np.ndarray`` int ``[P]``) and ``"spearman"`` (float; NaN when either is constant).

    Examples:
        >>> import torch
        >>> from gymnasium_robotics.envs.maze.maps import MEDIUM_MAZE
        >>> from torchrl_skills.data.maze_grid import MazeGrid
        >>> from torchrl_skills.modules.encoders import MLPEncoder
        >>> grid = MazeGrid(MEDIUM_MAZE)
        >>> g = torch.Generator().manual_seed(0)
        >>> states = sample_free_positions(grid, 500, g, obs_dim=4)
        >>> result = latent_vs_shortest_path(MLPEncoder(4, 8, normalize=True), grid, states, num_pairs=300, generator=g)
        >>> result["latent_distance"].shape == result["path_cells"].shape, -1 <= result["spearman"] <= 1
        (True, True)
    """
    if observations.ndim != 2 or observations.shape[0] < 2 or observations.shape[1] < 2:
        raise ValueError(f"observations must be [N >= 2, obs_dim >= 2] states with x, y first, got {tuple(observations.shape)}.")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}.")
    n = observations.shape[0]
    first = torch.randint(n, (num_pairs,), generator=generator)
    second = (first + torch.randint(1, n, (num_pairs,), generator=generator)) % n  # never the same state
    latents = encoder(observations).cpu()
    latent_distance = (latents[first] - latents[second]).norm(dim=-1).double().numpy()
    xy = observations[:, :2].detach().cpu().double().numpy()
    path_cells = grid.shortest_path_length(xy[first.numpy()], xy[second.numpy()])
    keep = path_cells >= 0
    latent_distance, path_cells = latent_distance[keep], path_cells[keep]
    return {
        "latent_distance": latent_distance,
        "path_cells": path_cells,
        "spearman": _spearman(latent_distance, path_cells),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def plot_latent_vs_shortest_path(result: dict, path: str | os.PathLike, title: str = "encoder") -> Path:
    """Box plot (with the pairs as jittered points) of latent distance per shortest-path distance in cells.

    Args:
        result (dict): what :func:`latent_vs_shortest_path` returns.
        path (str or PathLike): the PNG to write (its folder is created).
        title (str): the plot's title; the Spearman rho goes on a second line. Defaults to ``"encoder"``.

    Returns:
        the path written.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> result = {"latent_distance": np.array([0.1, 0.5, 0.9, 1.2]), "path_cells": np.array([0, 1, 2, 3]), "spearman": 1.0}
        >>> out = plot_latent_vs_shortest_path(result, os.path.join(tempfile.mkdtemp(), "encoder.png"))
        >>> out.stat().st_size > 0
        True
    """
    missing = {"latent_distance", "path_cells", "spearman"} - set(result)
    if missing:
        raise ValueError(f"result must come from latent_vs_shortest_path; missing {sorted(missing)}.")
    distance, cells = np.asarray(result["latent_distance"]), np.asarray(result["path_cells"])
    if distance.shape != cells.shape or distance.size == 0:
        raise ValueError(f"result holds no pairs to plot (latent_distance {distance.shape}, path_cells {cells.shape}).")
    plt = _pyplot()
    values = np.unique(cells)
    groups = [distance[cells == v] for v in values]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(values) + 2.0), 4.0))
    ax.boxplot(groups, positions=values, widths=0.6, showfliers=False, manage_ticks=False)
    rng = np.random.default_rng(0)
    shown = rng.permutation(len(cells))[:3000]  # the points, at most 3000 of them
    ax.scatter(cells[shown] + rng.uniform(-0.2, 0.2, len(shown)), distance[shown], s=4, alpha=0.25, color="tab:blue")
    ax.set_xticks(values)
    ax.set_xlabel("shortest path between the two states (maze cells, BFS)")
    ax.set_ylabel("latent distance ||E(a) - E(b)||")
    ax.set_title(f"{title}\nSpearman rho = {float(result['spearman']):.3f} ({len(cells)} pairs)", fontsize=10)
    return _save(fig, plt, path)


# ------------------------------------------------------------------------------------ the low level
class NearbyGoalWrapper(gym.Wrapper):
    """A gymnasium-robotics maze env whose resets draw a start cell and a goal cell a few cells apart.

    At each reset the start is a uniformly random free cell (among those with a goal in range)
    and the goal a uniformly random cell at a breadth-first-search distance between
    ``min_cells`` and ``max_cells`` from it; both are passed to the maze's own reset as
    ``options={"reset_cell": [row, col], "goal_cell": [row, col]}`` (the env adds its usual
    position noise inside the cells). A reset with a seed re-seeds the draw, so seeded episodes
    repeat. The cells drawn are kept in :attr:`start_cell` and :attr:`goal_cell`.

    Args:
        env (gymnasium.Env): a (wrapped) gymnasium-robotics ``PointMaze`` / ``AntMaze`` env.
        min_cells (int): smallest start-goal distance in cells. Defaults to 1.
        max_cells (int): largest start-goal distance in cells. Defaults to 1.

    Examples:
        >>> import gymnasium as gym
        >>> from torchrl_skills.utils import import_gymnasium_robotics
        >>> _ = import_gymnasium_robotics()
        >>> env = NearbyGoalWrapper(gym.make("PointMaze_Medium-v3", continuing_task=False), max_cells=2)
        >>> obs, info = env.reset(seed=0)
        >>> int(env.grid.distance[env.grid.width * env.start_cell[0] + env.start_cell[1],
        ...                       env.grid.width * env.goal_cell[0] + env.goal_cell[1]]) in (1, 2)
        True
    """

    def __init__(self, env: gym.Env, min_cells: int = 1, max_cells: int = 1) -> None:
        super().__init__(env)
        if not 0 <= min_cells <= max_cells:
            raise ValueError(f"NearbyGoalWrapper needs 0 <= min_cells <= max_cells, got {min_cells} and {max_cells}.")
        self.grid = MazeGrid.from_gymnasium_robotics(env)
        self.min_cells, self.max_cells = min_cells, max_cells
        self._free = np.flatnonzero(self.grid.free.ravel())
        distance = self.grid.distance[np.ix_(self._free, self._free)]
        self._in_range = (distance >= min_cells) & (distance <= max_cells)  # [free, free]
        self._starts = np.flatnonzero(self._in_range.any(1))
        if not len(self._starts):
            raise ValueError(f"No two free cells of this maze lie {min_cells} to {max_cells} cells apart.")
        self._rng = np.random.default_rng()
        self.start_cell: np.ndarray | None = None
        self.goal_cell: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        start = self._rng.choice(self._starts)
        goal = self._rng.choice(np.flatnonzero(self._in_range[start]))
        self.start_cell = np.array(self.grid.rowcol(self._free[start]))
        self.goal_cell = np.array(self.grid.rowcol(self._free[goal]))
        options = {**(options or {}), "reset_cell": self.start_cell.copy(), "goal_cell": self.goal_cell.copy()}
        return self.env.reset(seed=seed, options=options)


class LatentGoalReacher(TensorDictModuleBase):
    """The low level alone, pursuing the latent of the task's goal: ``goal = E(goal_observation)``.

    Writes ``goal = E(goal_observation)`` and ``latent_window = E(observation_window)`` (no
    gradient) and calls the low-level actor, which reads them and writes ``action``. With no
    high level in the way, the success rate on nearby goals measures the low level and the
    encoder's latents of goals at rest.

    Args:
        encoder (nn.Module): ``E``.
        low_level (TensorDictModuleBase): reads ``latent_window`` and ``goal``, writes ``action``
            (e.g. :func:`~torchrl_skills.modules.transformer_policy.make_transformer_actor`).

    Keyword Args:
        observation_window_key (NestedKey): the window of raw observations. Defaults to ``"observation_window"``.
        goal_observation_key (NestedKey): the task goal as an observation (PointMaze: ``[gx, gy, 0, 0]``).
            Defaults to ``"goal_observation"``.
        latent_window_key (NestedKey): the encoded window. Defaults to ``"latent_window"``.
        goal_key (NestedKey): the latent goal. Defaults to ``"goal"``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl.data import Bounded
        >>> from torchrl_skills.modules import MLPEncoder, make_transformer_actor
        >>> encoder = MLPEncoder(4, 8, normalize=True)
        >>> policy = LatentGoalReacher(encoder, make_transformer_actor(Bounded(-1, 1, (2,)), 8, 8, seq_len=3, d_model=16))
        >>> td = policy(TensorDict({"observation_window": torch.randn(5, 3, 4), "goal_observation": torch.randn(5, 4)}, [5]))
        >>> td["action"].shape, torch.allclose(td["goal"], encoder(td["goal_observation"]))
        (torch.Size([5, 2]), True)
    """

    def __init__(
        self,
        encoder: nn.Module,
        low_level: TensorDictModuleBase,
        *,
        observation_window_key: NestedKey = "observation_window",
        goal_observation_key: NestedKey = "goal_observation",
        latent_window_key: NestedKey = "latent_window",
        goal_key: NestedKey = "goal",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.low_level = low_level
        self.keys = dict(
            observation_window=observation_window_key, goal_observation=goal_observation_key,
            latent_window=latent_window_key, goal=goal_key,
        )  # fmt: skip
        self.in_keys = [observation_window_key, goal_observation_key]
        self.out_keys = list(dict.fromkeys([*low_level.out_keys, goal_key, latent_window_key]))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        k = self.keys
        with torch.no_grad():  # acting needs no encoder gradient
            tensordict.set(k["goal"], self.encoder(tensordict.get(k["goal_observation"])))
            tensordict.set(k["latent_window"], self.encoder(tensordict.get(k["observation_window"])))
        return self.low_level(tensordict)


@torch.no_grad()
def low_level_success(
    encoder: nn.Module,
    low_level_actor: TensorDictModuleBase,
    seq_len: int,
    env_id: str = "PointMaze_Medium-v3",
    num_episodes: int = 50,
    max_cells: int = 1,
    max_steps: int = 100,
    seed: int = 0,
    *,
    min_cells: int = 1,
) -> float:
    """Success rate of the low level alone on goals ``min_cells`` to ``max_cells`` cells from the start.

    Runs ``num_episodes`` deterministic episodes side by side (one batched
    :class:`~torchrl_skills.envs.BatchedGymEnv` of :class:`NearbyGoalWrapper` envs, sparse
    reward, ``continuing_task=False``, ``max_steps`` steps at most) with
    :class:`LatentGoalReacher`: the low level pursues ``E([gx, gy, 0, 0])`` over a window of
    ``seq_len`` observations (the transforms of ``examples/higl_pointmaze.py``: ``DoubleToFloat``,
    ``goal_observation``, the observation window). Episode ``i`` is seeded ``10_000 * seed + i``.

    Args:
        encoder (nn.Module): ``E`` (the env's tensors go to the device of its parameters).
        low_level_actor (TensorDictModuleBase): reads ``latent_window`` and ``goal``, writes ``action``.
        seq_len (int): the actor's window length.
        env_id (str): a gymnasium-robotics PointMaze id. Defaults to ``"PointMaze_Medium-v3"``.
        num_episodes (int): episodes, all side by side. Defaults to 50.
        max_cells (int): largest start-goal distance in cells. Defaults to 1.
        max_steps (int): episode length. Defaults to 100.
        seed (int): seeds the episodes. Defaults to 0.

    Keyword Args:
        min_cells (int): smallest start-goal distance in cells. Defaults to 1.

    Returns:
        the fraction of episodes with a positive reward (that reached their goal).

    Examples:
        >>> from torchrl.data import Bounded
        >>> from torchrl_skills.modules import MLPEncoder, make_transformer_actor
        >>> actor = make_transformer_actor(Bounded(-1, 1, (2,)), 8, 8, seq_len=2, d_model=16)
        >>> rate = low_level_success(MLPEncoder(4, 8, normalize=True), actor, 2, num_episodes=2, max_steps=10)
        >>> 0.0 <= rate <= 1.0
        True
    """
    from torchrl.envs import Compose, DoubleToFloat, TransformedEnv
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from torchrl_skills.envs import BatchedGymEnv
    from torchrl_skills.envs.hierarchical import goal_observation_transform, make_window_env
    from torchrl_skills.evaluation.side_by_side import rollout_side_by_side
    from torchrl_skills.utils import import_gymnasium_robotics

    if num_episodes < 1 or max_steps < 1 or seq_len < 1 or seed < 0 or not 0 <= min_cells <= max_cells:
        raise ValueError(
            "low_level_success needs num_episodes, max_steps, seq_len >= 1, seed >= 0 and 0 <= min_cells <= max_cells; "
            f"got {num_episodes}, {max_steps}, {seq_len}, {seed}, {min_cells}, {max_cells}."
        )
    import_gymnasium_robotics()

    def make_env():
        env = gym.make(env_id, continuing_task=False, reward_type="sparse", max_episode_steps=max_steps)
        return NearbyGoalWrapper(env, min_cells=min_cells, max_cells=max_cells)

    device = next(iter(encoder.parameters()), torch.empty(0)).device
    seeds = [10_000 * seed + i for i in range(num_episodes)]
    env = BatchedGymEnv(make_env, num_episodes, device=device, seeds=seeds)
    try:
        env = TransformedEnv(
            env, Compose(DoubleToFloat(), goal_observation_transform(2))
        )
        env = make_window_env(env, seq_len, in_key="observation")
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout, _ = rollout_side_by_side(env, LatentGoalReacher(encoder, low_level_actor), max_steps)
    finally:
        env.close()
    return float((rollout["next", "reward"].sum(-2) > 0).float().mean())


# ------------------------------------------------------------------------------------ the high level
@torch.no_grad()
def nearest_states(encoder: nn.Module, latent_goals: torch.Tensor, candidate_observations: torch.Tensor) -> torch.Tensor:
    """Decodes latent goals: for each goal, the candidate observation whose latent is nearest.

    The candidates are encoded in one call and matched to every goal by one ``cdist``.

    Args:
        encoder (nn.Module): ``E``, observations ``[M, obs_dim]`` -> latents ``[M, D]``.
        latent_goals (Tensor): ``[..., D]`` goals in ``E``'s latent space.
        candidate_observations (Tensor): ``[M, obs_dim]`` states to choose from (e.g.
            :func:`sample_free_positions` with zero velocity).

    Returns:
        ``[..., obs_dim]``: the nearest candidate of each goal.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> candidates = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> nearest_states(nn.Identity(), torch.tensor([[0.9, 0.2], [0.1, 0.1]]), candidates)
        tensor([[1., 0.],
                [0., 0.]])
    """
    if candidate_observations.ndim != 2 or candidate_observations.shape[0] < 1:
        raise ValueError(f"candidate_observations must be [M >= 1, obs_dim] states, got {tuple(candidate_observations.shape)}.")
    latents = encoder(candidate_observations)
    if latent_goals.ndim < 1 or latent_goals.shape[-1] != latents.shape[-1]:
        raise ValueError(
            f"latent_goals must be [..., {latents.shape[-1]}] (the encoder's latent size), got {tuple(latent_goals.shape)}."
        )
    flat = latent_goals.reshape(-1, latents.shape[-1]).to(latents)
    index = torch.cdist(flat, latents).argmin(-1).to(candidate_observations.device)
    return candidate_observations[index].reshape(*latent_goals.shape[:-1], candidate_observations.shape[-1])


def plot_high_level_goals(
    grid: MazeGrid,
    path_xy,
    goal_xy,
    emitted_goal_xy,
    path: str | os.PathLike,
    title: str = "HIGL episode",
    *,
    emitted_at_xy=None,
    goal_radius: float = 0.45,
) -> Path:
    """One episode in the maze: the executed path, the task goal and the high level's goals in order.

    Draws the walls (:meth:`MazeGrid.wall_rectangles`), the executed path (a circle at its
    start), the task goal (a star in its success radius) and the emitted goals as dots
    numbered 1, 2, ... in the order they were emitted (decoded positions, e.g. by
    :func:`nearest_states`), each joined by a dotted line to where it was emitted when
    ``emitted_at_xy`` is given.

    Args:
        grid (MazeGrid): the maze.
        path_xy (array-like): ``[T, 2]`` positions of the episode.
        goal_xy (array-like): ``[2]`` the task goal.
        emitted_goal_xy (array-like): ``[G, 2]`` decoded goals, in order (``G`` may be 0).
        path (str or PathLike): the PNG to write (its folder is created).
        title (str): plot title. Defaults to ``"HIGL episode"``.

    Keyword Args:
        emitted_at_xy (array-like, optional): ``[G, 2]`` positions where each goal was emitted.
        goal_radius (float): drawn success radius around the goal. Defaults to 0.45 (PointMaze's).

    Returns:
        the path written.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> from gymnasium_robotics.envs.maze.maps import U_MAZE
        >>> from torchrl_skills.data.maze_grid import MazeGrid
        >>> out = plot_high_level_goals(MazeGrid(U_MAZE), np.array([[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]), np.array([-1.0, -1.0]),
        ...                             np.array([[1.0, 1.0], [1.0, 0.0]]), os.path.join(tempfile.mkdtemp(), "goals.png"))
        >>> out.stat().st_size > 0
        True
    """
    path_xy, goal_xy, emitted = _numpy(path_xy), _numpy(goal_xy).reshape(-1), _numpy(emitted_goal_xy).reshape(-1, 2)
    at = None if emitted_at_xy is None else _numpy(emitted_at_xy).reshape(-1, 2)
    if path_xy.ndim != 2 or path_xy.shape[-1] != 2 or len(path_xy) == 0 or goal_xy.shape != (2,):
        raise ValueError(f"path_xy must be [T >= 1, 2] and goal_xy [2], got {path_xy.shape} and {goal_xy.shape}.")
    if at is not None and at.shape != emitted.shape:
        raise ValueError(f"emitted_at_xy must match emitted_goal_xy {emitted.shape}, got {at.shape}.")
    plt = _pyplot()
    from matplotlib.patches import Circle, Rectangle

    xmin, xmax, ymin, ymax = grid.extent()
    fig, ax = plt.subplots(figsize=(5.5, 5.5 * (ymax - ymin) / (xmax - xmin) + 0.5))
    for x0, y0, w, h in grid.wall_rectangles():
        ax.add_patch(Rectangle((x0, y0), w, h, color="0.3", zorder=0))
    ax.plot(path_xy[:, 0], path_xy[:, 1], "-", color="tab:blue", lw=1.5, label="executed path", zorder=2)
    ax.plot(*path_xy[0], "o", color="tab:blue", ms=7, zorder=3)
    ax.add_patch(Circle(tuple(goal_xy), goal_radius, color="gold", alpha=0.4, zorder=1))
    ax.plot(*goal_xy, "*", color="darkorange", ms=16, label="task goal", zorder=4)
    if len(emitted):
        if at is not None:
            for (x, y), (gx, gy) in zip(at, emitted):
                ax.plot([x, gx], [y, gy], ":", color="tab:purple", lw=0.8, zorder=2)
        colours = plt.get_cmap("plasma")(np.linspace(0.0, 0.85, len(emitted)))
        ax.scatter(emitted[:, 0], emitted[:, 1], c=colours, s=60, edgecolors="k", zorder=5, label="emitted goals")
        for i, (x, y) in enumerate(emitted, start=1):
            ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8, zorder=6)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return _save(fig, plt, path)


# ------------------------------------------------------------------------------------ helpers
def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: str | os.PathLike) -> Path:
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
