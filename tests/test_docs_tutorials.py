"""Every tutorial of the documentation site runs, with a tiny budget.

The pages in ``docs/tutorials/`` include these scripts piece by piece
(pymdownx.snippets), so what a reader copies is what runs here. Each script runs
in this process (no second torch import) in its own temporary directory with
``MAPOGRAPH_TUTORIAL_STEPS=1024`` (one iteration of 16 copies x 64 steps);
names the scripts register (an env family, a partitioner) are removed afterwards.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import runpy
from pathlib import Path

import pytest

import mapograph as mg

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "docs" / "tutorials"
SCRIPTS = ["quickstart", "graph", "partitions", "tuning", "custom_env", "mamujoco", "benchmarks"]
NEEDS = {"custom_env": ("pettingzoo", "mpe"), "mamujoco": ("gymnasium_robotics", "mamujoco")}


def _registries():
    return [
        mg.envs.ENV_FAMILIES,
        mg.partition.PARTITIONERS,
        mg.algos.ALGORITHMS,
        mg.algos.SCHEDULES,
        mg.algos.ORDERS,
        mg.algos.CORRECTIONS,
        mg.tune.SPACES,
    ]


@pytest.fixture
def tutorial_env(tmp_path, monkeypatch):
    """A fresh working directory, tiny budgets, and registries restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAPOGRAPH_TUTORIAL_STEPS", "1024")
    monkeypatch.setenv("MAPOGRAPH_TUTORIAL_TRIALS", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("MAPOGRAPH_TUTORIAL_POSTGRES", raising=False)
    before = [set(r.names()) for r in _registries()]
    yield tmp_path
    for registry, names in zip(_registries(), before):
        for name in set(registry.names()) - names:
            registry.unregister(name)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_every_tutorial_page_has_its_script():
    """Each tutorial page includes a script that exists, and each script is tested here."""
    pages = sorted(p for p in TUTORIALS.glob("*.md") if p.name != "index.md")
    included = set()
    for page in pages:
        text = page.read_text()
        names = set(re.findall(r"^--8<--\n([\w.]+?\.py)(?::\w+)?\n--8<--$", text, re.M))
        assert names, f"{page.name} includes no script"
        included |= names
    assert included == {f"{s}.py" for s in SCRIPTS}


@pytest.mark.parametrize("name", SCRIPTS)
def test_tutorial_script_runs(name, tutorial_env, capsys):
    for module, extra in [NEEDS[name]] if name in NEEDS else []:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"tutorial {name} needs the {extra!r} extra ({module} is not installed)")
    if name == "mamujoco":
        _require_continuous_control()
    runpy.run_path(str(TUTORIALS / f"{name}.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), f"tutorial {name} printed nothing"
    CHECKS[name](tutorial_env, out)


def _require_continuous_control() -> None:
    """Tutorial 6 needs the MaMuJoCo adapter and recurrent policies in this version."""
    if "mamujoco" not in mg.envs.families():
        pytest.skip(
            "tutorial mamujoco needs the mamujoco adapter (mapograph.envs: no 'mamujoco' family)"
        )
    if "recurrent" not in {f.name for f in dataclasses.fields(mg.TrainConfig)}:
        pytest.skip("tutorial mamujoco needs recurrent policies (TrainConfig has no 'recurrent')")
    if not any("GRU" in name or "Recurrent" in name for name in mg.policies.__all__):
        pytest.skip(
            "tutorial mamujoco needs recurrent policies: TrainConfig(recurrent=True) is "
            "accepted but mapograph.policies has no recurrent (GRU) actor yet"
        )


def _quickstart(cwd: Path, out: str) -> None:
    run = cwd / "runs" / "tutorial1"
    assert {"checkpoint.pt", "progress.csv"} <= {p.name for p in run.iterdir()}
    assert (cwd / "runs" / "tutorial1-cli" / "summary.json").exists()
    assert "restored at step 1024" in out


def _graph(cwd: Path, out: str) -> None:
    for png in ("learned_graph.png", "true_graph.png", "curve.png", "n_batches.png"):
        assert (cwd / png).stat().st_size > 5_000, png
    assert "true generations:" in out and "skeleton AUC" in out


def _partitions(cwd: Path, out: str) -> None:
    assert "[[0, 1], [2, 3, 4], [5, 6]]" in out
    assert "ValueError: the graph has a cycle" in out
    assert (cwd / "partitions.png").stat().st_size > 5_000


def _tuning(cwd: Path, out: str) -> None:
    assert {"study.db", "best.yaml"} <= {p.name for p in (cwd / "runs" / "tutorial4").iterdir()}
    assert "2 complete trials" in out


def _custom_env(cwd: Path, out: str) -> None:
    assert "Relay-5, B2MAPO:" in out and "ValueError: actions must have shape" in out


def _mamujoco(cwd: Path, out: str) -> None:
    assert "actions (2, 2, 3) torch.float32" in out and "evaluation of pi_ind" in out


def _benchmarks(cwd: Path, out: str) -> None:
    report = cwd / "runs" / "tutorial7" / "report"
    page = (report / "benchmarks.md").read_text()
    published = (ROOT / "docs" / "benchmarks.md").read_text()

    def section(text: str, name: str) -> str:
        return text[text.index(f"<!-- report:{name} -->") : text.index(f"<!-- /report:{name} -->")]

    for name in ("returns", "training_time", "latency", "scale", "tuning"):  # every section
        assert "generated by benchmarks/report.py" in section(page, name), name  # with outputs
        assert section(page, name) != section(published, name), name  # is the tutorial's own
    assert "coordination:chain-4" in page  # the tutorial's own run, not the published table
    for png in (
        "bench_returns_coordination_chain_4.png",
        "bench_training_time.png",
        "bench_latency.png",
        "bench_partition_scale.png",
        "bench_tune_pareto_front.png",
    ):
        assert (report / "img" / png).stat().st_size > 5_000, png


CHECKS = {
    "quickstart": _quickstart,
    "graph": _graph,
    "partitions": _partitions,
    "tuning": _tuning,
    "custom_env": _custom_env,
    "mamujoco": _mamujoco,
    "benchmarks": _benchmarks,
}
