"""Throughput of the AntMaze pipeline's heavy parts, each against a reference measured in the same run.

1. Expert training (``examples/train_ant_expert.py``): env steps/s of TorchRL's ``Collector`` on
   ``online-ant-v0`` + ``GymXYWrapper`` with random actions, against the raw gymnasium loop on the
   same env; SAC updates/s of TorchRL's ``SACLoss`` + ``SoftUpdate`` (2x256, batch 256, two
   critics), against the same update written in plain PyTorch (same networks, same math).
2. Ant data generation (``torchrl_skills.data.ogbench`` with the shipped expert, ``--num-envs``
   envs side by side, one batched expert call per step): steps/s against the raw ``antmaze``
   env stepped with random actions.
3. One EM step of the skill model (B 100, T 40): the paper's AntMaze size (z 256, hidden 256,
   posterior a 4-layer bidirectional GRU of 256 per direction) and the CPU preset of
   ``examples/ogbench_antmaze.py`` (z 64, hidden 256, a 1-layer GRU of 128 per direction).

    python benchmarks/bench_antmaze.py                  # about 2 minutes on 2 CPU cores
    python benchmarks/bench_antmaze.py --device cuda    # the model parts on a GPU

A script, not a test: timings on a shared machine are noisy; the ratios are what carry over.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn


def raw_ant_steps_per_s(steps: int) -> float:
    import gymnasium
    import ogbench.online_locomotion  # noqa: F401
    from ogbench.online_locomotion.wrappers import GymXYWrapper

    env = GymXYWrapper(gymnasium.make("online-ant-v0"), resample_interval=100)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def collector_steps_per_s(steps: int, frames_per_batch: int = 50) -> float:
    import gymnasium
    import ogbench.online_locomotion  # noqa: F401
    from ogbench.online_locomotion.wrappers import GymXYWrapper
    from torchrl.collectors import Collector
    from torchrl.envs import Compose, DoubleToFloat, GymWrapper, RewardSum, TransformedEnv

    env = TransformedEnv(
        GymWrapper(GymXYWrapper(gymnasium.make("online-ant-v0"), resample_interval=100)),
        Compose(DoubleToFloat(), RewardSum()),
    )
    collector = Collector(env, None, frames_per_batch=frames_per_batch, total_frames=steps)  # None: random actions
    start = time.perf_counter()
    for _ in collector:
        pass
    elapsed = time.perf_counter() - start
    collector.shutdown()
    return steps / elapsed


def sac_updates_per_s(updates: int, device) -> tuple[float, float]:
    """TorchRL's SACLoss against a plain-PyTorch SAC update of the same networks (interleaved)."""
    from torchrl.data import Bounded
    from torchrl.modules import MLP, ValueOperator
    from torchrl.objectives import SACLoss, SoftUpdate

    from torchrl_skills.modules.direction_expert import make_direction_actor

    obs_dim, act_dim, batch = 29, 8, 256
    actor = make_direction_actor(obs_dim, act_dim).to(device)
    qvalue = ValueOperator(MLP(obs_dim + act_dim, 1, num_cells=[256, 256], activation_class=nn.ReLU),
                           in_keys=["observation", "action"]).to(device)  # fmt: skip
    loss_fn = SACLoss(actor, qvalue, num_qvalue_nets=2, action_spec=Bounded(-1.0, 1.0, (act_dim,)),
                      target_entropy=-0.5 * act_dim)  # fmt: skip
    loss_fn.make_value_estimator(gamma=0.99)
    updater = SoftUpdate(loss_fn, tau=0.005)
    opt = torch.optim.Adam(loss_fn.parameters(), lr=1e-4)
    td = TensorDict(
        {"observation": torch.randn(batch, obs_dim), "action": torch.rand(batch, act_dim) * 2 - 1,
         ("next", "observation"): torch.randn(batch, obs_dim), ("next", "reward"): torch.randn(batch, 1),
         ("next", "done"): torch.zeros(batch, 1, dtype=torch.bool),
         ("next", "terminated"): torch.zeros(batch, 1, dtype=torch.bool)},
        [batch], device=device,
    )  # fmt: skip

    def torchrl_update():
        losses = loss_fn(td)
        opt.zero_grad(set_to_none=True)
        (losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]).backward()
        opt.step()
        updater.step()

    # plain PyTorch: the same math (tanh-Gaussian actor, two critics and their targets, temperature)
    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, o)).to(device)

    pi, q1, q2 = mlp(obs_dim, 2 * act_dim), mlp(obs_dim + act_dim, 1), mlp(obs_dim + act_dim, 1)
    t1, t2 = mlp(obs_dim + act_dim, 1), mlp(obs_dim + act_dim, 1)
    log_alpha = torch.zeros((), device=device, requires_grad=True)
    plain_opt = torch.optim.Adam([*pi.parameters(), *q1.parameters(), *q2.parameters(), log_alpha], lr=1e-4)
    obs, act, nobs = td["observation"], td["action"], td["next", "observation"]
    rew, notdone = td["next", "reward"], 1.0 - td["next", "terminated"].float()

    def sample(o):
        loc, raw = pi(o).chunk(2, -1)
        scale = nn.functional.softplus(raw + 0.5413) + 1e-4
        u = loc + scale * torch.randn_like(loc)
        a = torch.tanh(u)
        logp = (torch.distributions.Normal(loc, scale).log_prob(u) - torch.log1p(-a.pow(2) + 1e-6)).sum(-1, keepdim=True)
        return a, logp

    def plain_update():
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            na, nlogp = sample(nobs)
            x = torch.cat([nobs, na], -1)
            target = rew + 0.99 * notdone * (torch.minimum(t1(x), t2(x)) - alpha * nlogp)
        x = torch.cat([obs, act], -1)
        q_loss = (q1(x) - target).pow(2).mean() + (q2(x) - target).pow(2).mean()
        a, logp = sample(obs)
        x = torch.cat([obs, a], -1)
        actor_loss = (alpha * logp - torch.minimum(q1(x), q2(x))).mean()
        alpha_loss = -(log_alpha * (logp.detach() + -0.5 * act_dim)).mean()
        plain_opt.zero_grad(set_to_none=True)
        (q_loss + actor_loss + alpha_loss).backward()
        plain_opt.step()
        with torch.no_grad():
            for target_net, net in ((t1, q1), (t2, q2)):
                for tp, p in zip(target_net.parameters(), net.parameters()):
                    tp.lerp_(p, 0.005)

    return _interleaved(torchrl_update, plain_update, updates, device)


