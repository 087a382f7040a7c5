"""Reference configurations shipped with mapograph, one YAML file per env family.

Each file in ``mapograph/train/references/`` (``<family>.yaml``) says where its
values come from (``source``: a paper's table, a peer library's config, or a
mapograph tuning study with its command) and holds

- ``config``: TrainConfig fields for every task of the family and every algorithm;
- ``algos``: per-algorithm fields on top (e.g. ``mappo: {share_params: true}``:
  one network for MAPPO while the batch-by-batch presets keep per-agent
  parameters; with ``share_params`` in ``config`` they get a shared network plus
  per-agent heads instead);
- ``tasks``: per-task entries (``3m: {source: ..., config: {...}, algos: {...}}``)
  applied after the family's.

Later layers override earlier ones: family ``config`` -> family ``algos[algo]`` ->
task ``config`` -> task ``algos[algo]``. A user's ``--config`` file and flags
(or keyword overrides in Python) override all of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mapograph.algos import ALGORITHMS
from mapograph.envs import ENV_FAMILIES, split_env_id

if TYPE_CHECKING:
    from mapograph.train._config import TrainConfig

_PACKAGE = "mapograph.train.references"


@dataclass(frozen=True)
class Reference:
    """The reference configuration resolved for one env id and algorithm.

    Attributes:
        name: ``family`` or ``family/task`` (the most specific entry that applied).
        sources: where the values come from, family first.
        fields: the TrainConfig fields it sets.
    """

    name: str
    sources: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for ``run.yaml``)."""
        return {"name": self.name, "sources": list(self.sources), "fields": dict(self.fields)}


def reference_families() -> list[str]:
    """Env families that ship a reference configuration."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in resources.files(_PACKAGE).iterdir()
        if entry.name.endswith(".yaml")
    )


@cache
def _load_family(family: str) -> dict[str, Any] | None:
    path = resources.files(_PACKAGE) / f"{family}.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    _check_entry(data, f"{family}.yaml")
    for task, entry in (data.get("tasks") or {}).items():
        _check_entry(entry, f"{family}.yaml tasks.{task}")
    return data


def _check_entry(entry: Any, where: str) -> None:
    from mapograph.train._config import TrainConfig

    if not isinstance(entry, dict):
        raise ValueError(f"reference {where} must be a mapping")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    layers = [entry.get("config") or {}, *(entry.get("algos") or {}).values()]
    for layer in layers:
        unknown = sorted(set(layer) - known)
        if unknown:
            raise ValueError(f"reference {where} sets unknown field(s): {', '.join(unknown)}")


def reference_for(env_id: str, algo: str = "mappo") -> Reference | None:
    """The reference configuration for ``env_id`` and ``algo``; ``None`` when none ships.

    Args:
        env_id: ``"family:task"`` as given to :func:`mapograph.envs.make`.
        algo: the algorithm name (its per-algorithm fields apply).

    Raises:
        ValueError: ``algo`` names no registered algorithm.
    """
    family, task = split_env_id(env_id)
    algo = _algo_name(algo)
    family = _canonical(ENV_FAMILIES, family)
    data = _load_family(family)
    if data is None:
        return None
    fields: dict[str, Any] = {}
    sources = [str(data.get("source", family))]
    name = family
    entries = [data]
    task_entry = (data.get("tasks") or {}).get(task) if task is not None else None
    if task_entry is not None:
        entries.append(task_entry)
        name = f"{family}/{task}"
        if "source" in task_entry:
            sources.append(str(task_entry["source"]))
    for entry in entries:
        fields.update(entry.get("config") or {})
        algos = {str(k).lower(): v for k, v in (entry.get("algos") or {}).items()}
        fields.update(algos.get(algo) or {})
    return Reference(name, tuple(sources), fields)


def _canonical(registry: Any, name: str) -> str:
    """``name`` as ``registry`` spells it (``" MPE"`` -> ``"mpe"``); else lower case."""
    return registry.canonical(name).lower() if name in registry else name.lower()


def _algo_name(algo: Any) -> str:
    """The registered spelling of ``algo`` (``"MA_PPO"`` -> ``"mappo"``), as the config reads it.

    Raises:
        ValueError: ``algo`` is not a string, or names no registered algorithm.
    """
    if not isinstance(algo, str):
        raise ValueError(f"algo must be an algorithm name such as 'mappo', got {algo!r}")
    return ALGORITHMS.canonical(algo).lower()


def config_with_reference(
    env_id: str,
    config_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    use_reference: bool = True,
    default_algo: str = "mappo",
) -> tuple[TrainConfig, Reference | None]:
    """A run's config in layers: the env's reference, the YAML file, then ``overrides``.

    Only the fields written in the YAML file override the reference (a file that
    sets ``lr`` keeps the reference's ``epochs``). The algorithm whose reference
    applies is ``overrides["algo"]``, else the file's, else ``default_algo``.

    Returns:
        ``(config, reference)``; ``reference`` is ``None`` when ``use_reference`` is
        false or the family ships none.
    """
    from mapograph.train._config import TrainConfig

    file_fields: dict[str, Any] = {}
    if config_path is not None:
        written = TrainConfig.from_yaml(config_path).to_dict()
        explicit = yaml.safe_load(Path(config_path).read_text()) or {}
        file_fields = {k: v for k, v in written.items() if k in explicit}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    algo = overrides.get("algo", file_fields.get("algo", default_algo))
    reference = reference_for(env_id, algo) if use_reference else None
    base = dict(reference.fields) if reference is not None else {}
    config = TrainConfig.from_dict({**base, "algo": algo, **file_fields, **overrides})
    return config, reference
