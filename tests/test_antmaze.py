"""The AntMaze pipeline: direction expert, ant navigate datasets, paper-size skill model, planning."""
from __future__ import annotations

import minari
import numpy as np
import pytest
import torch
from tensordict import TensorDict

pytest.importorskip("ogbench")

from torchrl_skills.modules.direction_expert import (  # noqa: E402
    ANT_EXPERT_PATH,
    DirectionExpert,
    load_direction_expert,
    make_direction_actor,
    measure_direction_speed,
    save_direction_expert,
)

#: Measured (8 directions x 300 steps, seed 0): uniform random actions move the ant 0.03 m/s along
#: the direction in absolute value at most; the shipped expert walks at over 1 m/s (README).
RANDOM_SPEED_BOUND = 0.1
EXPERT_MIN_SPEED = 0.5


def test_expert_file_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    actor = make_direction_actor(29, 8, hidden_sizes=(32, 32))
    with torch.no_grad():  # a non-trivial policy, so that equal actions mean equal weights
        for p in actor.parameters():
            p.normal_(0, 0.3)
    path = save_direction_expert(tmp_path / "e.pt", actor, {"env": "online-ant-v0", "steps": 7}, {"speed_mps": 1.0})
    assert path.stat().st_size < 50_000
    expert = load_direction_expert(path)
    obs, direction = np.random.randn(5, 27), np.tile([[0.0, 1.0]], (5, 1))
    actions = expert(obs, direction)
    assert actions.shape == (5, 8) and np.abs(actions).max() <= 1.0
    np.testing.assert_allclose(actions, DirectionExpert(actor)(obs, direction), atol=1e-6)
    assert expert.settings["steps"] == 7 and expert.metrics["speed_mps"] == 1.0
    # deterministic: the same input gives the same action
    np.testing.assert_array_equal(actions, expert(obs, direction))

    with pytest.raises(FileNotFoundError, match="train_ant_expert.py"):
        load_direction_expert(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="bad.pt"):
        load_direction_expert(tmp_path / "bad.pt")
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a direction-expert file"):
        load_direction_expert(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="27-d agent observations"):
        expert(np.zeros((2, 15)), np.zeros((2, 2)))


def test_shipped_expert_walks_along_commanded_directions():
    assert ANT_EXPERT_PATH.is_file(), "the package ships torchrl_skills/assets/ant_expert.pt"
    assert ANT_EXPERT_PATH.stat().st_size < 1_000_000
    expert = load_direction_expert()
    assert expert.settings["env"] == "online-ant-v0" and expert.observation_dim == 29
    random_speed = measure_direction_speed("random", num_directions=8, steps=300, seed=0)
    expert_speed = measure_direction_speed(expert, num_directions=8, steps=300, seed=0)
    assert np.abs(random_speed).max() < RANDOM_SPEED_BOUND
    assert expert_speed.mean() > EXPERT_MIN_SPEED, expert_speed
    assert expert_speed.min() > 0, "it walks along every commanded direction, not only some"


@pytest.fixture(scope="module")
def ant_dataset(minari_store):
    from torchrl_skills.data.ogbench import generate_ogbench_dataset

    return generate_ogbench_dataset(
        "antmaze-medium-navigate-v0", num_episodes=2, episode_length=120, num_envs=2, seed=0, progress=False
    )


def test_ant_episodes_are_valid_minari_episodes(ant_dataset):
    from torchrl_skills.data.minari_store import read_generator_metadata

    dataset = minari.load_dataset(ant_dataset)
    assert dataset.total_episodes == 2 and dataset.total_steps == 240
    assert dataset.spec.env_spec.id == "antmaze-medium-v0"
    for ep in dataset.iterate_episodes():
        assert ep.observations.shape == (121, 29) and ep.actions.shape == (120, 8)
        assert np.abs(ep.actions).max() <= 1.0
        assert ep.truncations[-1] and not ep.terminations.any()
        # the observation starts with the ant's x-y, which qpos holds too
        np.testing.assert_allclose(ep.observations[:, :2], ep.infos["qpos"][:, :2], atol=1e-5)
    info = read_generator_metadata(ant_dataset)["torchrl_skills_generator"]
    assert info["expert"].startswith("DirectionExpert") and info["noise"] == 0.2
    assert "speed_mps" in info["expert_metrics"]
    # the steps the shipped expert was trained for, not the --steps its run was started with
    assert info["expert_env_steps"] == info["expert_metrics"]["env_steps"]


