"""End-to-end runs of the HIGL examples with tiny flags (real gymnasium envs, a few seconds each)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pointmaze_example_end_to_end_and_resume(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    example = _load("higl_pointmaze")
    flags = [
        "--total-steps", "200", "--warmup-steps", "60", "--eval-every", "100", "--eval-episodes", "1",
        "--max-episode-steps", "40", "--batch-size", "8", "--seq-len", "4", "--d-model", "16", "--latent-dim", "8",
        "--sac-frames-per-batch", "50", "--high-steps-per-batch", "5", "--seeds", "0", "--out-dir", str(tmp_path),
        "--checkpoint-every", "100",
    ]
    results = example.main(flags)
    assert {r["algo"] for r in results["runs"]} == {"higl", "sac"}
    for run in results["runs"]:
        assert run["steps"] >= 200 and run["updates"] > 0 and run["curve"]
        assert 0.0 <= run["final_success_rate"] <= 1.0
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert (tmp_path / "ckpt_higl_seed0.pt").is_file() and (tmp_path / "ckpt_sac_seed0.pt").is_file()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["summary"]) == {"higl", "sac"}
    # resume to a longer budget continues from the checkpoints instead of restarting
    resumed = example.main(flags[:1] + ["300"] + flags[2:] + ["--resume", "--algos", "sac"])
    sac_run = [r for r in resumed["runs"] if r["algo"] == "sac"][0]
    assert sac_run["steps"] >= 300 and list(sac_run["curve"][0]) == saved["runs"][1]["curve"][0]
    assert len(sac_run["curve"]) > len(saved["runs"][1]["curve"])


def test_carracing_example_end_to_end(tmp_path):
    pytest.importorskip("Box2D")
    example = _load("higl_carracing")
    results = example.main([
        "--total-steps", "60", "--warmup-steps", "20", "--max-episode-steps", "30", "--batch-size", "4",
        "--seq-len", "3", "--d-model", "16", "--latent-dim", "8", "--eval-episodes", "1", "--high-steps-per-batch", "3",
        "--grayscale", "--frame-stack", "3", "--out-dir", str(tmp_path),
    ])
    assert results["steps"] >= 60 and results["updates"] > 0
    assert isinstance(results["final_eval_return"], float)
    assert (tmp_path / "learning_curve.png").is_file() and (tmp_path / "checkpoint.pt").is_file()
