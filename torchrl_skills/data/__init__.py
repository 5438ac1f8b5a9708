"""Offline data: Minari datasets in TorchRL storage, and generated PointMaze datasets."""
from torchrl_skills.data.offline import DatasetNotFoundError, SkillDataset, load_minari_transitions, local_minari_root

__all__ = ["DatasetNotFoundError", "SkillDataset", "load_minari_transitions", "local_minari_root"]
