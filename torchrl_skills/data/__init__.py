"""Offline data: Minari datasets in TorchRL storage, locally generated maze datasets, window replay."""
from torchrl_skills.data.augmentation import RandomShift
from torchrl_skills.data.goal_reaching import dataset_goal_reaching_stats, goal_reaching_stats
from torchrl_skills.data.maze_grid import MazeGeometry, MazeGrid
from torchrl_skills.data.offline import DatasetNotFoundError, SkillDataset, load_minari_transitions, local_minari_root
from torchrl_skills.data.windows import make_window_replay_buffer

# The generators (torchrl_skills.data.pointmaze, torchrl_skills.data.ogbench) are command-line
# modules too: importing them here would make `python -m torchrl_skills.data.<generator>` warn that
# the module was imported before being run. They are loaded on first access instead.
_LAZY = {
    "ensure_pointmaze_dataset": "pointmaze",
    "generate_pointmaze_dataset": "pointmaze",
    "pointmaze_dataset_id": "pointmaze",
    "ensure_ogbench_dataset": "ogbench",
    "generate_ogbench_dataset": "ogbench",
    "ogbench_dataset_id": "ogbench",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DatasetNotFoundError",
    "MazeGeometry",
    "MazeGrid",
    "RandomShift",
    "SkillDataset",
    "dataset_goal_reaching_stats",
    "goal_reaching_stats",
    "load_minari_transitions",
    "local_minari_root",
    "make_window_replay_buffer",
    *_LAZY,
]