def _interleaved(first, second, n: int, device, rounds: int = 5) -> tuple[float, float]:
    """Calls per second of two functions, timed in alternating rounds; medians."""
    for fn in (first, second):
        for _ in range(3):
            fn()
    rates = ([], [])
    for _ in range(rounds):
        for fn, out in zip((first, second), rates):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(max(1, n // rounds)):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            out.append(max(1, n // rounds) / (time.perf_counter() - start))
    return statistics.median(rates[0]), statistics.median(rates[1])


def raw_antmaze_steps_per_s(steps: int) -> float:
    import gymnasium
    import ogbench.locomaze  # noqa: F401

    env = gymnasium.make("antmaze-medium-v0", terminate_at_goal=False, max_episode_steps=steps + 1).unwrapped
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(env.action_space.sample())
    return steps / (time.perf_counter() - start)


def generation_steps_per_s(num_envs: int, length: int, expert) -> float:
    from torchrl_skills.data.minari_store import read_generator_metadata
    from torchrl_skills.data.ogbench import generate_ogbench_dataset

    with tempfile.TemporaryDirectory() as root:
        old = os.environ.get("MINARI_DATASETS_PATH")
        os.environ["MINARI_DATASETS_PATH"] = root
        try:
            dataset_id = generate_ogbench_dataset(
                "antmaze-medium-navigate-v0", num_episodes=num_envs, episode_length=length, num_envs=num_envs,
                progress=False, expert=expert,
            )  # fmt: skip
            stats = read_generator_metadata(dataset_id)["torchrl_skills_generator"]
        finally:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH")
            else:
                os.environ["MINARI_DATASETS_PATH"] = old
    return stats["steps_per_s"]


def em_step_seconds(device, z: int, hidden: int, gru_layers: int, gru_hidden: int, repeats: int) -> float:
    from torchrl_skills.modules import SkillModel
    from torchrl_skills.objectives import SkillModelLoss

    batch, seq_len, state_dim, action_dim = 100, 40, 29, 8
    model = SkillModel(state_dim, action_dim, z_dim=z, hidden_dim=hidden, gru_hidden_dim=gru_hidden,
                       gru_layers=gru_layers).to(device)  # fmt: skip
    loss_fn = SkillModelLoss(model)
    opts = [torch.optim.Adam(loss_fn.posterior_parameters(), lr=5e-5),
            torch.optim.Adam(loss_fn.model_parameters(), lr=5e-5)]  # fmt: skip
    td = TensorDict(
        {"observation": torch.randn(batch, seq_len, state_dim), "action": torch.rand(batch, seq_len, action_dim) * 2 - 1,
         ("next", "observation"): torch.randn(batch, seq_len, state_dim)},
        [batch, seq_len], device=device,
    )  # fmt: skip

    def step():
        losses = loss_fn(td)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
        for opt in opts:
            opt.step()

    rate, _ = _interleaved(step, lambda: None, repeats, device, rounds=min(repeats, 5))
    return 1.0 / rate


def main():
    from torchrl_skills.utils import quiet_torchrl_logging

    quiet_torchrl_logging()  # torchrl's collectors log INFO lines with colour codes into the printed table
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="device of the SAC and EM parts (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--env-steps", type=int, default=2000, help="env steps per env measurement (default: %(default)s)")
    p.add_argument("--updates", type=int, default=100, help="SAC updates per side (default: %(default)s)")
    p.add_argument("--em-repeats", type=int, default=5, help="EM steps per model size (default: %(default)s)")
    p.add_argument("--num-envs", type=int, default=16, help="ant envs side by side in generation (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print(f"device {device}, {args.threads} thread(s)")
    raw = raw_ant_steps_per_s(args.env_steps)
    collected = collector_steps_per_s(args.env_steps)
    print(f"expert env, raw gymnasium loop     {raw:8.0f} steps/s")
    print(f"expert env, TorchRL Collector      {collected:8.0f} steps/s   {collected / raw:.2f}x raw")
    torchrl_rate, plain_rate = sac_updates_per_s(args.updates, device)
    print(f"SAC update, plain PyTorch          {plain_rate:8.1f} updates/s")
    print(f"SAC update, TorchRL SACLoss        {torchrl_rate:8.1f} updates/s {torchrl_rate / plain_rate:.2f}x plain")
    expert_rate = 1.0 / (1.0 / collected + 1.0 / torchrl_rate)
    print(f"expert training at 1 update/step   {expert_rate:8.1f} steps/s   ({400_000 / expert_rate / 3600:.1f} h for 400k)")

    from torchrl_skills.modules.direction_expert import ANT_EXPERT_PATH, load_direction_expert

    expert = load_direction_expert() if ANT_EXPERT_PATH.is_file() else None
    if expert is None:
        print("ant data generation: skipped (no shipped expert: torchrl_skills/assets/ant_expert.pt)")
    else:
        raw_maze = raw_antmaze_steps_per_s(args.env_steps)
        generated = generation_steps_per_s(args.num_envs, max(50, args.env_steps // args.num_envs), expert)
        print(f"antmaze env, raw random steps      {raw_maze:8.0f} steps/s")
        print(f"ant data generation, {args.num_envs:2d} envs       {generated:8.0f} steps/s   {generated / raw_maze:.2f}x raw")

    paper = em_step_seconds(device, 256, 256, 4, 256, args.em_repeats)
    cpu = em_step_seconds(device, 64, 256, 1, 128, args.em_repeats)  # the ogbench_antmaze.py cpu preset
    print(f"EM step B100 T40, paper size       {paper:8.3f} s     (z 256, hidden 256, 4-layer GRU 256)")
    print(f"EM step B100 T40, CPU size         {cpu:8.3f} s     (z 64, hidden 256, 1-layer GRU 128) {paper / cpu:.1f}x faster")


if __name__ == "__main__":
    np.random.seed(0)
    torch.manual_seed(0)
    main()
