"""HIGL diagnostics: encoder vs maze distance, the low level alone, decoded high-level goals, and the script."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torch import nn

pytest.importorskip("gymnasium_robotics")

from gymnasium_robotics.envs.maze.maps import U_MAZE  # noqa: E402

from torchrl_skills.data.maze_grid import MazeGrid  # noqa: E402
from torchrl_skills.evaluation import (  # noqa: E402
    NearbyGoalWrapper,
    latent_vs_shortest_path,
    low_level_success,
    nearest_states,
    plot_high_level_goals,
    plot_latent_vs_shortest_path,
    sample_free_positions,
)
from torchrl_skills.modules import MLPEncoder, make_transformer_actor  # noqa: E402
from torchrl_skills.objectives import TemporalContrastiveLoss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_walk_pairs(grid, batch, steps, generator, noise=0.15):
    """Positive pairs: a free cell and where a lazy random walk over the cells is ``steps`` later, both jittered."""
    neighbours = torch.as_tensor(grid.neighbours)  # [cells, 4], -1 for walls
    centres = torch.as_tensor(grid.cell_centres, dtype=torch.float32)
    free = torch.as_tensor(np.flatnonzero(grid.free.ravel()))
    start = free[torch.randint(len(free), (batch,), generator=generator)]
    cell = start
    for _ in range(steps):  # over time; every walker moves at once
        nxt = neighbours[cell, torch.randint(neighbours.shape[1], (batch,), generator=generator)]
        cell = torch.where(nxt >= 0, nxt, cell)
    jitter = lambda: (torch.rand(batch, 2, generator=generator) - 0.5) * 2 * noise * grid.scaling  # noqa: E731
    return centres[start] + jitter(), centres[cell] + jitter()


def test_encoder_diagnostic_orders_states_by_maze_distance(tmp_path):
    torch.manual_seed(0)
    grid = MazeGrid(U_MAZE)
    states = sample_free_positions(grid, 1000, torch.Generator().manual_seed(100))

    def rho(encoder):
        return latent_vs_shortest_path(encoder, grid, states, num_pairs=2000, generator=torch.Generator().manual_seed(1))

    encoder = MLPEncoder(2, 16, normalize=True)
    untrained = rho(encoder)["spearman"]
    straight_line = rho(nn.Identity())["spearman"]  # latent = (x, y): blind to the walls
    loss = TemporalContrastiveLoss(encoder, similarity="cosine", temperature=0.1)
    optim = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(250):
        anchor, positive = _random_walk_pairs(grid, 256, 2, generator)
        out = loss(TensorDict({"observation": anchor, "future_observation": positive}, [256]))
        optim.zero_grad()
        out["loss_contrastive"].backward()
        optim.step()
    result = rho(encoder)
    trained = result["spearman"]
    # measured (torch 2.13 CPU): trained 0.966, untrained 0.825, straight-line distance 0.80
    assert trained > 0.9, (trained, untrained, straight_line)
    assert untrained < trained - 0.08 and straight_line < trained - 0.1, (trained, untrained, straight_line)
    assert result["latent_distance"].shape == result["path_cells"].shape and (result["path_cells"] >= 0).all()
    assert set(np.unique(result["path_cells"])) == set(range(7))  # U-maze: 0 to 6 cells apart
    out = plot_latent_vs_shortest_path(result, tmp_path / "encoder.png", title="U-maze")
    assert out.stat().st_size > 0
    with pytest.raises(ValueError, match="N >= 2"):
        latent_vs_shortest_path(encoder, grid, states[:1])


def test_nearest_states_and_goal_plot(tmp_path):
    candidates = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]])
    encoder = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        encoder.weight.copy_(torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]))  # latent = 2 * (x, y)
    goals = torch.tensor([[[1.9, 0.2], [-1.7, -2.4]], [[0.1, 1.6], [0.2, -0.1]]])  # [2, 2, latent]
    decoded = nearest_states(encoder, goals, candidates)
    assert decoded.shape == (2, 2, 4)
    assert torch.equal(decoded, candidates[torch.tensor([[1, 3], [2, 0]])])
    with pytest.raises(ValueError, match="latent size"):
        nearest_states(encoder, torch.zeros(3, 5), candidates)
    grid = MazeGrid(U_MAZE)
    path_xy = torch.tensor([[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    out = plot_high_level_goals(grid, path_xy, torch.tensor([-1.0, -1.0]), decoded.reshape(-1, 4)[:, :2],
                                tmp_path / "goals.png", emitted_at_xy=path_xy)  # fmt: skip
    assert out.stat().st_size > 0
    empty = plot_high_level_goals(grid, path_xy, [-1.0, -1.0], np.zeros((0, 2)), tmp_path / "none.png")
    assert empty.stat().st_size > 0


def test_nearby_goal_wrapper_keeps_goals_within_max_cells():
    import gymnasium as gym

    for max_cells in (1, 2):
        env = NearbyGoalWrapper(gym.make("PointMaze_Medium-v3", continuing_task=False), max_cells=max_cells)
        grid = env.grid
        starts, goals = [], []
        for i in range(20):
            obs, _ = env.reset(seed=i)
            starts.append(obs["achieved_goal"])
            goals.append(obs["desired_goal"])
            rows, cols = grid.cell_rowcol(np.stack([obs["achieved_goal"], obs["desired_goal"]]))
            assert np.array_equal(np.stack([rows, cols], -1), np.stack([env.start_cell, env.goal_cell]))
        cells = grid.shortest_path_length(np.array(starts), np.array(goals))
        assert ((cells >= 1) & (cells <= max_cells)).all(), cells
        if max_cells == 2:
            assert (cells == 2).any()
        env.reset(seed=3)
        again = env.start_cell, env.goal_cell
        env.reset(seed=3)
        assert np.array_equal(again[0], env.start_cell) and np.array_equal(again[1], env.goal_cell)
        env.close()
    with pytest.raises(ValueError, match="min_cells <= max_cells"):
        NearbyGoalWrapper(gym.make("PointMaze_UMaze-v3"), min_cells=2, max_cells=1)


def test_low_level_success_runs_end_to_end():
    from torchrl.data import Bounded

    actor = make_transformer_actor(Bounded(-1.0, 1.0, (2,)), 8, 8, seq_len=2, d_model=16, dim_feedforward=32, num_layers=1)
    rate = low_level_success(MLPEncoder(4, 8, num_cells=(32,), normalize=True), actor, 2, num_episodes=3, max_steps=15)
    assert isinstance(rate, float) and 0.0 <= rate <= 1.0
    with pytest.raises(ValueError, match="num_episodes"):
        low_level_success(MLPEncoder(4, 8, normalize=True), actor, 2, num_episodes=0)


def test_diagnostics_script_on_a_tiny_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _load("higl_pointmaze").main([
        "--algos", "higl", "--seeds", "0", "--total-steps", "400", "--warmup-steps", "100", "--eval-every", "400",
        "--eval-episodes", "2", "--max-episode-steps", "50", "--batch-size", "8", "--seq-len", "2", "--d-model", "16",
        "--latent-dim", "8", "--frames-per-batch", "200", "--num-envs", "2", "--out-dir", str(run_dir), "--no-progress",
        "--goal-space", "landmark", "--landmarks", "10",  # its landmarks are rebuilt from the saved replay
    ])  # fmt: skip
    capsys.readouterr()
    summary = _load("higl_diagnostics").main([
        "--run-dir", str(run_dir), "--seed", "0", "--num-positions", "500", "--num-pairs", "300",
        "--low-level-episodes", "2", "--low-level-steps", "20",
    ])  # fmt: skip
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(json.dumps(summary))
    for name in ("encoder_vs_shortest_path.png", "low_level_success.json", "high_level_goals.png"):
        assert (run_dir / name).stat().st_size > 0, name
    saved = json.loads((run_dir / "low_level_success.json").read_text())
    assert set(saved["success_rate_by_max_cells"]) == {"1", "2"}
    assert all(0.0 <= v <= 1.0 for v in saved["success_rate_by_max_cells"].values())
    assert -1.0 <= printed["spearman"] <= 1.0 and printed["high_level_episode"]["goals"] >= 1
    assert set(printed["high_level_correction"]) == {"trained", "without"}
    assert all(0.0 <= v <= 1.0 for v in printed["high_level_correction"].values())


def test_diagnostics_script_missing_run_dir_is_one_error_line(tmp_path):
    missing = tmp_path / "no_such_run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "higl_diagnostics.py"), "--run-dir", str(missing)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TORCHRL_SKILLS_DEBUG": ""},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0] and "higl_pointmaze.py" in errors[0], proc.stderr
