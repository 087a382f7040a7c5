"""Algorithm presets and their registry.

An algorithm here is not a subclass with its own update loop: it is a small
config that names an update *schedule* (how each iteration's agents are split
into ordered batches, and what the schedule learns), a *correction* (how each
batch's objective accounts for the batches already updated) and whether a
*derived* independent policy is trained for execution. All presets run the
same :class:`~mapograph.algos.BatchSequentialPPO` update.

Adding an algorithm is registering a preset (and, if needed, a schedule)::

    import mapograph as mg

    mg.algos.register_algorithm(
        mg.algos.AlgorithmPreset("happo_trace", schedule="agent_by_agent", order="random",
                                 correction="trace")
    )
    mg.TrainConfig(algo="happo_trace")
"""

from __future__ import annotations

from dataclasses import dataclass

from mapograph._registry import Registry, instance_of


@dataclass(frozen=True)
class AlgorithmPreset:
    """What distinguishes one batch-sequential algorithm from another.

    Attributes:
        name: registry name.
        schedule: a :data:`~mapograph.algos.SCHEDULES` name: ``simultaneous`` (one
            batch), ``agent_by_agent`` (one agent per batch in ``order``), ``fixed``
            (``fixed_partition``), ``given_dag`` (``fixed_dag`` partitioned by
            ``partition``), ``learned_dag`` (B2MAPO's upper layer), or your own.
        correction: a :data:`~mapograph.algos.CORRECTIONS` name: ``none``,
            ``factor`` (HAPPO), ``trace`` (A2PO), ``both``.
        correction_clip: clip the earlier batches' ratio product to ``[1 - c, 1 + c]``;
            ``None``: no clip.
        order: an :data:`~mapograph.algos.ORDERS` name for schedules that order agents:
            ``identity``, ``random`` (HAPPO), ``semi_greedy`` (A2PO), ``fixed``.
        partition: a :data:`~mapograph.partition.PARTITIONERS` name for DAG schedules.
        derived_policy: the optimized policy is ``pi_seq`` (conditioned on its DAG
            parents' actions) and an independent ``pi_ind``, distilled from it, acts
            at execution (B2MAPO).
    """

    name: str
    schedule: str
    correction: str = "none"
    correction_clip: float | None = None
    order: str = "identity"
    partition: str = "generations"
    derived_policy: bool = False


#: Algorithm presets by name.
ALGORITHMS: Registry[AlgorithmPreset] = Registry("algorithm", instance_of(AlgorithmPreset))
"""Algorithm presets by name (``mappo``, ``happo``, ``a2po``, ``b2mapo``); ``register_algorithm`` adds one."""


def register_algorithm(preset: AlgorithmPreset, overwrite: bool = False) -> AlgorithmPreset:
    """Add a preset to the registry under ``preset.name``.

    Raises:
        ValueError: the name is taken (unless ``overwrite``) or the preset names an
            unknown schedule, order, partitioner or correction.
    """
    from mapograph.algos._corrections import CORRECTIONS
    from mapograph.algos._schedules import ORDERS, SCHEDULES
    from mapograph.partition import PARTITIONERS

    SCHEDULES.get(preset.schedule)
    ORDERS.get(preset.order)
    PARTITIONERS.get(preset.partition)
    CORRECTIONS.get(preset.correction)
    return ALGORITHMS.register(preset.name, preset, overwrite=overwrite)


def get_algorithm(name: str) -> AlgorithmPreset:
    """Look a preset up by name (ValueError listing the known names otherwise)."""
    return ALGORITHMS.get(name)


def algorithms() -> list[str]:
    """Names of the registered algorithms."""
    return ALGORITHMS.names()


ALGORITHMS.register("mappo", AlgorithmPreset("mappo", schedule="simultaneous"))
ALGORITHMS.register(
    "happo",
    AlgorithmPreset("happo", schedule="agent_by_agent", order="random", correction="factor"),
)
ALGORITHMS.register(
    "a2po",
    AlgorithmPreset(
        "a2po",
        schedule="agent_by_agent",
        order="semi_greedy",
        correction="both",
        correction_clip=0.2,
    ),
)
ALGORITHMS.register(
    "b2mapo",
    AlgorithmPreset(
        "b2mapo",
        schedule="learned_dag",
        partition="k_batches",
        correction="both",
        correction_clip=0.2,
        derived_policy=True,
    ),
)