def test_reusing_ant_data_walked_by_another_expert_warns(ant_dataset, tmp_path):
    import warnings

    from torchrl_skills.data.ogbench import ensure_ogbench_dataset

    kwargs = dict(num_episodes=2, episode_length=120)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same (shipped) expert: reused silently
        assert ensure_ogbench_dataset("antmaze-medium-navigate-v0", **kwargs) == ant_dataset
    other = save_direction_expert(
        tmp_path / "interim.pt", make_direction_actor(29, 8, hidden_sizes=(8, 8)), {"env": "online-ant-v0"}, {"env_steps": 7}
    )
    regenerate = "python -m torchrl_skills.data.ogbench --dataset antmaze-medium-navigate-v0 --overwrite"
    with pytest.warns(UserWarning, match=f"expert_env_steps.*{regenerate}"):
        assert ensure_ogbench_dataset("antmaze-medium-navigate-v0", expert=str(other), **kwargs) == ant_dataset


def test_ant_dataset_round_trip_through_skill_dataset(ant_dataset):
    from torchrl_skills.data import SkillDataset

    data = SkillDataset(ant_dataset, seq_len=40, batch_size=6, state_key="observation")
    batch = data.sample()
    assert batch["observation"].shape == (6, 40, 29) and batch["action"].shape == (6, 40, 8)
    assert batch["next", "observation"].shape == (6, 40, 29)
    # consecutive states chain: next observation of step t is the observation of step t + 1
    torch.testing.assert_close(batch["next", "observation"][:, :-1], batch["observation"][:, 1:])


def test_paper_size_skill_model_steps_on_a_tiny_batch():
    from torchrl_skills.modules import SkillModel
    from torchrl_skills.objectives import SkillModelLoss

    torch.manual_seed(0)
    # the authors' AntMaze setting: z 256, hidden 256, a 4-layer bidirectional GRU of 256 per direction
    model = SkillModel(29, 8, z_dim=256, hidden_dim=256, gru_hidden_dim=256, gru_layers=4)
    assert model.skill_posterior.gru.num_layers == 4 and model.skill_posterior.gru.hidden_size == 256
    loss_fn = SkillModelLoss(model)
    td = TensorDict(
        {"observation": torch.randn(3, 40, 29), "action": torch.rand(3, 40, 8) * 2 - 1,
         ("next", "observation"): torch.randn(3, 40, 29)},
        [3, 40],
    )  # fmt: skip
    opts = [torch.optim.Adam(loss_fn.posterior_parameters(), lr=5e-5),
            torch.optim.Adam(loss_fn.model_parameters(), lr=5e-5)]  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = loss_fn(td)
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    for opt in opts:
        opt.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("skill_posterior.gru") for k in changed)
    assert any(k.startswith("skill_world_model") for k in changed) and any(k.startswith("skill_policy") for k in changed)


def test_planner_returns_skills_for_a_batch_of_ant_states():
    from torchrl_skills.envs import OGBenchMazeEnv
    from torchrl_skills.modules import SkillModel, SkillMPCPolicy, make_skill_planner

    torch.manual_seed(0)
    model = SkillModel(29, 8, z_dim=8, hidden_dim=32).eval()
    planner = make_skill_planner(model, num_candidates=32, top_k=4, optim_steps=2)
    policy = SkillMPCPolicy(model, planner, replan_every=10)
    env = OGBenchMazeEnv("antmaze-medium-navigate-v0", num_envs=3, task_ids=[1, 2, 3])
    env = env.append_transform(policy.make_tensordict_primer())
    td = policy(env.reset())
    assert td["action"].shape == (3, 8) and td["skill"].shape == (3, 8)
    assert torch.isfinite(td["action"]).all()
    # the planned skill end points are x-y of the ant's state, one per episode
    td = env.step(td)
    assert td["next", "skill_end"].shape[0] == 3


