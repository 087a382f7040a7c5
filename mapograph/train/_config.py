"""``TrainConfig``: every knob of a training run, as a dataclass that round-trips YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mapograph.algos import CORRECTIONS, ORDERS, PARTITIONS, AlgorithmPreset, get_algorithm
from mapograph.algos._presets import check_choice


@dataclass
class TrainConfig:
    """Configuration of a training run.

    Fields left ``None`` take the value of the algorithm preset (``algo``): for
    example ``algo="happo"`` means ``partition="agent_by_agent"``, ``order="random"``,
    ``correction="factor"``. Setting them overrides the preset, which is how a user
    forces a partition (``partition="fixed", fixed_partition=[[0, 1], [2]]``) or
    tries another partitioner with B2MAPO's learned DAG.

    ``total_steps`` counts environment steps summed over copies (one step of
    ``num_envs`` copies counts ``num_envs``).
    """

    algo: str = "mappo"
    total_steps: int = 100_000
    seed: int = 0
    num_envs: int = 16
    rollout_length: int = 64
    device: str = "cpu"

    # networks
    hidden: int = 64
    layers: int = 2
    share_params: bool = False

    # PPO
    lr: float = 5e-4
    critic_lr: float = 5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 5
    minibatches: int = 1
    entropy_coef: float = 0.01
    max_grad_norm: float | None = 10.0
    value_norm: bool = True

    # batch-sequential update (None: from the preset)
    partition: str | None = None
    order: str | None = None
    correction: str | None = None
    correction_clip: float | None = None
    fixed_partition: list[list[int]] | None = None
    fixed_order: list[int] | None = None

    # B2MAPO upper layer: learned DAG -> partitioner
    max_batch_size: int = 3
    k: int = 3
    edge_threshold: float = 0.3
    dag_temperature: float = 1.0
    generator_lr: float = 1e-3
    generator_entropy_coef: float = 0.01
    generator_epochs: int = 4
    generator_hidden: int = 64
    generator_heads: int = 4
    condition_on_parents: bool = True
    interaction_coef: float = 1.0

    # B2MAPO derived independent policy
    distill_every: int = 1
    kl_coef: float = 1.0

    # bookkeeping
    checkpoint_every: int = 10
    eval_every: int = 0
    eval_episodes: int = 16
    progress: bool | None = None
    tensorboard: bool = True

    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        get_algorithm(self.algo)
        positive_ints = (
            "total_steps",
            "num_envs",
            "rollout_length",
            "hidden",
            "layers",
            "epochs",
            "minibatches",
            "max_batch_size",
            "k",
            "generator_epochs",
            "distill_every",
            "checkpoint_every",
            "eval_episodes",
            "generator_hidden",
            "generator_heads",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        for name in ("lr", "critic_lr", "generator_lr", "dag_temperature"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {value!r}")
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TrainConfig.{name} must lie in [0, 1], got {value!r}")
        if not 0.0 <= self.edge_threshold < 1.0:
            raise ValueError(
                f"TrainConfig.edge_threshold must lie in [0, 1), got {self.edge_threshold!r}"
            )
        if self.partition is not None:
            check_choice("partition", self.partition, PARTITIONS)
        if self.order is not None:
            check_choice("order", self.order, ORDERS)
        if self.correction is not None:
            check_choice("correction", self.correction, CORRECTIONS)
        if self.partition == "fixed" and self.fixed_partition is None:
            raise ValueError("TrainConfig.partition='fixed' needs fixed_partition=[[...], ...]")
        if self.order == "fixed" and self.fixed_order is None:
            raise ValueError("TrainConfig.order='fixed' needs fixed_order=[...]")

    # --------------------------------------------------------------- presets
    def preset(self) -> AlgorithmPreset:
        """The algorithm preset with this config's overrides applied."""
        base = get_algorithm(self.algo)
        partition = self.partition or (
            "fixed" if self.fixed_partition is not None else base.partition
        )
        order = self.order or ("fixed" if self.fixed_order is not None else base.order)
        return dataclasses.replace(
            base,
            partition=partition,
            order=order,
            correction=self.correction or base.correction,
            correction_clip=self.correction_clip
            if self.correction_clip is not None
            else base.correction_clip,
            learned_dag=base.learned_dag and partition in ("generations", "bounded", "k_batches"),
        )

    # ------------------------------------------------------------------ YAML
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys raise ValueError naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"a TrainConfig must be a mapping, got {type(data).__name__}")
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
        text = Path(source).read_text() if _looks_like_path(source) else str(source)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid YAML config {source!s}: {exc}") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def _looks_like_path(source: str | Path) -> bool:
    if isinstance(source, Path):
        return True
    return "\n" not in source and (source.endswith((".yaml", ".yml")) or Path(source).exists())
