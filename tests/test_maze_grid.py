"""MazeGrid: one maze layer for both gymnasium-robotics and OGBench geometries."""
from __future__ import annotations

import numpy as np
import pytest

from torchrl_skills.data.maze_grid import MazeGeometry, MazeGrid

ogbench = pytest.importorskip("ogbench")


@pytest.mark.parametrize("maze", ["medium", "large", "giant", "teleport"])
def test_oracle_subgoal_equals_ogbench(maze):
    env = ogbench.make_env_and_datasets(f"pointmaze-{maze}-navigate-v0", env_only=True)
    u = env.unwrapped
    grid = MazeGrid.from_env(env)
    assert grid.geometry == MazeGeometry.ogbench()
    rng = np.random.default_rng(0)
    free = np.array(grid.free_cells())
    starts = grid.cell_centres[free[:, 0] * grid.width + free[:, 1]]
    n = 300
    xy = starts[rng.integers(len(starts), size=n)] + rng.uniform(-1.9, 1.9, size=(n, 2))
    goal = starts[rng.integers(len(starts), size=n)] + rng.uniform(-1.9, 1.9, size=(n, 2))
    goal[:20] = xy[:20] + rng.uniform(-0.1, 0.1, size=(20, 2))  # already in the goal cell
    batched = grid.oracle_subgoal(xy, goal)
    expected = np.stack([u.get_oracle_subgoal(a, b)[0] for a, b in zip(xy, goal)])
    np.testing.assert_allclose(batched, expected)
    for a in xy[:20]:
        assert tuple(grid.cell_rowcol(a[None])[0].tolist() + grid.cell_rowcol(a[None])[1].tolist()) == u.xy_to_ij(a)
    env.close()


def test_ogbench_cell_centres_and_tasks():
    env = ogbench.make_env_and_datasets("pointmaze-medium-navigate-v0", env_only=True)
    grid = MazeGrid.from_env(env)
    for info in env.unwrapped.task_infos:
        np.testing.assert_allclose(grid.centre(info["goal_ij"]), info["goal_xy"])
    xmin, xmax, ymin, ymax = grid.extent()
    assert (xmin, ymin) == (-6.0, -6.0) and (xmax, ymax) == (4 * 8 - 6.0, 4 * 8 - 6.0)
    assert len(grid.wall_rectangles()) == int((~grid.free).sum())
    env.close()


def test_vertex_cells_drop_straight_corridors():
    layout = [
        [1, 1, 1, 1, 1],
        [1, 0, 0, 0, 1],
        [1, 1, 1, 0, 1],
        [1, 1, 1, 1, 1],
    ]
    grid = MazeGrid(layout, geometry=MazeGeometry.ogbench())
    assert grid.free_cells() == [(1, 1), (1, 2), (1, 3), (2, 3)]
    # (1, 2) is a left-right corridor; (1, 1) and (2, 3) are dead ends, (1, 3) a corner
    assert grid.vertex_cells() == [(1, 1), (1, 3), (2, 3)]


def test_shortest_path_length_and_waypoints():
    layout = [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 1, 1, 1, 1]]
    grid = MazeGrid(layout, geometry=MazeGeometry.ogbench())
    start, goal = grid.centre((1, 1))[None], grid.centre((2, 3))[None] + 0.3
    assert grid.shortest_path_length(start, goal).tolist() == [3]
    np.testing.assert_allclose(grid.next_waypoints(start, goal), grid.centre((1, 2))[None])
    # in the goal cell the waypoint is the goal itself, the oracle subgoal the cell centre
    near = grid.centre((2, 3))[None]
    np.testing.assert_allclose(grid.next_waypoints(near, goal), goal)
    np.testing.assert_allclose(grid.oracle_subgoal(near, goal), near)


def test_bad_inputs():
    with pytest.raises(ValueError, match="free cells"):
        MazeGrid([[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="convention"):
        MazeGeometry(1.0, "polar")
    grid = MazeGrid([[1, 1, 1], [1, 0, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        grid.oracle_subgoal(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="Expected positions"):
        grid.shortest_path_length(np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="neither"):
        MazeGrid.from_env(type("E", (), {"unwrapped": object()})())


def test_tie_breaking_follows_the_geometry():
    # An open 2x2 room: from (1, 2) to (2, 1) both (2, 2) and (1, 1) are on a shortest path.
    room = [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]]
    # this package's gymnasium-robotics order tries down before left ...
    assert MazeGrid(room).shortest_path((1, 2), (2, 1)) == [(1, 2), (2, 2), (2, 1)]
    # ... OGBench's BFS tries left before down
    assert MazeGrid(room, geometry=MazeGeometry.ogbench()).shortest_path((1, 2), (2, 1)) == [(1, 2), (1, 1), (2, 1)]
