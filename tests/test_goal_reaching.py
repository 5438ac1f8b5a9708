"""Goal-reaching statistics from stored success flags (torchrl_skills.data.goal_reaching)."""
from __future__ import annotations

import numpy as np
import pytest

from torchrl_skills.data import dataset_goal_reaching_stats, goal_reaching_stats


def _flags(length, arrivals, start=False):
    flags = np.zeros(length + 1, dtype=bool)
    flags[0] = start
    flags[list(arrivals)] = True
    return flags


def test_hand_computed_statistics():
    episodes = [
        # goals reached after 4, 6 and 12 steps; the fourth pending for 8 steps at the end (30 - 22)
        _flags(30, [4, 10, 22]),
        # the start flag is not an arrival; one goal after 3 steps, then pending for 17 steps
        _flags(20, [3], start=True),
    ]
    stats = goal_reaching_stats(episodes, goal_budget=10)
    # arrivals 4, 6, 12, 3: three within 10 steps, one late; pending 8 (unknown, left out) and 17 (timed out)
    assert stats["goals_reached"] == 4
    assert stats["goals_timed_out"] == 2
    assert stats["goal_reaching_rate"] == pytest.approx(3 / 5)
    assert stats["mean_steps_to_goal"] == pytest.approx((4 + 6 + 12 + 3) / 4)
    assert stats["goal_budget"] == 10
    # a longer budget: every arrival counts and no pending goal had its whole budget
    assert goal_reaching_stats(episodes, goal_budget=20)["goal_reaching_rate"] == 1.0
    # a goal pending for exactly the budget has had all of it
    assert goal_reaching_stats([_flags(10, [])], goal_budget=10)["goals_timed_out"] == 1
    assert np.isnan(goal_reaching_stats([_flags(5, [])], goal_budget=10)["goal_reaching_rate"])


@pytest.mark.parametrize("budget", [0, -3, 2.5, True, None])
def test_bad_budget(budget):
    with pytest.raises(ValueError, match="goal_budget must be an integer >= 1"):
        goal_reaching_stats([_flags(5, [2])], goal_budget=budget)


def test_rescoring_a_stored_dataset_matches_what_generation_recorded(minari_store, capsys):
    pytest.importorskip("ogbench")
    import minari

    from torchrl_skills.data.ogbench import GOAL_BUDGET, generate_ogbench_dataset, main

    # budget 60 on 1000-step episodes: some goals of the medium maze take the point longer. The session's store
    # may already hold this id from another test (docstring examples) with other settings: overwrite it
    dataset_id = generate_ogbench_dataset(
        "pointmaze-medium-navigate-v0", num_episodes=2, episode_length=1000, num_envs=2, seed=3, progress=False,
        goal_budget=60, overwrite=True,
    )  # fmt: skip
    recorded = minari.load_dataset(dataset_id).storage.metadata["torchrl_skills_generator"]
    rescored = dataset_goal_reaching_stats(dataset_id, goal_budget=60)
    for key in ("goals_reached", "goals_timed_out", "goal_reaching_rate", "mean_steps_to_goal", "goal_budget"):
        assert rescored[key] == pytest.approx(recorded[key])
    assert recorded["goals_timed_out"] > 0  # the budget bites, so the comparison below can fail
    longer = dataset_goal_reaching_stats(dataset_id, goal_budget=GOAL_BUDGET)
    assert longer["goals_reached"] == recorded["goals_reached"]
    assert longer["goal_reaching_rate"] > recorded["goal_reaching_rate"]
    # the command line reports the recorded statistics for their own budget and rescores for another
    cli = ["--dataset", "pointmaze-medium-navigate-v0", "--num-episodes", "2", "--no-progress", "--goal-budget"]
    main([*cli, "60"])
    out = capsys.readouterr().out
    assert "already present" in out and "rescored" not in out
    assert f"goal-reaching rate: {recorded['goal_reaching_rate']:.4f}" in out
    main([*cli, str(GOAL_BUDGET)])
    out = capsys.readouterr().out
    assert f"goal-reaching rate: {longer['goal_reaching_rate']:.4f}" in out and "rescored from the stored episodes" in out


def test_rescoring_needs_success_flags(minari_store, tiny_dataset):
    with pytest.raises(ValueError, match="stores no per-step 'success' infos"):
        dataset_goal_reaching_stats(tiny_dataset, goal_budget=10)
