"""Skill-model training with DistributedDataParallel: 2 CPU processes (gloo), checkpoint and resume."""
from __future__ import annotations

import multiprocessing
import os
import socket

import pytest
import torch
from train_skill_model import main as train_main

from torchrl_skills.utils.distributed import DistributedContext, DistributedSetupError, init_distributed

SMALL = ["--z-dim", "8", "--hidden-dim", "16", "--batch-size", "16", "--seq-len", "10", "--no-progress",
         "--num-threads", "1", "--log-every", "1", "--valid-every", "2", "--valid-batches", "1"]  # fmt: skip


def test_single_process_context_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.enabled) == (0, 1, True, False)
    module = torch.nn.Linear(2, 2)
    assert ctx.wrap(module) is module and ctx.parameters_in_sync(module)
    assert ctx.any(True) and not ctx.any(False) and ctx.mean({"a": 2.0}) == {"a": 2.0} and ctx.gather(3) == [3]
    assert ctx.rank_seed(7) == 7 and ctx.local_batch_size(100) == 100
    with pytest.raises(DistributedSetupError, match="multiple of 4"):
        DistributedContext(world_size=4).local_batch_size(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world_size: int, port: int, argv: list[str]) -> None:
    # what torchrun sets for each process
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    train_main(argv)


def run_ranks(argv: list[str], world_size: int = 2) -> None:
    """The processes of ``torchrun --nproc_per_node 2 examples/train_skill_model.py ARGV``, forked
    (the modules are already imported: a launch takes seconds, not an import per process)."""
    ctx = multiprocessing.get_context("fork")
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, world_size, port, argv)) for r in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert codes == [0] * world_size, f"rank exit codes {codes}"


def checkpoint(path):
    return torch.load(path / "checkpoint.pt", weights_only=False)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")
def test_two_process_ddp_trains_in_sync_checkpoints_and_resumes(tiny_dataset, tmp_path, capfd):
    common = ["--dataset", tiny_dataset, *SMALL, "--ckpt-every", "4"]
    # 4 steps then --resume to 6, against 6 steps straight: the same run, exactly
    run_ranks([*common, "--out-dir", str(tmp_path / "resumed"), "--steps", "4"])
    out = capfd.readouterr().out
    assert "parameters identical on all 2 processes" in out  # checked by the script on every rank
    assert "x 2 processes (gloo)" in out and "throughput:" in out
    first = checkpoint(tmp_path / "resumed")
    assert first["step"] == 4 and len(first["rng_per_rank"]) == 2  # one checkpoint, by rank 0, with both streams
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["checkpoint.pt", "losses.png", "skill_model"]

    run_ranks([*common, "--out-dir", str(tmp_path / "resumed"), "--steps", "6", "--resume"])
    assert "resumed from" in capfd.readouterr().out
    run_ranks([*common, "--out-dir", str(tmp_path / "straight"), "--steps", "6"])
    resumed, straight = checkpoint(tmp_path / "resumed"), checkpoint(tmp_path / "straight")
    assert resumed["step"] == straight["step"] == 6
    assert resumed["history"]["step"] == list(range(1, 7))
    assert resumed["history"]["loss"] == straight["history"]["loss"]  # the ranks' mean loss, step by step
    for key, value in straight["model"].items():
        assert torch.equal(resumed["model"][key], value), key
