"""examples/ogbench_pointmaze.py end to end on a tiny configuration."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("ogbench")


@pytest.mark.slow
def test_ogbench_pointmaze_example_runs_and_resumes(tmp_path, minari_store):
    from ogbench_pointmaze import main

    argv = [
        "--num-episodes", "4", "--train-steps", "20", "--batch-size", "8", "--seq-len", "10", "--z-dim", "4",
        "--hidden-dim", "16", "--candidates", "16", "--elites", "4", "--iterations", "2", "--graph-nodes", "50",
        "--episodes-per-task", "1", "--no-progress", "--out-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    out = main(argv)
    report = json.loads((tmp_path / "run" / "results.json").read_text())
    assert report["episodes"] == 5 and set(report["task_success"]) == {"1", "2", "3", "4", "5"}
    assert report["config"]["cost"] == "graph" and (tmp_path / "run" / "results.png").exists()
    assert out["timing"]["train_s"][0] > 0
    assert report["skill_tracking"]["skills"] > 0 and report["skill_tracking"]["median_planned"] >= 0
    # a second run reuses the checkpoint (resume: nothing left to train) and evaluates validation goals
    again = main(argv + ["--validate", "--validation-tasks", "2", "--graph-entry-nodes", "3"])
    assert again["result"].tasks == ["val0", "val1"]
    assert json.loads((tmp_path / "run" / "validation.json").read_text())["config"]["graph_entry_nodes"] == 3
    # --tag keeps a second setting's outputs beside the first's, from the same trained model
    main(argv + ["--validate", "--validation-tasks", "2", "--tag", "entry1"])
    tagged = json.loads((tmp_path / "run" / "validation-entry1.json").read_text())
    assert tagged["config"]["graph_entry_nodes"] == 1 and (tmp_path / "run" / "validation-entry1.png").exists()
    assert json.loads((tmp_path / "run" / "validation.json").read_text())["config"]["graph_entry_nodes"] == 3
