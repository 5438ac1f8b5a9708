"""StallEscape: a stalled row drives a random direction for a while, then the policy acts again."""
import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from torchrl_skills.modules import StallEscape


def _pusher():
    return TensorDictModule(lambda obs: torch.full((*obs.shape[:-1], 2), 0.5), ["observation"], ["action"])


def test_only_stalled_rows_escape_for_escape_steps():
    policy = StallEscape(_pusher(), stall_steps=4, escape_steps=3, generator=torch.Generator().manual_seed(0))
    overridden = []
    for t in range(12):
        obs = torch.zeros(2, 4)
        obs[1, 0] = 0.1 * t  # row 1 moves 0.1 per step, row 0 stands still
        td = policy(TensorDict(observation=obs, batch_size=[2]))
        overridden.append((td["action"] != 0.5).any(-1).tolist())
        if overridden[-1][0]:
            assert td["action"][0].norm() == pytest.approx(1.0, abs=1e-5)  # a unit direction in the box
    assert [row[1] for row in overridden] == [False] * 12
    # row 0: stalled after 4 steps at rest, 3 escape steps, then 4 more at rest
    assert [row[0] for row in overridden] == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    assert policy.escapes == 2


def test_new_episode_resets_the_row():
    policy = StallEscape(_pusher(), stall_steps=2, escape_steps=5)
    td = TensorDict(observation=torch.zeros(1, 4), is_init=torch.zeros(1, 1, dtype=torch.bool), batch_size=[1])
    policy(td.clone()); out = policy(td.clone())  # fmt: skip
    assert (out["action"] != 0.5).any()  # escaping
    td["is_init"][:] = True
    assert (policy(td.clone())["action"] == 0.5).all()  # a new episode: the policy acts


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="stall_steps"):
        StallEscape(_pusher(), stall_steps=0)
    with pytest.raises(KeyError, match="observation_key"):
        StallEscape(_pusher())(TensorDict(obs=torch.zeros(1, 4), batch_size=[1]))


def test_finished_rows_are_not_counted_and_their_draws_do_not_change_the_live_rows():
    """A frozen finished row stalls too; it must not add to ``escapes`` nor change a live row's directions."""

    def run(done_row_1):
        policy = StallEscape(_pusher(), stall_steps=2, escape_steps=2, generator=torch.Generator().manual_seed(3))
        actions = []
        for _ in range(6):
            done = torch.tensor([[False], [done_row_1]])
            actions.append(policy(TensorDict(observation=torch.zeros(2, 4), done=done, batch_size=[2]))["action"][0])
        return policy.escapes, torch.stack(actions)

    escapes_live, actions_live = run(False)
    escapes_done, actions_done = run(True)
    assert escapes_live == 4 and escapes_done == 2  # both rows stall twice; only the live row counts
    torch.testing.assert_close(actions_live, actions_done)
