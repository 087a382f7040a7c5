"""benchmarks/report.py: the benchmark page regenerated from raw result files.

The result files are written the way the benchmark scripts write them (the
scripts' own ``_bench.write_result`` and ``returns.py``'s record keys), with
numbers chosen here so the expected table cells can be computed by hand.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def report():
    return _load("report")


@pytest.fixture(scope="module")
def bench():
    return _load("_bench")


def _returns_record(algo: str, seed: int, final: float, auc: float | None = None) -> dict:
    record = {
        "task": "coordination:chain-6",
        "algo": algo,
        "seed": seed,
        "env_kwargs": {},
        "config": {},
        "final": final,
        "train_curve": [[1024, 0.5], [2048, 0.5 + final / 4], [3072, final]],
        "wall_s": 1.0,
        "steps": 3072,
        "command": "python benchmarks/returns.py --seeds 3",
        "machine": "Test CPU 9000, 2 cores",
    }
    if auc is not None:
        record["skeleton_auc"] = auc
    return record


def _write_results(results: Path, bench) -> None:
    returns = results / "returns"
    returns.mkdir(parents=True)
    for seed, (m, b) in enumerate([(1.0, 0.5), (0.9, 0.5), (0.8, 0.5)]):
        for algo, final, auc in (("mappo", m, None), ("b2mapo", b, 0.5 + 0.1 * seed)):
            path = returns / f"coordination_chain-6_{algo}_{seed}.json"
            path.write_text(json.dumps(_returns_record(algo, seed, final, auc)))
    header = [
        "N",
        "batches",
        "pi_ind µs",
        "pi_seq µs",
        "per-agent loop µs",
        "pi_ind / loop",
        "pi_seq / loop",
    ]
    rows = [[3, 2, 100.0, 400.0, 300.0, 1 / 3, 4 / 3], [10, 3, 150.0, 700.0, 1500.0, 0.1, 0.7]]
    bench.write_result(
        results / "latency.json", {"header": header, "rows": rows, "envs": 1, "repeats": 7}
    )
    header = [
        "agents",
        "edges",
        "generations",
        "generations ms",
        "bounded(n/10) ms",
        "k_batches(3) ms",
    ]
    rows = [[10, 19, 10, 0.03, 0.1, 1.2], [100, 202, 13, 0.18, 0.61, 1.9]]
    bench.write_result(
        results / "partition.json",
        {
            "header": header,
            "rows": rows,
            "generator_header": ["agents", "copies", "ms"],
            "generator_rows": [[10, 64, 7.5]],
            "repeats": 5,
        },
    )


def _section(page: str, name: str) -> str:
    match = re.search(rf"<!-- report:{name} -->\n(.*?)<!-- /report:{name} -->", page, re.S)
    assert match, f"no {name} section"
    return match.group(1)


def test_report_regenerates_sections_with_outputs(tmp_path, report, bench):
    results = tmp_path / "results"
    _write_results(results, bench)
    page_path = tmp_path / "site" / "benchmarks.md"
    template = (ROOT / "docs" / "benchmarks.md").read_text()

    made = report.main(
        [
            "--results",
            str(results),
            "--page",
            str(page_path),
            "--template",
            str(ROOT / "docs" / "benchmarks.md"),
        ]
    )
    assert set(made) == {"returns", "latency", "scale"}
    page = page_path.read_text()

    returns = _section(page, "returns")
    # MAPPO finals 1.0, 0.9, 0.8: mean 0.9, sd 0.1, t(2) = 4.30 -> 4.30 * 0.1 / sqrt(3) = 0.248
    assert "| coordination:chain-6 | 3 | 3,072 | 0.900 ± 0.248 | 0.500 ± 0.000 | 0.600 |" in returns
    assert (
        "Test CPU 9000, 2 cores" in returns and "python benchmarks/returns.py --seeds 3" in returns
    )
    latency = _section(page, "latency")
    assert "| 10 | 3 | 150 | 700 | 1500 | 0.100 | 0.700 |" in latency
    assert "medians of 7 interleaved calls" in latency
    scale = _section(page, "scale")
    assert "| 100 | 202 | 13 | 0.18 | 0.61 | 1.9 |" in scale and "| 10 | 64 | 7.5 |" in scale

    # sections without outputs keep the template's hand-written text, byte for byte
    for name in ("training_time", "tuning"):
        assert _section(page, name) == _section(template, name)
    assert page.split("<!-- report:returns -->")[0] == template.split("<!-- report:returns -->")[0]

    img = page_path.parent / "img"
    for png in (
        "bench_returns_coordination_chain_6.png",
        "bench_latency.png",
        "bench_partition_scale.png",
    ):
        data = (img / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png
        assert f"](img/{png})" in page
    assert not (img / "bench_training_time.png").exists()


def test_report_rejects_files_that_are_not_results(tmp_path, report):
    returns = tmp_path / "results" / "returns"
    returns.mkdir(parents=True)
    (returns / "x.json").write_text(json.dumps({"task": "coordination:chain-6", "algo": "mappo"}))
    with pytest.raises(SystemExit, match="not a returns.py record"):
        report.main(["--results", str(tmp_path / "results"), "--page", str(tmp_path / "p.md")])
    (returns / "x.json").write_text("{not json")
    with pytest.raises(SystemExit, match="not valid JSON"):
        report.main(["--results", str(tmp_path / "results"), "--page", str(tmp_path / "p.md")])


def test_machine_names_the_cpu(bench):
    text = bench.machine()
    assert "cores" in text and "torch" in text
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                l.split(":", 1)[1].strip()
                for l in cpuinfo.read_text().splitlines()
                if l.startswith("model name")
            ),
            None,
        )
        if model:
            assert text.startswith(model)


def test_b2mapo_figure_script_draws_the_concept_figure(tmp_path):
    """The figure of "B2MAPO explained" comes from benchmarks/b2mapo_figure.py."""
    figure = _load("b2mapo_figure")
    path = figure.draw(tmp_path / "b2mapo.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # the example's batches are the generations of its DAG, as the figure shows them
    assert figure.mg.partition.generations(figure.example_dag()) == [[0], [1, 2], [3, 4], [5]]


def _reference_run(env: str, algo: str, seed: int, ret: float, win: float | None, **extra) -> dict:
    curve = [
        {"step": 1000 * (i + 1), "return_mean": ret * (i + 1) / 3, "win_rate": win}
        for i in range(3)
    ]
    return {
        "env": env,
        "algo": algo,
        "seed": seed,
        "budget": 3000,
        "steps": 3072,
        "reference": env.split(":")[0],
        "overrides": {},
        "eval_return": ret,
        "eval_win_rate": win,
        "curve": curve,
        "machine": "Test CPU 9000, 2 cores",
        **extra,
    }


def test_report_tabulates_and_plots_the_reference_runs(tmp_path, report):
    folder = tmp_path / "results" / "references"
    folder.mkdir(parents=True)
    runs = [
        _reference_run("smax:3m", "mappo", 0, 1.0, 1.0),
        _reference_run("smax:3m", "mappo", 1, 0.9, 0.9),
        _reference_run("smax:3m", "mappo", 2, 0.8, 0.8),
        _reference_run("smax:3m", "b2mapo", 0, 0.5, 0.5),
        _reference_run("smax:3m", "mappo", 3, 0.0, 0.0, overrides={"lr": 1.0}),  # screening
        _reference_run("mpe:simple_spread_v3", "mappo", 0, -30.0, None),
    ]
    (folder / "a.jsonl").write_text("\n".join(json.dumps(r) for r in runs[:3]) + "\n")
    (folder / "b.jsonl").write_text("\n".join(json.dumps(r) for r in runs[3:]) + "\n\n")
    page_path = tmp_path / "docs" / "benchmarks.md"
    made = report.main(
        [
            "--results",
            str(tmp_path / "results"),
            "--page",
            str(page_path),
            "--template",
            str(ROOT / "docs" / "benchmarks.md"),
        ]
    )
    assert set(made) == {"references"}
    section = _section(page_path.read_text(), "references")
    # seeds 0-2 only (the run with overrides is not the reference): 0.900 ± 0.248
    assert "| smax:3m | 3,000 | MAPPO | 0, 1, 2 | 0.900 ± 0.248 | 0.900 ± 0.248 | smax |" in section
    assert "| smax:3m | 3,000 | B2MAPO | 0 | 0.500 | 0.500 | smax |" in section
    assert "| mpe:simple_spread_v3 | 3,000 | MAPPO | 0 | -30.000 | — | mpe |" in section
    for png in (
        "bench_reference_smax_3m_3000.png",
        "bench_reference_mpe_simple_spread_v3_3000.png",
    ):
        data = (page_path.parent / "img" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and f"](img/{png})" in section
    assert "Test CPU 9000, 2 cores" in section
    (folder / "b.jsonl").write_text('{"env": "smax:3m"}\n')
    with pytest.raises(SystemExit, match=r"b.jsonl:1: not a reference_configs.py run"):
        report.main(["--results", str(tmp_path / "results"), "--page", str(tmp_path / "p.md")])


def test_reference_curves_skip_iterations_in_which_no_episode_ended(report):
    nan = float("nan")
    curve = [
        {"step": 4000, "return_mean": nan, "win_rate": None},
        {"step": 8000, "return_mean": -250.0, "win_rate": None},
        {"step": 12000, "return_mean": nan, "win_rate": None},
        {"step": 16000, "return_mean": -190.0, "win_rate": None},
    ]
    assert report.curve_points(curve, "return_mean") == [(8000, -250.0), (16000, -190.0)]
    assert report.curve_points(curve, "win_rate") == []
    assert report.curve_metric([{"curve": curve}]) == "return_mean"
    no_wins = [dict(p, win_rate=float("nan")) for p in curve]  # an env without wins: NaN
    assert report.curve_metric([{"curve": no_wins}]) == "return_mean"
    with_wins = [dict(p, win_rate=0.5) for p in curve]
    assert report.curve_metric([{"curve": no_wins}, {"curve": with_wins}]) == "win_rate"
