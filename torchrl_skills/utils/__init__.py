"""Training utilities shared by the examples: atomic checkpoints, RNG state and seeding."""
from __future__ import annotations

import random

import numpy as np
import torch

from torchrl_skills.utils.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "seed_everything", "resolve_device"]


def seed_everything(seed: int) -> None:
    """Seeds python, numpy and torch (all devices) so runs are repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turns ``"cuda"``/``"cpu"``/``None`` into a device, failing clearly when CUDA is absent."""
    if device is None:
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "--device cuda was requested but torch.cuda.is_available() is False on this machine. "
            "Install a CUDA build of torch or pass --device cpu."
        )
    return device
