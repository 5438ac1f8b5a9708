"""Stopping training at the first non-finite loss, before it reaches a checkpoint.

One NaN or inf in a loss turns every weight it touches into NaN at the next optimizer step, and
the next checkpoint would then save a broken model over the last good one. The training loops
check the loss before ``backward()`` and stop with a message that names the step, the terms
that went bad, the checkpoint kept, and what usually fixes it.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch

from torchrl_skills.utils.cli import UserError

__all__ = ["NonFiniteLossError", "check_finite_loss"]


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


def check_finite_loss(
    loss: torch.Tensor,
    step: int | str,
    terms: Mapping[str, torch.Tensor] | None = None,
    checkpoint: str | os.PathLike | None = None,
    fixes: str = "Try a lower --lr or a lower --grad-clip.",
) -> None:
    """Raises :class:`NonFiniteLossError` if ``loss`` holds a NaN or an inf.

    Call it before ``loss.backward()``: the weights are then still those of the last finite step.
    It reads one boolean from the loss's device per call.

    Args:
        loss (Tensor): the total loss about to be backpropagated.
        step (int or str): where training is, for the message (e.g. ``1500`` or ``"update 12 at env step 3000"``).
        terms (mapping of str to Tensor, optional): the loss's terms (a loss module's output
            TensorDict works); the non-finite scalar ones are listed in the message.
        checkpoint (str or Path, optional): the checkpoint file the run writes; the message says
            whether a good one exists.
        fixes (str, optional): what to try, in terms of the script's options.

    Examples:
        >>> check_finite_loss(torch.tensor(1.0), step=3)  # fine: nothing happens
        >>> try:
        ...     check_finite_loss(torch.tensor(float("nan")), step=4, terms={"loss_actor": torch.tensor(float("nan"))})
        ... except FloatingPointError as err:
        ...     print(str(err)[:52])
        Non-finite loss at step 4: {'loss_actor': nan}. Trai
    """
    if bool(torch.isfinite(loss).all()):
        return
    bad = {}
    for key, value in ({} if terms is None else terms).items():
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not math.isfinite(value.item()):
            bad[key if isinstance(key, str) else "/".join(key)] = value.item()
    kept = "none yet"
    if checkpoint is not None and os.path.exists(checkpoint):
        kept = os.fspath(checkpoint)
    raise NonFiniteLossError(
        f"Non-finite loss at step {step}: {bad or loss.detach().flatten()[:4].tolist()}. Training stopped; the last "
        f"good checkpoint ({kept}) was kept. {fixes}"
    )
