"""SharedWeights: copies of a module in other processes act with the learner's live weights,
through TorchRL's multi-process collectors (whose env factories travel by cloudpickle)."""
from __future__ import annotations

import copy

import cloudpickle
import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from torchrl_skills.utils.shared_weights import SharedWeights


def test_a_cloudpickled_copy_reads_the_published_weights():
    learner = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    shared = SharedWeights(learner)
    before = [p for p in learner.parameters()]
    # what a multi-process collector does with an env factory: cloudpickle it, call it elsewhere
    copy_ = cloudpickle.loads(cloudpickle.dumps(lambda: shared.bind(copy.deepcopy(learner))))()
    stale = cloudpickle.loads(cloudpickle.dumps(lambda: learner))()  # what it does without SharedWeights
    with torch.no_grad():
        learner[2].bias.fill_(3.0)
        learner[1].running_mean.fill_(0.5)
    shared.publish()
    x = torch.randn(4, 2)
    learner.eval(), copy_.eval()
    torch.testing.assert_close(copy_(x), learner(x))
    assert stale[2].bias.item() != 3.0
    assert [p for p in learner.parameters()] == before  # the learner's own parameters are untouched


def _constant_low_policy(value: float) -> TensorDictModule:
    """Pendulum's low-level policy a = bias (weights 0), so collected actions show the weights acted with."""
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(value)
    return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])


def _hierarchical_env(low_policy):
    from torchrl.data import Bounded
    from torchrl.envs import GymEnv

    from torchrl_skills.envs import HierarchicalEnv

    return HierarchicalEnv(GymEnv("Pendulum-v1"), low_policy, Bounded(-1.0, 1.0, (2,)), k=2)


@pytest.mark.slow
def test_multiprocess_collection_acts_with_the_live_learner_weights():
    # HIGL's multi-process collection: the low-level policy runs inside each worker's
    # HierarchicalEnv. Worker 0 binds its copy to SharedWeights (as the HIGL examples do), worker 1
    # gets the plain module (what share_memory() alone gave): after the learner's update, worker 0
    # acts with the new weights and worker 1 with the ones it started with.
    from torchrl.collectors import MultiSyncCollector

    learner = _constant_low_policy(0.5)
    shared = SharedWeights(learner)
    live = lambda: _hierarchical_env(shared.bind(copy.deepcopy(learner)))  # noqa: E731
    stale = lambda: _hierarchical_env(learner)  # noqa: E731
    collector = MultiSyncCollector([live, stale], None, frames_per_batch=8, total_frames=-1, cat_results="stack")
    try:
        batches = iter(collector)
        first = next(batches)["next", "low_level", "action"]
        assert torch.allclose(first, torch.tensor(0.5))
        with torch.no_grad():
            learner.module.bias.fill_(-1.5)  # an optimizer step of the learner
        shared.publish()
        for _ in range(3):  # a batch collected before the update may still be in flight
            actions = next(batches)["next", "low_level", "action"]
        assert torch.allclose(actions[0], torch.tensor(-1.5)), actions[0].unique()
        assert torch.allclose(actions[1], torch.tensor(0.5)), actions[1].unique()
    finally:
        collector.shutdown()
