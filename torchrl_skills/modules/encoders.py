"""State encoders ``E: s -> z`` for hierarchical latent-goal RL (SPEC B1).

Both encoders are plain :class:`torch.nn.Module` networks, like :class:`torchrl.modules.MLP`
and :class:`torchrl.modules.ConvNet`; wrap them in a :class:`tensordict.nn.TensorDictModule`
to read and write tensordict keys (see the examples in each docstring).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from torchrl.modules import MLP

__all__ = ["ConvEncoder", "MLPEncoder", "ObservationSlice"]


class ConvEncoder(nn.Module):
    """Convolutional encoder from pixels to a latent vector (SPEC B1).

    Architecture: ``[AvgPool(pool)] - Conv(C->32, k4, s2) - ReLU - Conv(32->64, k4, s2) - ReLU -
    Conv(64->128, k4, s2) - ReLU - Flatten - Linear(latent_dim)``.

    ``uint8`` pixels in ``[0, 255]`` are scaled to ``[0, 1]`` here, exactly once; floating
    point pixels are taken as already scaled (e.g. the output of
    :class:`~torchrl.envs.ToTensorImage`), so never feed floats in ``[0, 255]``.
    Any number of leading batch dimensions is accepted (e.g. ``[B, seq_len, C, H, W]``
    windows), which keeps window encoding a single batched call.

    Args:
        in_shape (tuple of int): ``(C, H, W)`` of one image. Defaults to ``(3, 96, 96)``.
        latent_dim (int): size of the latent vector. Defaults to 64.
        channels (sequence of int): conv channels. Defaults to ``(32, 64, 128)``.
        kernel_size (int): conv kernel size. Defaults to 4.
        stride (int): conv stride. Defaults to 2.
        normalize (bool): if ``True`` the output is L2-normalised, which bounds latent
            distances (and the latent-goal reward) whatever the encoder loss does.
            Defaults to ``False``.
        pool (int): average-pools the image by this factor before the convolutions (``pool=2``
            reads a 96 x 96 frame as 48 x 48, about 5x cheaper on a CPU), so the replay can keep
            full-size ``uint8`` frames and no image library is needed. Defaults to 1 (no pooling).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torchrl_skills.modules.encoders import ConvEncoder
        >>> encoder = TensorDictModule(ConvEncoder(latent_dim=64), in_keys=["pixels"], out_keys=["latent"])
        >>> td = TensorDict({"pixels": torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)}, [2])
        >>> encoder(td)["latent"].shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (3, 96, 96),
        latent_dim: int = 64,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 4,
        stride: int = 2,
        normalize: bool = False,
        pool: int = 1,
    ) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W), got {tuple(in_shape)}.")
        if pool < 1:
            raise ValueError(f"pool must be a positive integer, got {pool}.")
        self.in_shape = tuple(int(s) for s in in_shape)
        self.latent_dim = latent_dim
        self.normalize = normalize
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        c_in = self.in_shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=kernel_size, stride=stride), nn.ReLU()]
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.conv(torch.zeros(1, *self.in_shape)).numel()
        self.fc = nn.Linear(n_flat, latent_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.ndim < 3 or tuple(pixels.shape[-3:]) != self.in_shape:
            raise ValueError(
                f"ConvEncoder expects pixels of shape [..., {', '.join(map(str, self.in_shape))}] (channels first), "
                f"got {tuple(pixels.shape)}. Permute HWC images to CHW (e.g. torchrl's ToTensorImage or "
                "PermuteTransform) or build the encoder with the matching in_shape."
            )
        if pixels.dtype == torch.uint8:
            x = pixels.float().div_(255.0)
        elif pixels.is_floating_point():
            x = pixels
        else:
            raise TypeError(
                f"ConvEncoder expects uint8 pixels in [0, 255] or floats in [0, 1], got dtype {pixels.dtype}."
            )
        batch = x.shape[:-3]
        z = self.fc(self.conv(x.reshape(-1, *self.in_shape)).flatten(1))
        if self.normalize:
            z = F.normalize(z, dim=-1)
        return z.reshape(*batch, self.latent_dim)


class MLPEncoder(nn.Module):
    """MLP encoder from state vectors to a latent vector (SPEC B1).

    Args:
        in_features (int): size of the state vector.
        latent_dim (int): size of the latent vector. Defaults to 64.
        num_cells (sequence of int): hidden layer sizes. Defaults to ``(256, 256)``.
        activation_class (type): activation. Defaults to :class:`torch.nn.ReLU`.
        normalize (bool): if ``True`` the output is L2-normalised. Defaults to ``False``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from torchrl_skills.modules.encoders import MLPEncoder
        >>> encoder = TensorDictModule(MLPEncoder(6, latent_dim=16), in_keys=["observation"], out_keys=["latent"])
        >>> encoder(TensorDict({"observation": torch.randn(4, 10, 6)}, [4]))["latent"].shape
        torch.Size([4, 10, 16])
    """

    def __init__(
        self,
        in_features: int,
        latent_dim: int = 64,
        num_cells: Sequence[int] = (256, 256),
        activation_class: type[nn.Module] = nn.ReLU,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.latent_dim = latent_dim
        self.normalize = normalize
        self.mlp = MLP(
            in_features=in_features, out_features=latent_dim, num_cells=list(num_cells), activation_class=activation_class
        )

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if observation.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"MLPEncoder expects states of shape [..., {self.in_features}], got {tuple(observation.shape)}. "
                "Flatten dict observations first (e.g. torchrl's CatTensors) or set in_features accordingly."
            )
        if not observation.is_floating_point():
            observation = observation.float()
        z = self.mlp(observation)
        if self.normalize:
            z = F.normalize(z, dim=-1)
        return z


class ObservationSlice(nn.Module):
    """Keeps the features ``[start:stop]`` of the last dim, e.g. the position of a maze observation, before an encoder.

    ``nn.Sequential(ObservationSlice(0, 2), MLPEncoder(2, 16))`` embeds where a PointMaze agent is
    (``[x, y]`` of ``[x, y, vx, vy]``) and ignores how fast it moves: latent distances then
    follow positions, and the HIGL low level reads its velocity from the window of recent latents.

    Args:
        start (int): first feature kept.
        stop (int): one past the last feature kept.

    Examples:
        >>> import torch
        >>> ObservationSlice(0, 2)(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
        tensor([[1., 2.]])
    """

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        if not 0 <= start < stop:
            raise ValueError(f"ObservationSlice needs 0 <= start < stop, got start={start}, stop={stop}.")
        self.start, self.stop = start, stop

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if observation.shape[-1] < self.stop:
            raise ValueError(
                f"ObservationSlice({self.start}, {self.stop}) needs at least {self.stop} features, got {observation.shape[-1]}."
            )
        return observation[..., self.start : self.stop]
