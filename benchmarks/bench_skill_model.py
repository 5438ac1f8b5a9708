"""Throughput of one EM training step of the skill model (forward, backward, optimizer steps).

Implementations of the same step at the seed's AntMaze sizes (state 27, action 8, T = 10,
hidden 256, z 256), timed in one run, interleaved, median of repeats:

  package   SkillModelLoss (EM, one pass) on a [B, T] TensorDict, two Adam optimizers (posterior;
            policy, world model and prior), as examples/train_skill_model.py runs it
  (a) joint a plain joint-ELBO step of the same networks (a copy of the package's SkillModel
            called on plain tensors, no TensorDict, no LossModule), one Adam: the reference,
            target package/(a) >= 1.0
  (b) seed  the seed notebook's scheme: separate E and M passes, each looping over the batch in
            Python and re-encoding z per sample (B = 100 only; target package/(b) >= 25)
  (c) 2-pass the EM gradients as two detached passes (two forwards of policy and world model),
            the package's form before the one-pass loss, same networks, plain tensors

    python benchmarks/bench_skill_model.py [--device cuda] [--repeats 20] [--threads 2]

Prints subtrajectories per second and the ratios, at B = 100, then B = 1024.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from tensordict import TensorDict
from torch import nn
from torch.nn import functional as F

from torchrl_skills.modules import SkillModel
from torchrl_skills.objectives import SkillModelLoss
from torchrl_skills.objectives.skill_model_loss import normal_kl, normal_log_prob

STATE, ACTION, T, HIDDEN, Z = 27, 8, 10, 256, 256


# ---------------------------------------------------------------- (b) networks of the seed loop
class Head(nn.Module):
    def __init__(self, out):
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, out))
        self.std = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, out))

    def forward(self, x):
        return self.mean(x), F.softplus(self.std(x)) + 1e-4


class Posterior(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(STATE, HIDDEN)
        self.gru = nn.GRU(HIDDEN + ACTION, HIDDEN // 2, bidirectional=True, batch_first=True)
        self.head = Head(Z)

    def forward(self, s, a):
        _, h = self.gru(torch.cat([F.relu(self.embed(s)), a], -1))
        return self.head(torch.cat([h[-2], h[-1]], -1))


class Conditional(nn.Module):
    def __init__(self, inp, out):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(inp, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU())
        self.head = Head(out)

    def forward(self, *x):
        return self.head(self.trunk(torch.cat(x, -1)))


def plain_networks(device):
    return (
        Posterior().to(device),
        Conditional(STATE + Z, ACTION).to(device),
        Conditional(STATE + Z, STATE).to(device),
        Conditional(STATE, Z).to(device),
    )


# ---------------------------------------------------------------- (a) and (c): the package's networks, plain tensors
def joint_elbo_loss(model: SkillModel, s, a, s_next):
    """(a) The negative joint ELBO per step, one forward of each network."""
    s0, s_end = s[:, 0], s_next[:, -1]
    q_loc, q_scale = model.skill_posterior(s, a)
    z = q_loc + q_scale * torch.randn_like(q_loc)
    p_loc, p_scale = model.skill_prior(s0)
    log_pi = normal_log_prob(a, *model.skill_policy(s, z.unsqueeze(1))).sum(-1)
    log_end = normal_log_prob(s_end, *model.skill_world_model(s0, z))
    return (-log_pi - log_end + normal_kl(q_loc, q_scale, p_loc, p_scale)).mean() / T


def two_pass_em_loss(model: SkillModel, s, a, s_next):
    """(c) The EM gradients as an E pass and an M pass separated by detaching."""
    s0, s_end = s[:, 0], s_next[:, -1]
    q_loc, q_scale = model.skill_posterior(s, a)
    z = q_loc + q_scale * torch.randn_like(q_loc)
    p_loc, p_scale = model.skill_prior(s0)
    frozen = {k: v.detach() for k, v in model.skill_policy.named_parameters()}
    log_pi_e = normal_log_prob(a, *torch.func.functional_call(model.skill_policy, frozen, (s, z.unsqueeze(1)))).sum(-1)
    loss_e = (-log_pi_e + normal_kl(q_loc, q_scale, p_loc.detach(), p_scale.detach())).mean() / T
    zf = z.detach()
    log_pi = normal_log_prob(a, *model.skill_policy(s, zf.unsqueeze(1))).sum(-1)
    log_end = normal_log_prob(s_end, *model.skill_world_model(s0, zf))
    kl = normal_kl(q_loc.detach(), q_scale.detach(), p_loc, p_scale)
    return loss_e + (-log_pi - log_end + kl).mean() / T


# ---------------------------------------------------------------- (b) the seed's per-sample loop
def seed_em_step(nets, opt_e, opt_m, s, a, s_next):
    """(b) The seed notebook's E then M passes, each looping over the batch and re-encoding z."""
    q, pi, wm, prior = nets
    B = s.shape[0]
    for step, opt in (("e", opt_e), ("m", opt_m)):
        zs = []
        for i in range(B):
            mu, std = q(s[i : i + 1], a[i : i + 1])
            zs.append(mu + std * torch.randn_like(mu))
        loss = 0.0
        for i in range(B):
            z = zs[i] if step == "e" else zs[i].detach()
            log_pi = normal_log_prob(a[i], *pi(s[i], z.expand(T, -1))).sum()
            mu_p, std_p = prior(s[i, :1])
            log_p = normal_log_prob(z, mu_p, std_p).sum()
            if step == "e":
                mu_q, std_q = q(s[i : i + 1], a[i : i + 1])  # re-encoded, as in the seed
                loss = loss + log_pi + log_p - normal_log_prob(z, mu_q, std_q).sum()
            else:
                log_end = normal_log_prob(s_next[i, -1:], *wm(s[i, :1], z)).sum()
                loss = loss + log_pi + log_end + log_p
        opt.zero_grad(set_to_none=True)
        (-loss / B).backward()
        opt.step()


