"""One maze layer for every maze generator, evaluator and plot: cells, geometry and shortest paths.

:class:`MazeGrid` holds a maze layout (``1`` = wall) and the map from cells to world coordinates,
computes all-pairs shortest paths over the free cells once (a breadth-first search from every cell
at the same time, written as boolean matrix products), and answers the questions that data
generators, scripted experts, evaluators and plots ask:

* which cell a position is in, and the centre of a cell;
* the next cell on a shortest path to a goal, for one position or a whole batch
  (:meth:`MazeGrid.next_waypoints`, and :meth:`MazeGrid.oracle_subgoal`, which is OGBench's
  ``get_oracle_subgoal``);
* the free cells and OGBench's "vertex" cells (free cells that are not straight corridors);
* the wall boxes, to draw any maze the same way.

Two world geometries are supported, through :class:`MazeGeometry`:

* gymnasium-robotics (``PointMaze_*-v3``, ``AntMaze_*-v4``): the maze is centred on the origin, row 0
  at the top: the centre of cell ``(i, j)`` is ``((j + 0.5) s - W s / 2, H s / 2 - (i + 0.5) s)``;
* OGBench (``pointmaze-*``, ``antmaze-*``): cell ``(i, j)`` is centred at ``(j s - 4, i s - 4)``
  (``s = 4`` m) and a position maps to ``i = int((y + 4 + s / 2) / s)``, ``j = int((x + 4 + s / 2) / s)``.

The order in which the four neighbours are tried breaks ties between equally short paths; each
geometry keeps the order of its environment's own code, so that scripted experts match it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

__all__ = ["MazeGeometry", "MazeGrid"]

#: Neighbour offsets (row, col) tried in this order. gymnasium-robotics generator: up, down, left,
#: right (this package's choice); OGBench's BFS: up, left, down, right.
CENTRED_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))
OGBENCH_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1))


@dataclasses.dataclass(frozen=True)
class MazeGeometry:
    """Where the cells of a maze lie in the world.

    Args:
        cell_size (float): side of a cell in world units.
        convention (str): ``"centred"`` (gymnasium-robotics: maze centred on the origin, row 0 on
            top, y up) or ``"offset"`` (OGBench: cell ``(i, j)`` centred at
            ``(j * s - offset_x, i * s - offset_y)``).
        offset (tuple of float): ``(offset_x, offset_y)`` of the ``"offset"`` convention.
        neighbours (tuple): neighbour offsets in tie-breaking order.
    """

    cell_size: float = 1.0
    convention: str = "centred"
    offset: tuple[float, float] = (0.0, 0.0)
    neighbours: tuple = CENTRED_NEIGHBOURS

    def __post_init__(self):
        if self.convention not in ("centred", "offset"):
            raise ValueError(f"convention must be 'centred' or 'offset', got {self.convention!r}.")
        if not self.cell_size > 0:
            raise ValueError(f"cell_size must be > 0, got {self.cell_size}.")

    @classmethod
    def ogbench(cls, cell_size: float = 4.0, offset: tuple[float, float] = (4.0, 4.0)) -> MazeGeometry:
        """OGBench's geometry: ``maze_unit`` 4 m, offset 4 m, OGBench's neighbour order.

        Examples:
            >>> MazeGeometry.ogbench().convention
            'offset'
        """
        return cls(float(cell_size), "offset", (float(offset[0]), float(offset[1])), OGBENCH_NEIGHBOURS)


class MazeGrid:
    """Shortest paths over the cells of a maze, in world coordinates.

    Cells are indexed in row-major order: ``index = row * width + col`` (row 0 is the first row of
    ``maze_map``).

    Args:
        maze_map (list of lists): the layout, ``1`` for walls and anything else (``0``, ``"r"``,
            ``"g"``, ``"c"``) for free cells, as in ``env.unwrapped.maze.maze_map``
            (gymnasium-robotics) or ``env.unwrapped.maze_map`` (OGBench).
        maze_size_scaling (float, optional): cell side for the centred (gymnasium-robotics)
            geometry. Defaults to ``1.0``. Ignored when ``geometry`` is given.
        geometry (MazeGeometry, optional): the world geometry. Defaults to the centred geometry
            with ``maze_size_scaling``.

    Attributes:
        free (np.ndarray): ``(height, width)`` boolean mask of free cells.
        distance (np.ndarray): ``(n_cells, n_cells)`` shortest-path lengths in cells; ``-1`` where
            there is no path (walls, disconnected cells).
        next_cell (np.ndarray): ``(n_cells, n_cells)``; ``next_cell[c, g]`` is the cell after ``c``
            on a shortest path from ``c`` to ``g``, ``g`` itself when ``c == g`` and ``-1`` when
            ``g`` cannot be reached from ``c``.
        cell_centres (np.ndarray): ``(n_cells, 2)`` world ``(x, y)`` of each cell's centre.

    Examples:
        >>> from gymnasium_robotics.envs.maze.maps import U_MAZE
        >>> grid = MazeGrid(U_MAZE)
        >>> grid.shortest_path((1, 1), (3, 1))
        [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
        >>> grid.next_waypoint([-1.0, 1.0], [-1.0, -1.0])  # centre of cell (1, 2)
        array([0., 1.])
        >>> ogbench = MazeGrid(U_MAZE, geometry=MazeGeometry.ogbench())
        >>> ogbench.oracle_subgoal(np.array([[0.0, 0.0]]), np.array([[0.0, 8.0]]))  # (1,1) -> (3,1)
        array([[4., 0.]])
    """

    def __init__(
        self,
        maze_map: Sequence[Sequence[Any]],
        maze_size_scaling: float = 1.0,
        geometry: MazeGeometry | None = None,
    ):
        free = np.array([[cell != 1 for cell in row] for row in maze_map], dtype=bool)
        if free.ndim != 2 or not free.any():
            raise ValueError("maze_map must be a non-empty rectangular grid with free cells.")
        if geometry is None:
            geometry = MazeGeometry(float(maze_size_scaling))
        self.geometry = geometry
        self.maze_map = (~free).astype(np.int64)
        self.free = free
        self.height, self.width = free.shape
        self.scaling = geometry.cell_size
        n = free.size
        self.n_cells = n
        index = np.arange(n).reshape(free.shape)
        rows, cols = np.divmod(np.arange(n), self.width)
        self.cell_centres = np.stack(self._centre(rows, cols), axis=-1).astype(np.float64)

        # neighbours[c, k]: k-th neighbour of cell c, or -1 if it is a wall / off-grid.
        neighbours = np.full((n, len(geometry.neighbours)), -1, dtype=np.int64)
        padded = np.zeros((self.height + 2, self.width + 2), dtype=bool)
        padded[1:-1, 1:-1] = free
        padded_index = np.full(padded.shape, -1, dtype=np.int64)
        padded_index[1:-1, 1:-1] = index
        for k, (dr, dc) in enumerate(geometry.neighbours):
            shifted_free = padded[1 + dr : 1 + dr + self.height, 1 + dc : 1 + dc + self.width]
            shifted_index = padded_index[1 + dr : 1 + dr + self.height, 1 + dc : 1 + dc + self.width]
            valid = free & shifted_free
            neighbours[index[valid], k] = shifted_index[valid]
        self.neighbours = neighbours

        adjacency = np.zeros((n, n), dtype=np.float32)
        src, k = np.nonzero(neighbours >= 0)
        adjacency[src, neighbours[src, k]] = 1.0

        # Level-synchronous BFS from every source at once: row s of `frontier` holds the cells
        # first reached from s at the current depth. float32 matmul is exact here (at most 4
        # neighbours) and uses BLAS, unlike integer matmul.
        distance = np.full((n, n), -1, dtype=np.int64)
        reached = np.diag(free.ravel())
        distance[reached] = 0
        frontier = reached.astype(np.float32)
        depth = 0
        while True:
            depth += 1
            new = ((frontier @ adjacency) > 0) & ~reached
            if not new.any():
                break
            distance[new] = depth
            reached |= new
            frontier = new.astype(np.float32)
        self.distance = distance

        # next_cell[c, g] = the neighbour of c closest to g, the first in neighbour order among
        # equals (argmin returns the first minimum), as the environments' own BFS code does.
        # Unreachable entries get a cost larger than any path so that they never win.
        big = n + 1
        dist_or_big = np.where(distance >= 0, distance, big)
        cost = np.where((neighbours >= 0)[:, :, None], dist_or_big[neighbours.clip(min=0)], big)  # (n, 4, n)
        best = cost.argmin(axis=1)
        next_cell = np.take_along_axis(neighbours, best, axis=1)
        next_cell[cost.min(axis=1) >= big] = -1
        diagonal = np.arange(n)
        next_cell[diagonal, diagonal] = np.where(free.ravel(), diagonal, -1)
        self.next_cell = next_cell

        # Python-list copies for per-step scalar hot paths, where indexing a list is several
        # times cheaper than indexing a numpy array with Python ints.
        self._next_list = next_cell.tolist()
        self._centres_list = [tuple(c) for c in self.cell_centres.tolist()]

    # ------------------------------------------------------------------ construction from envs
    @classmethod
    def from_env(cls, env) -> MazeGrid:
        """The grid of a (possibly wrapped) gymnasium-robotics or OGBench maze env.

        Raises:
            ValueError: ``env`` is neither kind of maze env.
        """
        unwrapped = env.unwrapped
        if hasattr(unwrapped, "maze") and hasattr(unwrapped.maze, "maze_map"):
            return cls.from_gymnasium_robotics(env)
        if hasattr(unwrapped, "maze_map") and hasattr(unwrapped, "_maze_unit"):
            return cls.from_ogbench(env)
        raise ValueError(
            f"{type(unwrapped).__name__} is neither a gymnasium-robotics maze (env.unwrapped.maze) nor an OGBench "
            "maze (env.unwrapped.maze_map)."
        )

    @classmethod
    def from_gymnasium_robotics(cls, env) -> MazeGrid:
        """The grid of a (possibly wrapped) gymnasium-robotics ``PointMaze``/``AntMaze`` env.

        Reads ``env.unwrapped.maze.maze_map`` and ``maze_size_scaling``; the geometry is centred.

        Examples:
            >>> import gymnasium as gym, gymnasium_robotics
            >>> gym.register_envs(gymnasium_robotics)
            >>> grid = MazeGrid.from_gymnasium_robotics(gym.make("PointMaze_UMaze-v3"))
            >>> grid.extent()
            (-2.5, 2.5, -2.5, 2.5)
        """
        maze = env.unwrapped.maze
        return cls(maze.maze_map, geometry=MazeGeometry(float(maze.maze_size_scaling)))

    @classmethod
    def from_ogbench(cls, env) -> MazeGrid:
        """The grid of a (possibly wrapped) OGBench locomaze env (``pointmaze-*``, ``antmaze-*``, ...).

        Reads ``env.unwrapped.maze_map``, ``_maze_unit`` and ``_offset_x`` / ``_offset_y``.

        Examples:
            >>> import ogbench
            >>> env = ogbench.make_env_and_datasets("pointmaze-medium-navigate-v0", env_only=True)
            >>> grid = MazeGrid.from_ogbench(env)
            >>> grid.centre((1, 1)), grid.extent()
            (array([0., 0.]), (-6.0, 26.0, -6.0, 26.0))
        """
        u = env.unwrapped
        return cls(u.maze_map, geometry=MazeGeometry.ogbench(u._maze_unit, (u._offset_x, u._offset_y)))

    # ------------------------------------------------------------------ geometry
    def _centre(self, rows, cols):
        g, s = self.geometry, self.geometry.cell_size
        if g.convention == "centred":
            return (cols + 0.5) * s - self.width * s / 2, self.height * s / 2 - (rows + 0.5) * s
        return cols * s - g.offset[0], rows * s - g.offset[1]

    def cell_rowcol(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns ``[N]`` of the cells holding positions ``[N, 2]`` (clamped to the grid)."""
        xy = _positions(xy, "xy")
        g, s = self.geometry, self.geometry.cell_size
        if g.convention == "centred":
            rows = np.floor((self.height * s / 2 - xy[..., 1]) / s)
            cols = np.floor((xy[..., 0] + self.width * s / 2) / s)
        else:  # OGBench's xy_to_ij truncates towards zero (int()), not floor
            rows = np.trunc((xy[..., 1] + g.offset[1] + 0.5 * s) / s)
            cols = np.trunc((xy[..., 0] + g.offset[0] + 0.5 * s) / s)
        rows = np.clip(rows, 0, self.height - 1).astype(np.int64)
        cols = np.clip(cols, 0, self.width - 1).astype(np.int64)
        return rows, cols

    def cell_indices(self, xy: np.ndarray) -> np.ndarray:
        """Flat cell indices ``[N]`` of positions ``[N, 2]``."""
        rows, cols = self.cell_rowcol(xy)
        return rows * self.width + cols

    def cell_index(self, xy: Sequence[float]) -> int:
        """Flat index of the cell containing the world position ``xy`` (clamped to the grid)."""
        return int(self.cell_indices(np.asarray(xy, dtype=np.float64)[None])[0])

    def rowcol(self, index: int) -> tuple[int, int]:
        """``(row, col)`` of a flat cell index."""
        return divmod(int(index), self.width)

    def centre(self, rowcol: tuple[int, int]) -> np.ndarray:
        """World ``(x, y)`` of the centre of cell ``(row, col)``."""
        return self.cell_centres[rowcol[0] * self.width + rowcol[1]].copy()

    def free_cells(self) -> list[tuple[int, int]]:
        """``(row, col)`` of every free cell, row-major."""
        return [tuple(int(v) for v in rc) for rc in np.argwhere(self.free)]

    def vertex_cells(self) -> list[tuple[int, int]]:
        """Free cells that are not straight corridor cells (OGBench's goal cells for navigate data).

        A corridor cell has its two opposite neighbours free along one axis and walls along the
        other. Cells on the grid's border count as walls outside.
        """
        f = np.pad(self.free, 1, constant_values=False)
        up, down, left, right = f[:-2, 1:-1], f[2:, 1:-1], f[1:-1, :-2], f[1:-1, 2:]
        corridor = (up & down & ~left & ~right) | (left & right & ~up & ~down)
        return [tuple(int(v) for v in rc) for rc in np.argwhere(self.free & ~corridor)]

    def wall_rectangles(self) -> list[tuple[float, float, float, float]]:
        """``(x0, y0, width, height)`` of every wall cell in world coordinates, for plots."""
        s = self.geometry.cell_size
        centres = self.cell_centres[~self.free.ravel()]
        return [(float(x - s / 2), float(y - s / 2), s, s) for x, y in centres]

    def extent(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` of the whole grid, walls included."""
        s = self.geometry.cell_size
        lo, hi = self.cell_centres.min(0) - s / 2, self.cell_centres.max(0) + s / 2
        return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])

    # ------------------------------------------------------------------ shortest paths
    def shortest_path(self, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        """Cells ``(row, col)`` of a shortest path from ``start`` to ``goal``, both included.

        Raises:
            ValueError: if there is no path (a wall cell or a disconnected goal).
        """
        current = start[0] * self.width + start[1]
        target = goal[0] * self.width + goal[1]
        if self.distance[current, target] < 0:
            raise ValueError(f"No path from cell {tuple(start)} to cell {tuple(goal)}.")
        path = [self.rowcol(current)]
        while current != target:
            current = int(self.next_cell[current, target])
            path.append(self.rowcol(current))
        return path

    def shortest_path_length(self, xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
        """Shortest-path lengths in cells ``[N]`` between the cells of positions ``xy_a`` and ``xy_b`` ``[N, 2]``.

        ``0`` in the same cell, ``-1`` where there is no path (a position in a wall or in a
        disconnected part of the maze).

        Examples:
            >>> from gymnasium_robotics.envs.maze.maps import U_MAZE
            >>> grid = MazeGrid(U_MAZE)  # (0, 0) is in a wall
            >>> grid.shortest_path_length([[-1.0, 1.0], [1.0, 0.0], [0.0, 0.0]], [[-1.0, -1.0], [1.0, 1.0], [1.0, 1.0]])
            array([ 6,  1, -1])
        """
        xy_a, xy_b = _pair(xy_a, xy_b)
        return self.distance[self.cell_indices(xy_a), self.cell_indices(xy_b)]

    def oracle_subgoal(self, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
        """Centres ``[N, 2]`` of the next cells on shortest paths from ``xy`` to ``goal_xy`` ``[N, 2]``.

        In the goal cell, or with no path, the centre of the current cell. With the OGBench
        geometry this is exactly ``env.unwrapped.get_oracle_subgoal(xy, goal_xy)[0]``, for a batch.
        """
        xy, goal_xy = _pair(xy, goal_xy)
        cell = self.cell_indices(xy)
        nxt = self.next_cell[cell, self.cell_indices(goal_xy)]
        return self.cell_centres[np.where(nxt >= 0, nxt, cell)]

    def next_waypoints(self, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
        """Like :meth:`oracle_subgoal`, but the goal itself once in its cell (or with no path)."""
        xy, goal_xy = _pair(xy, goal_xy)
        cell = self.cell_indices(xy)
        nxt = self.next_cell[cell, self.cell_indices(goal_xy)]
        head_for_goal = (nxt == cell) | (nxt < 0)
        return np.where(head_for_goal[:, None], goal_xy, self.cell_centres[nxt.clip(min=0)])

    def _waypoint(self, x: float, y: float, gx: float, gy: float) -> tuple[float, float]:
        # Float-only next_waypoints() for one position, for per-step loops of one env. Positions
        # off the grid head for the goal.
        s, w, g = self.scaling, self.width, self.geometry
        if g.convention == "centred":
            row, col = math.floor((self.height * s / 2 - y) / s), math.floor((x + w * s / 2) / s)
            goal_row, goal_col = math.floor((self.height * s / 2 - gy) / s), math.floor((gx + w * s / 2) / s)
        else:
            row, col = int((y + g.offset[1] + 0.5 * s) / s), int((x + g.offset[0] + 0.5 * s) / s)
            goal_row, goal_col = int((gy + g.offset[1] + 0.5 * s) / s), int((gx + g.offset[0] + 0.5 * s) / s)
        if 0 <= row < self.height and 0 <= col < w and 0 <= goal_row < self.height and 0 <= goal_col < w:
            cell = row * w + col
            nxt = self._next_list[cell][goal_row * w + goal_col]
            # In the goal cell (nxt == cell) head for the goal itself; with no known path
            # (nxt == -1, which an agent cannot reach in practice) do the same rather than stop.
            if nxt != cell and nxt >= 0:
                return self._centres_list[nxt]
        return gx, gy

    def next_waypoint(self, position: Sequence[float], goal: Sequence[float]) -> np.ndarray:
        """Next waypoint towards ``goal`` from ``position`` (both world ``(x, y)``): the centre of
        the next cell on a shortest path, or ``goal`` itself when already in the goal cell."""
        return np.array(self._waypoint(float(position[0]), float(position[1]), float(goal[0]), float(goal[1])))


def _positions(xy, name: str) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim == 0 or xy.shape[-1] != 2:
        raise ValueError(f"{name} must hold world (x, y) positions, shape [N, 2] or [2]; got shape {xy.shape}.")
    return xy


def _pair(xy, goal_xy) -> tuple[np.ndarray, np.ndarray]:
    # Batched queries: both [N, 2] (or one of them [2], broadcast).
    xy, goal_xy = np.atleast_2d(_positions(xy, "xy")), np.atleast_2d(_positions(goal_xy, "goal_xy"))
    if xy.ndim != 2 or goal_xy.ndim != 2 or (len(xy) != len(goal_xy) and 1 not in (len(xy), len(goal_xy))):
        raise ValueError(
            f"Expected positions of shape [N, 2] and goals of shape [N, 2] (or [2]); got {xy.shape} and {goal_xy.shape}."
        )
    return np.broadcast_arrays(xy, goal_xy)
