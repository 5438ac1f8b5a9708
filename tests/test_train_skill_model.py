"""End-to-end runs of examples/train_skill_model.py on a tiny real dataset."""
from __future__ import annotations

import pytest
import torch
from train_skill_model import main as train_main

from torchrl_skills.modules import load_skill_model

SMALL = ["--z-dim", "8", "--hidden-dim", "32", "--batch-size", "16", "--seq-len", "10", "--no-progress"]


def run(dataset, out_dir, *extra):
    return train_main(["--dataset", dataset, "--out-dir", str(out_dir), *SMALL, *extra])


def history(out_dir):
    return torch.load(out_dir / "checkpoint.pt", weights_only=False)["history"]


def test_training_lowers_validation_loss(generated_dataset, tmp_path):
    ckpt = run(generated_dataset, tmp_path, "--steps", "150", "--lr", "1e-3", "--valid-every", "50", "--valid-batches", "4")
    h = history(tmp_path)
    assert h["valid_step"] == [0, 50, 100, 150]
    assert h["valid_loss"][-1] < h["valid_loss"][0] - 0.5, h["valid_loss"]
    assert (tmp_path / "losses.png").stat().st_size > 10_000
    assert list((tmp_path / "skill_model" / "scalars").rglob("*.csv")), "CSV logger wrote nothing"
    model = load_skill_model(ckpt)
    assert model.z_dim == 8 and not torch.equal(model.normalizer.scale, torch.ones(4))


def test_resume_continues_exactly(tiny_dataset, tmp_path):
    common = ["--steps", "30", "--log-every", "1", "--valid-every", "10", "--ckpt-every", "15"]
    run(tiny_dataset, tmp_path / "straight", *common)
    # an interrupted run: stops at step 15 (its last checkpoint), then resumes to 30
    run(tiny_dataset, tmp_path / "resumed", *common[:-4], "--steps", "15", "--valid-every", "10", "--ckpt-every", "15")
    run(tiny_dataset, tmp_path / "resumed", *common, "--resume")
    a, b = history(tmp_path / "straight"), history(tmp_path / "resumed")
    assert a["step"] == b["step"] == list(range(1, 31))
    assert a["loss"] == b["loss"]
    valid_a, valid_b = dict(zip(a["valid_step"], a["valid_loss"])), dict(zip(b["valid_step"], b["valid_loss"]))
    assert valid_b.pop(15) is not None  # the interrupted run validated when it stopped
    assert valid_a == valid_b and list(valid_a) == [0, 10, 20, 30]


def test_resume_without_checkpoint_is_a_clear_error(tiny_dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        run(tiny_dataset, tmp_path, "--steps", "2", "--resume")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_dataset, tmp_path):
    with pytest.raises(FloatingPointError, match="Non-finite loss at step") as err:
        run(tiny_dataset, tmp_path, "--steps", "50", "--lr", "1e30", "--grad-clip", "0", "--ckpt-every", "1")
    assert "last good checkpoint" in str(err.value)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_wrong_state_key_is_a_clear_error(tiny_dataset, tmp_path):
    with pytest.raises(KeyError, match="not an observation entry"):
        run(tiny_dataset, tmp_path, "--steps", "2", "--state-key", "position")


def test_concatenated_state_keys(tiny_dataset, tmp_path):
    ckpt = run(tiny_dataset, tmp_path, "--steps", "2", "--state-key", "achieved_goal", "observation")
    assert load_skill_model(ckpt).state_dim == 6
    assert torch.load(ckpt, weights_only=False)["state_key"] == ["achieved_goal", "observation"]


def test_keep_best_returns_the_model_at_the_lowest_validation_loss(generated_dataset, tmp_path):
    path = run(generated_dataset, tmp_path, "--steps", "60", "--lr", "1e-3", "--valid-every", "20",
               "--valid-batches", "2", "--keep-best", "--gru-layers", "2", "--gru-hidden-dim", "8")  # fmt: skip
    assert path == tmp_path / "best.pt"
    best, last = (torch.load(tmp_path / n, weights_only=False) for n in ("best.pt", "checkpoint.pt"))
    h = last["history"]
    best_step = h["valid_step"][1:][min(range(len(h["valid_loss"]) - 1), key=lambda i: h["valid_loss"][1:][i])]
    assert best["step"] == best_step
    model = load_skill_model(path)
    assert model.skill_posterior.gru.num_layers == 2 and model.skill_posterior.gru.hidden_size == 8
