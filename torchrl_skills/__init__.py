"""torchrl-skills: skill models, planning over skills and hierarchical latent-goal RL for TorchRL."""

__version__ = "0.1.0"
