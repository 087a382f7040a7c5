"""``TrainConfig``: every knob of a training run, as a dataclass that round-trips YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from mapograph._validation import (
    MAX_NUM_ENVS,
    boolean,
    check,
    non_negative_int,
    optional,
    positive_int,
    seed_value,
)
from mapograph.algos import AlgorithmConfig

#: Env copies the CLI and the tuner build when ``num_envs`` is unset.
DEFAULT_NUM_ENVS = 16

#: Fields that configs written before 0.2 held and that no longer exist (dropped on load).
REMOVED_FIELDS = ("extra",)


def device_name(value: Any) -> str | None:
    """A device torch understands (``cpu``, ``cuda``, ``cuda:1``, ``mps``...)."""
    if not isinstance(value, str):
        return "must be a device name such as 'cpu' or 'cuda'"
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return "must be a device name such as 'cpu' or 'cuda'"
    return None


@dataclass
class TrainConfig(AlgorithmConfig):
    """Configuration of a training run: the algorithm's fields plus the run's own.

    The algorithm's fields (networks, PPO, schedule, B2MAPO's layers) are those of
    :class:`~mapograph.algos.AlgorithmConfig`; fields left ``None`` there take the
    value of the preset ``algo`` (``algo="happo"`` means ``schedule="agent_by_agent"``,
    ``order="random"``, ``correction="factor"``). Setting them overrides the preset:
    ``partition="fixed", fixed_partition=[[0, 1], [2]]`` forces a partition,
    ``fixed_dag=[[0, 1], [1, 2]]`` gives B2MAPO a DAG instead of its upper layer.

    ``total_steps`` counts environment steps summed over copies (one step of
    ``num_envs`` copies counts ``num_envs``). ``num_envs=None`` takes the env's own
    count; a number must equal it (the CLI builds the env with it).
    """

    total_steps: int = field(default=100_000, metadata=check(positive_int(1 << 62)))
    seed: int = field(default=0, metadata=check(seed_value))
    num_envs: int | None = field(default=None, metadata=check(optional(positive_int(MAX_NUM_ENVS))))
    rollout_length: int = field(default=64, metadata=check(positive_int(1 << 20)))
    device: str = field(default="cpu", metadata=check(device_name))

    # bookkeeping
    checkpoint_every: int = field(default=10, metadata=check(positive_int()))
    eval_every: int = field(default=0, metadata=check(non_negative_int))
    eval_episodes: int = field(default=16, metadata=check(positive_int(1 << 20)))
    progress: bool | None = field(default=None, metadata=check(optional(boolean)))
    tensorboard: bool = field(default=True, metadata=check(boolean))

    @classmethod
    def for_env(
        cls, env_id: str, algo: str = "mappo", reference: bool = True, **overrides: Any
    ) -> TrainConfig:
        """The shipped reference configuration of ``env_id`` for ``algo``, with ``overrides``.

        ``mg.TrainConfig.for_env("smax:3m", algo="b2mapo", total_steps=1_000_000)``
        starts from ``mapograph/train/references/smax.yaml`` (see
        :func:`~mapograph.train.reference_for`); every keyword overrides it. Families
        without a reference (or ``reference=False``) start from the defaults.

        Raises:
            ValueError: ``reference`` is not a bool, ``algo`` no algorithm name, or an
                override an unknown field or an invalid value.
        """
        from mapograph.train._references import reference_for

        if not isinstance(reference, bool):
            raise ValueError(f"reference must be True or False, got {reference!r}")
        found = reference_for(env_id, algo) if reference else None
        fields = dict(found.fields) if found is not None else {}
        return cls.from_dict({**fields, "algo": algo, **overrides})  # names unknown fields

    def env_copies(self) -> int:
        """How many env copies to build for this config (``num_envs`` or 16)."""
        return self.num_envs if self.num_envs is not None else DEFAULT_NUM_ENVS

    # ------------------------------------------------------------------ YAML
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys raise ValueError naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"a TrainConfig must be a mapping, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k not in REMOVED_FIELDS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of this config (also written to ``path`` when given)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> TrainConfig:
        """Load from a YAML file path or YAML text."""
        if _looks_like_path(source):
            path = Path(source)
            if not path.exists():
                raise ValueError(f"config file {path} not found")
            if not path.is_file():
                raise ValueError(f"config {path} is not a file")
            text = path.read_text()
        else:
            text = str(source)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid YAML config {source!s}: {exc}") from exc
        if isinstance(data, str) and "\n" not in str(source):
            raise ValueError(f"config {source!s}: no such file (nor a YAML mapping)")
        if isinstance(data, dict):
            data = _yaml_floats(cls, data)
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def _yaml_floats(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Float fields written as ``1e-3``: YAML 1.1 (PyYAML) reads an exponent without a
    dot as a string; such strings become floats (anything else is left to validation)."""
    floats = {f.name for f in dataclasses.fields(cls) if "float" in str(f.type)}
    out = dict(data)
    for key, value in data.items():
        if key in floats and isinstance(value, str):
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def _looks_like_path(source: str | Path) -> bool:
    if isinstance(source, Path):
        return True
    if not source.strip():  # empty text: an empty mapping, not the current folder
        return False
    return "\n" not in source and (source.endswith((".yaml", ".yml")) or Path(source).exists())
