"""Minari datasets in TorchRL storage and [B, T] slice sampling."""
from __future__ import annotations

import minari
import numpy as np
import pytest
import torch

from torchrl_skills.data import DatasetNotFoundError, SkillDataset, load_minari_transitions


def test_transitions_match_minari_episodes(tiny_dataset):
    td = load_minari_transitions(tiny_dataset)
    episodes = list(minari.load_dataset(tiny_dataset).iterate_episodes())
    assert td.shape == (sum(len(ep.actions) for ep in episodes),)
    assert td["observation"].shape == (td.shape[0], 4) and td["action"].shape == (td.shape[0], 2)
    first = episodes[1]
    rows = td[td["episode"] == 1]
    np.testing.assert_allclose(rows["observation"].numpy(), first.observations["observation"][:-1], rtol=1e-6)
    np.testing.assert_allclose(rows["next", "observation"].numpy(), first.observations["observation"][1:], rtol=1e-6)
    np.testing.assert_allclose(rows["action"].numpy(), first.actions, rtol=1e-6)
    assert rows["next", "done"][-1].item() and not rows["next", "done"][:-1].any()


def test_state_key_selects_the_entry(tiny_dataset):
    td = load_minari_transitions(tiny_dataset, state_key="achieved_goal")
    assert td["observation"].shape[-1] == 2
    with pytest.raises(KeyError, match="available entries"):
        load_minari_transitions(tiny_dataset, state_key="qpos")
    with pytest.raises(ValueError, match="pass state_key"):
        load_minari_transitions(tiny_dataset, state_key=None)


def test_list_of_state_keys_is_concatenated(tiny_dataset):
    # AntMaze's "observation" has no x-y: the state is built as [achieved_goal, observation]
    both = load_minari_transitions(tiny_dataset, state_key=["achieved_goal", "observation"])
    xy = load_minari_transitions(tiny_dataset, state_key="achieved_goal")
    obs = load_minari_transitions(tiny_dataset)
    assert torch.equal(both["observation"], torch.cat([xy["observation"], obs["observation"]], -1))
    assert torch.equal(both["next", "observation"][:, :2], xy["next", "observation"])


def test_slices_never_cross_episodes(tiny_dataset):
    data = SkillDataset(tiny_dataset, seq_len=25, batch_size=64, valid_fraction=0.2)
    for _ in range(20):
        batch = data.sample()
        assert batch.batch_size == (64, 25)
        assert (batch["episode"] == batch["episode"][:, :1]).all()
        # consecutive steps really are consecutive: s_{t+1} of step t is s of step t+1
        assert torch.equal(batch["next", "observation"][:, :-1], batch["observation"][:, 1:])


def test_train_and_validation_hold_different_episodes(tiny_dataset):
    data = SkillDataset(tiny_dataset, seq_len=10, batch_size=32, valid_fraction=0.25)
    train_eps = set(data.train_buffer[:]["episode"].unique().tolist())
    valid_eps = set(data.valid_buffer[:]["episode"].unique().tolist())
    assert len(valid_eps) == 3 and not train_eps & valid_eps and len(train_eps | valid_eps) == 12
    assert set(data.sample("valid")["episode"].unique().tolist()) <= valid_eps
    states = data.train_buffer[:]["observation"]
    assert torch.allclose(data.state_loc, states.mean(0))


def test_position_jump_splits_episodes(teleport_dataset):
    plain = load_minari_transitions(teleport_dataset)
    jumps = (plain["next", "observation"][:, :2] - plain["observation"][:, :2]).norm(dim=-1)
    assert (jumps > 1.0).sum() == 2  # out by 5 and back
    split = load_minari_transitions(teleport_dataset, max_position_jump=1.0)
    kept = (split["next", "observation"][:, :2] - split["observation"][:, :2]).norm(dim=-1)
    assert (kept <= 1.0).all() and split.shape[0] == plain.shape[0] - 2
    assert split["episode"].unique().numel() == 3  # episode 0 is cut in two around the jump
    data = SkillDataset(teleport_dataset, seq_len=15, batch_size=50, valid_fraction=0.0, max_position_jump=1.0)
    batch = data.sample()
    steps = (batch["next", "observation"][..., :2] - batch["observation"][..., :2]).norm(dim=-1)
    assert (steps <= 1.0).all()


def test_unknown_dataset_is_a_clear_error(minari_store):
    with pytest.raises(DatasetNotFoundError) as err:
        SkillDataset("someone/nothing-v0")
    message = str(err.value)
    assert "someone/nothing-v0" in message
    assert str(minari_store / "someone/nothing-v0") in message
    assert "python -m torchrl_skills.data.pointmaze --maze medium" in message


def test_seq_len_longer_than_every_episode(tiny_dataset):
    with pytest.raises(ValueError, match=r"longer than every episode .*longest: 60.*seq_len <= 60"):
        SkillDataset(tiny_dataset, seq_len=61)
    assert SkillDataset(tiny_dataset, seq_len=60, batch_size=2, valid_fraction=0).sample().shape == (2, 60)
