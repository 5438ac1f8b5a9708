"""The local Minari store, as every generator of this package writes to it.

Generated datasets are written atomically (into a hidden scratch folder inside the store, then
moved into place), so an interrupted generation never leaves a half-written dataset behind; the
generator's settings and statistics are stored in the dataset's metadata under
:data:`GENERATOR_METADATA_KEY`, written last, so its presence marks a complete dataset.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "GENERATOR_METADATA_KEY",
    "check_new_dataset",
    "dataset_path",
    "read_generator_metadata",
    "reuse_dataset",
    "software_versions",
    "store_root",
    "validate_dataset_id",
    "write_minari_dataset",
]

# Key of the custom metadata entry holding the generator settings and statistics.
GENERATOR_METADATA_KEY = "torchrl_skills_generator"

# Recorded with every generated dataset: the same generator and seed give other data under
# another MuJoCo (the ant's reset noise for one seed differs between 3.3.7, 3.17.0 and 4.0.0, and
# the regenerated antmaze-giant's goal-reaching rate reads 0.772 under 3.17.0, 0.762 under 4.0.0).
RECORDED_PACKAGES = ("mujoco", "ogbench", "gymnasium", "gymnasium-robotics", "numpy", "torch", "torchrl", "torchrl-skills")


def software_versions(packages: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str]:
    """``{package: version}`` of the installed ``packages`` (those not installed are left out).

    Examples:
        >>> "torch" in software_versions()
        True
    """
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def store_root() -> Path:
    """``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``, as minari resolves it, without creating it."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path.home() / ".minari" / "datasets" if root is None else Path(root)


def dataset_path(dataset_id: str) -> Path:
    """Folder of ``dataset_id`` in the local store (whether or not it exists)."""
    return store_root() / dataset_id


def read_generator_metadata(dataset_id: str) -> dict | None:
    """Raw metadata of a *complete* generated dataset in the local store, else ``None``.

    Complete means that the generator's entry :data:`GENERATOR_METADATA_KEY`, written last, is
    present: a dataset written by someone else, or a half-written one, reads as ``None``.
    """
    try:
        with open(dataset_path(dataset_id) / "data" / "metadata.json") as file:
            metadata = json.load(file)
    except (OSError, ValueError):
        return None
    return metadata if GENERATOR_METADATA_KEY in metadata else None


def validate_dataset_id(dataset_id: str) -> None:
    """Raises a ``ValueError`` naming the expected form if ``dataset_id`` is not a Minari id."""
    from minari.dataset.minari_dataset import DATASET_ID_RE

    if not DATASET_ID_RE.fullmatch(dataset_id):
        raise ValueError(
            f"Malformed Minari dataset id {dataset_id!r}: expected '(namespace/)name-v<version>', "
            "e.g. 'torchrl_skills/pointmaze/medium-v0'."
        )


def reuse_dataset(dataset_id: str, requested: dict, overwrite: bool = False, regenerate_hint: str = "") -> bool:
    """Whether ``ensure_*`` helpers can return the stored ``dataset_id`` instead of generating it.

    ``True`` when the store holds a complete generated dataset under the id and ``overwrite`` is
    ``False``. Requested generator settings that differ from the stored ones only raise a warning:
    the id names the dataset, the settings describe how it was made, and regenerating a large
    dataset behind the caller's back would be worse than using it.

    Args:
        dataset_id (str): the id.
        requested (dict): settings to compare with the stored ones; keys the generator does not
            store are compared with ``None``, so pass only settings it stores.
        overwrite (bool, optional): the caller wants a fresh dataset. Defaults to ``False``.
        regenerate_hint (str, optional): appended to the warning: how to regenerate from the
            command line (the examples have no ``--overwrite`` of their own). Defaults to ``""``.

    Examples:
        >>> reuse_dataset("torchrl_skills/nothing/here-v0", {})
        False
    """
    if overwrite:
        return False
    metadata = read_generator_metadata(dataset_id)
    if metadata is None:
        # Missing. Anything else stored under this id is not ours and makes the generator raise
        # FileExistsError rather than delete it.
        return False
    stored = metadata[GENERATOR_METADATA_KEY]
    differing = {k: (stored.get(k), v) for k, v in requested.items() if stored.get(k) != v}
    if differing:
        warnings.warn(
            f"Dataset {dataset_id!r} exists with different generator settings (stored, requested): {differing}. "
            f"Using the stored dataset; pass overwrite=True to regenerate it{regenerate_hint}.",
            UserWarning,
        )
    return True


