"""Offline data: Minari datasets in TorchRL storage, generated PointMaze datasets, window replay."""
from torchrl_skills.data.offline import DatasetNotFoundError, SkillDataset, load_minari_transitions, local_minari_root
from torchrl_skills.data.windows import make_window_replay_buffer

# The PointMaze generator (torchrl_skills.data.pointmaze) is not imported here so that
# `python -m torchrl_skills.data.pointmaze` runs without a double-import warning.

__all__ = [
    "DatasetNotFoundError",
    "SkillDataset",
    "load_minari_transitions",
    "local_minari_root",
    "make_window_replay_buffer",
]