def test_oracle_walks_the_ant_along_the_route_to_the_goal():
    from torchrl_skills.evaluation.ogbench import OGBenchOraclePolicy, evaluate_ogbench

    policy = OGBenchOraclePolicy("antmaze-medium-navigate-v0")
    assert policy.in_keys == ["achieved_goal", "desired_goal", "observation"]
    # task 3 is the shortest (6 cells); the shipped expert walks it in ~220 of the 1000 steps
    result = evaluate_ogbench(policy, "antmaze-medium-navigate-v0", episodes_per_task=1, tasks=[3], progress=False)
    assert result.success_rate == 1.0 and result.episodes[0]["steps"] < 500, result.episodes


def test_restored_ant_state_replays_the_data_exactly(ant_dataset):
    """The skill-replay diagnostic restores MuJoCo states from observations: the data's own actions
    from a restored state must give the data's next observations (float32 rounding only)."""
    from torchrl_skills.envs.ogbench_maze import make_ogbench_env
    from torchrl_skills.evaluation.skill_replay import restore_maze_state

    ep = next(minari.load_dataset(ant_dataset).iterate_episodes())
    env = make_ogbench_env("antmaze-medium-navigate-v0")
    env.reset(seed=123)  # another reset noise than the data's: the restore must overwrite it
    restore_maze_state(env, ep.observations[50])
    for t in range(50, 70):
        obs = env.step(ep.actions[t])[0]
    np.testing.assert_allclose(obs, ep.observations[70], atol=1e-4)
    # without the restore the same actions end elsewhere
    env.reset(seed=123)
    for t in range(50, 70):
        obs = env.step(ep.actions[t])[0]
    assert np.abs(obs[:2] - ep.observations[70][:2]).max() > 0.1
    with pytest.raises(ValueError, match=r"neither qpos \(15\) nor \[qpos, qvel\] \(29\)"):
        restore_maze_state(env, np.zeros(27))
    env.close()


def test_replay_skills_reports_predicted_and_realised_progress(ant_dataset, tmp_path):
    from torchrl_skills.evaluation.skill_replay import plot_skill_replay, replay_skills
    from torchrl_skills.modules import SkillModel

    torch.manual_seed(0)
    model = SkillModel(29, 8, z_dim=8, hidden_dim=32)
    out = replay_skills(model, ant_dataset, "antmaze-medium-navigate-v0", seq_len=40, num_starts=3, candidates=(1, 16))
    names = ["posterior", "best of 1, data direction", "best of 1, random direction",
             "best of 16, data direction", "best of 16, random direction"]  # fmt: skip
    assert list(out["cases"]) == names and list(out["summary"]) == names
    for case in out["cases"].values():
        assert all(len(case[key]) == 3 and np.isfinite(case[key]).all() for key in ("predicted", "realised", "miss"))
        assert min(case["miss"]) >= 0
    # an untrained low level hardly moves the ant (measured on 3 model seeds: at most 0.65 m in 40
    # steps, against 4.4-5.5 m for the data's own chunks): the realised progress is the env's
    assert out["data_progress"] > 3.0
    assert max(abs(v) for case in out["cases"].values() for v in case["realised"]) < 0.25 * out["data_progress"]
    # selection on the world model's prediction: the best of 16 is predicted at least as far as the
    # single draw, for each start, when the noise penalty is off
    out = replay_skills(model, ant_dataset, "antmaze-medium-navigate-v0", seq_len=10, num_starts=3,
                        candidates=(1, 16), directions=("data",), eps_penalty=0.0, seed=1)  # fmt: skip
    one, best = out["cases"]["best of 1, data direction"], out["cases"]["best of 16, data direction"]
    assert np.median(best["predicted"]) >= np.median(one["predicted"])
    assert plot_skill_replay(out, tmp_path / "replay.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="Unknown direction 'up'"):
        replay_skills(model, ant_dataset, "antmaze-medium-navigate-v0", seq_len=10, directions=("up",))