def check_new_dataset(dataset_id: str, overwrite: bool, reuse_hint: str = "") -> None:
    """Fails early, before any generation work, on a malformed id or an existing dataset."""
    validate_dataset_id(dataset_id)
    target = dataset_path(dataset_id)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"Minari dataset {dataset_id!r} already exists at {target}. Pass overwrite=True (CLI: --overwrite) "
            f"to regenerate it{reuse_hint}."
        )


def write_minari_dataset(
    dataset_id: str,
    episodes: Sequence[Any],
    env,
    eval_env,
    settings: dict,
    stats: dict,
    description: str,
    algorithm_name: str,
    requirements: Sequence[str],
    overwrite: bool = False,
    start_time: float | None = None,
) -> Path:
    """Writes ``episodes`` (minari ``EpisodeBuffer`` s) as ``dataset_id`` into the local store, atomically.

    Args:
        dataset_id (str): the id, e.g. ``"torchrl_skills/ogbench/pointmaze-medium-navigate-v0"``.
        episodes (sequence of EpisodeBuffer): the episodes.
        env: the collection env (its spec is stored, so ``dataset.recover_environment()`` works).
        eval_env: the evaluation env or env spec.
        settings (dict), stats (dict): generator settings and statistics, stored (merged) under
            :data:`GENERATOR_METADATA_KEY`; ``generation_time_s``, ``num_episodes`` and
            ``software`` (:func:`software_versions`) are added.
        description, algorithm_name (str), requirements (list of str): minari metadata.
        overwrite (bool, optional): replace an existing dataset. Defaults to ``False``.
        start_time (float, optional): ``time.perf_counter()`` at the start of the generation.

    Returns:
        the dataset's folder.

    Raises:
        FileExistsError: the id exists and ``overwrite`` is ``False``.
    """
    import minari
    from minari.namespace import create_namespace, list_local_namespaces

    check_new_dataset(dataset_id, overwrite)
    target = dataset_path(dataset_id)
    # Minari refuses existing ids and writes in several passes: writing into a scratch root next
    # to the store and moving the finished folder keeps half-written datasets out of the store.
    store = store_root()
    store.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-torchrl-skills-", dir=store))
    previous = os.environ.get("MINARI_DATASETS_PATH")
    try:
        os.environ["MINARI_DATASETS_PATH"] = str(scratch)
        with warnings.catch_warnings():
            # Nags about metadata deliberately left empty (no public URL or e-mail exists).
            warnings.filterwarnings("ignore", message=r"`(code_permalink|author_email)` is set to None")
            dataset = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=list(episodes),
                env=env,
                eval_env=eval_env,
                algorithm_name=algorithm_name,
                author="torchrl-skills",
                description=description,
                requirements=list(requirements),
            )
        stats = dict(stats)
        if start_time is not None:
            stats["generation_time_s"] = round(time.perf_counter() - start_time, 3)
        stats["num_episodes"] = int(dataset.total_episodes)
        stats["software"] = software_versions()
        dataset.storage.update_metadata({GENERATOR_METADATA_KEY: {**settings, **stats}})
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    try:
        namespace = dataset_id.rsplit("/", 1)[0] if "/" in dataset_id else None
        if namespace is not None and namespace not in list_local_namespaces():
            try:
                create_namespace(namespace, description="Datasets generated locally by torchrl-skills.")
            except ValueError:  # created concurrently by another process
                pass
        if target.exists():  # only reachable with overwrite=True
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / dataset_id, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