def make_batch(B, device):
    s = torch.randn(B, T, STATE, device=device)
    return s, torch.rand(B, T, ACTION, device=device) * 2 - 1, s + 0.05 * torch.randn_like(s)


def timer(fn, device):
    def run():
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    return run


def bench(B, device, repeats, with_seed):
    torch.manual_seed(0)
    s, a, s_next = make_batch(B, device)
    td = TensorDict({"observation": s, "action": a, "next": {"observation": s_next}}, [B, T], device=device)

    model = SkillModel(STATE, ACTION, z_dim=Z, hidden_dim=HIDDEN).to(device)
    loss_fn = SkillModelLoss(model)
    opts = [torch.optim.Adam(loss_fn.posterior_parameters(), 5e-5), torch.optim.Adam(loss_fn.model_parameters(), 5e-5)]

    def package_step():
        out = loss_fn(td)
        loss = out["loss_action"] + out["loss_end_state"] + out["loss_kl"]
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()

    def plain_step_fn(loss_of, net):
        opt = torch.optim.Adam(net.parameters(), 5e-5)

        def step():
            loss = loss_of(net, s, a, s_next)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    # copies of the same networks (same initial weights), each with its own optimizer
    joint_step = plain_step_fn(joint_elbo_loss, copy.deepcopy(model))
    two_pass_step = plain_step_fn(two_pass_em_loss, copy.deepcopy(model))

    seed_nets = plain_networks(device)
    seed_opt_e = torch.optim.Adam(seed_nets[0].parameters(), 5e-5)
    seed_opt_m = torch.optim.Adam([p for n in seed_nets[1:] for p in n.parameters()], 5e-5)

    def seed_step():
        seed_em_step(seed_nets, seed_opt_e, seed_opt_m, s, a, s_next)

    runners = {
        "package": timer(package_step, device),
        "joint": timer(joint_step, device),
        "two_pass": timer(two_pass_step, device),
    }
    if with_seed:
        runners["seed"] = timer(seed_step, device)
    for run in runners.values():  # warm-up
        run()
        run()
    times = {k: [] for k in runners}
    for r in range(repeats):
        order = list(runners.items())
        if r % 2:  # alternate the order, so that neither side always runs first after the other
            order = order[1::-1] + order[2:]
        for name, run in order:
            if name == "seed" and r >= max(3, repeats // 5):
                continue  # the loop is slow; a few repeats suffice for its median
            times[name].append(run())
    return {k: B / statistics.median(v) for k, v in times.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"state {STATE}, action {ACTION}, T {T}, hidden {HIDDEN}, z {Z}; subtrajectories per second (median)")
    for B, with_seed in ((100, True), (1024, False)):
        r = bench(B, device, args.repeats if B <= 100 else max(5, args.repeats // 4), with_seed)
        line = (
            f"B={B:5d}  package EM {r['package']:7.0f}/s  (a) plain joint ELBO {r['joint']:7.0f}/s"
            f"  (c) two-pass EM {r['two_pass']:7.0f}/s"
        )
        if with_seed:
            line += f"  (b) seed loop {r['seed']:6.1f}/s"
        print(line)
        line = (
            f"          package/(a) = {r['package'] / r['joint']:.2f}x (target >= 1.0)"
            f"   (c)/(a) = {r['two_pass'] / r['joint']:.2f}x"
        )
        if with_seed:
            line += f"   package/(b) = {r['package'] / r['seed']:.0f}x (target >= 25)"
        print(line)


if __name__ == "__main__":
    main()
