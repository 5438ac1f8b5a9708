"""Utilities shared by the package's scripts: atomic checkpoints, RNG state and seeding, devices,
and what every command line needs (help, one-line errors, clean stops on signals, output folders
and logs that describe one run, quiet third-party output)."""
from __future__ import annotations

import random

import numpy as np
import torch

from torchrl_skills.utils.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    load_module_state,
    load_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
    state_dict_mismatch,
    load_replay_buffer_state,
    replay_buffer_state,
    replay_rows_oldest_first,
    training_state,
)
from torchrl_skills.utils.cli import (
    ArgumentParser,
    HelpFormatter,
    UserError,
    file_tag,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
)
from torchrl_skills.utils.guards import NonFiniteLossError, check_finite_loss
from torchrl_skills.utils.outputs import OutputDir, resume_logger, save_figure, truncate_csv_logs, write_text_atomic
from torchrl_skills.utils.signals import GracefulStop, Interrupted, RunStopped, stop_on_signals
from torchrl_skills.utils.third_party import import_gymnasium_robotics, quiet_third_party_output, quiet_torchrl_logging

__all__ = [
    "ArgumentParser",
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DeviceNotAvailableError",
    "GracefulStop",
    "HelpFormatter",
    "Interrupted",
    "NonFiniteLossError",
    "OutputDir",
    "RunStopped",
    "UserError",
    "check_finite_loss",
    "import_gymnasium_robotics",
    "load_checkpoint",
    "load_module_state",
    "load_training_state",
    "state_dict_mismatch",
    "load_replay_buffer_state",
    "replay_buffer_state",
    "replay_rows_oldest_first",
    "file_tag",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "quiet_third_party_output",
    "quiet_torchrl_logging",
    "resolve_device",
    "resume_logger",
    "rng_state",
    "run_cli",
    "save_checkpoint",
    "save_figure",
    "write_text_atomic",
    "seed_everything",
    "set_rng_state",
    "stop_on_signals",
    "training_state",
    "truncate_csv_logs",
]


class DeviceNotAvailableError(UserError, RuntimeError):
    """The requested torch device does not exist on this machine (e.g. ``cuda`` without a GPU)."""


def seed_everything(seed: int) -> None:
    """Seeds python, numpy and torch (all devices) so runs are repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turns ``"cuda"``/``"cpu"``/``None`` into a device, failing clearly when CUDA is absent."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise DeviceNotAvailableError(f"--device {device!r} is not a torch device: pass cpu or cuda ({err}).") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceNotAvailableError(
            "--device cuda was requested but torch.cuda.is_available() is False on this machine. "
            "Install a CUDA build of torch or pass --device cpu."
        )
    return device
