"""Algorithm presets and their registry.

An algorithm here is not a subclass with its own update loop: it is a small
config that picks how the agents are split into ordered batches, how each
batch's objective is corrected for the batches already updated, and whether a
learned DAG and a derived independent policy are used. All presets run the same
:class:`~mapograph.algos.BatchSequentialPPO` update.
"""

from __future__ import annotations

from dataclasses import dataclass

PARTITIONS = ("simultaneous", "agent_by_agent", "generations", "bounded", "k_batches", "fixed")
ORDERS = ("none", "random", "semi_greedy", "fixed", "learned")
CORRECTIONS = ("none", "factor", "trace", "both")


@dataclass(frozen=True)
class AlgorithmPreset:
    """What distinguishes one batch-sequential algorithm from another.

    Attributes:
        name: registry name.
        partition: ``simultaneous`` (one batch), ``agent_by_agent`` (one agent per
            batch, in ``order``), or a DAG partitioner (``generations``, ``bounded``,
            ``k_batches``) applied to the learned DAG.
        order: ordering rule of ``agent_by_agent``: ``random`` (HAPPO),
            ``semi_greedy`` (A2PO), ``fixed``; ``learned`` for the DAG partitioners.
        correction: ``none``; ``factor`` (HAPPO: the surrogate's advantage is
            multiplied by the product of earlier batches' new/old ratios);
            ``trace`` (A2PO: the advantage is recomputed with that product as an
            off-policy trace); ``both``.
        correction_clip: clip the ratio product to ``[1 - c, 1 + c]``; ``None``: no clip.
        learned_dag: train a DAG generator (upper layer) that proposes the batches.
        derived_policy: train and distill the independent execution policy ``pi_ind``.
    """

    name: str
    partition: str
    order: str
    correction: str
    correction_clip: float | None
    learned_dag: bool = False
    derived_policy: bool = False

    def __post_init__(self) -> None:
        check_choice("partition", self.partition, PARTITIONS)
        check_choice("order", self.order, ORDERS)
        check_choice("correction", self.correction, CORRECTIONS)


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a ValueError naming ``what`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


_PRESETS: dict[str, AlgorithmPreset] = {}


def register_algorithm(preset: AlgorithmPreset, overwrite: bool = False) -> None:
    """Add a preset to the registry under ``preset.name``."""
    if preset.name in _PRESETS and not overwrite:
        raise ValueError(f"algorithm {preset.name!r} is already registered")
    _PRESETS[preset.name] = preset


def get_algorithm(name: str) -> AlgorithmPreset:
    """Look a preset up by name (ValueError listing the known names otherwise)."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown algorithm {name!r}; known algorithms: {', '.join(sorted(_PRESETS))}"
        ) from None


def algorithms() -> list[str]:
    """Names of the registered algorithms."""
    return sorted(_PRESETS)


register_algorithm(AlgorithmPreset("mappo", "simultaneous", "none", "none", None))
register_algorithm(AlgorithmPreset("happo", "agent_by_agent", "random", "factor", None))
register_algorithm(AlgorithmPreset("a2po", "agent_by_agent", "semi_greedy", "both", 0.2))
register_algorithm(
    AlgorithmPreset(
        "b2mapo", "k_batches", "learned", "both", 0.2, learned_dag=True, derived_policy=True
    )
)
