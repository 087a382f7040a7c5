"""Regenerate docs/benchmarks.md and its plots from the raw outputs of the benchmark scripts.

    python benchmarks/report.py [--results benchmarks/results] [--page docs/benchmarks.md]
        [--img docs/img] [--template PAGE]

Reads what the scripts in ``benchmarks/`` write under ``--results``:

| section | file(s) | written by |
|---|---|---|
| ``returns`` | ``returns/*.json`` (one per task, algorithm and seed) | ``returns.py`` |
| ``training_time`` | ``training_time.json`` | ``training_time.py`` |
| ``latency`` | ``latency.json`` | ``latency.py`` |
| ``tuning`` | ``tune/summary.json`` | ``tune_study.py`` |
| ``scale`` | ``partition.json`` | ``partition.py`` |
| ``references`` | ``references/*.jsonl`` (one JSON line per run) | ``reference_configs.py`` |

The page is the template (by default the page itself) with the text between
``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` replaced by the tables and
figures made from that section's outputs. A section without outputs keeps the
template's hand-written text, so the page can be regenerated piece by piece.
Every figure names the machine and the command that produced its numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench import mean_ci95  # noqa: E402

ALGO_NAMES = {"mappo": "MAPPO", "happo": "HAPPO", "a2po": "A2PO", "b2mapo": "B2MAPO"}
MARKER = re.compile(r"(<!-- report:(\w+) -->\n)(.*?)(<!-- /report:\2 -->)", re.S)


# ----------------------------------------------------------------- reading


def read_json(path: Path) -> dict | None:
    """A result file, or None when it does not exist."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not valid JSON: {exc}") from None


def load_returns(folder: Path) -> list[dict]:
    """The per-run records of ``returns.py`` (task, algo, seed, final, train_curve, ...)."""
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_json(path)
        missing = {"task", "algo", "seed", "final", "train_curve"} - set(record)
        if missing:
            raise SystemExit(f"{path}: not a returns.py record (missing {sorted(missing)})")
        records.append(record)
    return records


def load_reference_runs(folder: Path) -> list[dict]:
    """The runs of ``reference_configs.py`` (one JSON object per line, any ``*.jsonl`` file)."""
    runs = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                run = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{number} is not valid JSON: {exc}") from None
            missing = {"env", "algo", "seed", "eval_return", "curve"} - set(run)
            if missing:
                raise SystemExit(
                    f"{path}:{number}: not a reference_configs.py run (missing {sorted(missing)})"
                )
            runs.append(run)
    return runs


def setting_of(record: dict) -> str:
    """``coordination:chain-6`` or ``coordination:chain-6, trap=0.5, ...`` (env kwargs and config)."""
    extras = {**record.get("env_kwargs", {}), **record.get("config", {})}
    return ", ".join([record["task"], *(f"{k}={v}" for k, v in sorted(extras.items()))])


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


# ----------------------------------------------------------------- figures


def stamp(fig, machine: str, command: str) -> None:
    """Write the machine and the command at the bottom of a figure."""
    fig.text(0.01, 0.005, f"{machine}\n$ {command}", fontsize=6, color="0.35", va="bottom")
    fig.subplots_adjust(bottom=0.22)


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def caption(machine: str, commands: list[str]) -> str:
    cmds = "; ".join(f"`{c}`" for c in dict.fromkeys(commands))
    return f"*Measured on {machine}; command: {cmds}.*"


def curve_band(curves: list[list]) -> tuple[list[float], list[float], list[float]]:
    """Mean and 95% CI band over seeds of curves ``[(step, value), ...]`` aligned by iteration."""
    length = min(len(c) for c in curves)
    steps, means, halves = [], [], []
    for i in range(length):
        mean, half = mean_ci95([c[i][1] for c in curves])
        steps.append(curves[0][i][0])
        means.append(mean)
        halves.append(0.0 if math.isnan(half) else half)
    return steps, means, halves


def plot_bands(ax, curves_by_algo: dict[str, list[list]]) -> None:
    """One line per algorithm (mean over seeds) with its 95% CI band; empty lists are skipped."""
    for algo, curves in curves_by_algo.items():
        curves = [c for c in curves if c]
        if not curves:
            continue
        xs, mean, half = curve_band(curves)
        (line,) = ax.plot(xs, mean, label=f"{ALGO_NAMES.get(algo, algo)} ({len(curves)} seeds)")
        lo = [m - h for m, h in zip(mean, half)]
        hi = [m + h for m, h in zip(mean, half)]
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)


# ----------------------------------------------------------------- sections


def section_returns(records: list[dict], img: Path, rel: str) -> str | None:
    if not records:
        return None
    by_setting: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_setting[setting_of(r)][r["algo"]].append(r)
    algos = [a for a in ALGO_NAMES if any(a in s for s in by_setting.values())]
    algos += sorted({r["algo"] for r in records} - set(algos))
    header = ["setting", "seeds", "env steps", *(ALGO_NAMES.get(a, a) for a in algos)]
    header.append("B2MAPO skeleton AUC")
    lines = [
        "Final greedy return of the execution policy (`pi_ind` for B2MAPO) divided by "
        "the optimum, mean ± 95% CI over seeds; skeleton AUC of B2MAPO's learned graph "
        "against the true DAG (0.5 is chance).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    figures = []
    for setting, runs in by_setting.items():
        seeds = max(len(v) for v in runs.values())
        steps = max((r.get("steps") or r["train_curve"][-1][0]) for v in runs.values() for r in v)
        row = [setting, str(seeds), f"{steps:,}"]
        for algo in algos:
            finals = [r["final"] for r in runs.get(algo, [])]
            if finals:
                mean, half = mean_ci95(finals)
                row.append(f"{mean:.3f} ± {half:.3f}" if not math.isnan(half) else f"{mean:.3f}")
            else:
                row.append("—")
        aucs = [r["skeleton_auc"] for r in runs.get("b2mapo", []) if "skeleton_auc" in r]
        aucs = [a for a in aucs if a is not None and math.isfinite(a)]
        row.append(f"{statistics.fmean(aucs):.3f}" if aucs else "—")
        lines.append("| " + " | ".join(row) + " |")

        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        plot_bands(ax, {a: [r["train_curve"] for r in runs.get(a, [])] for a in algos})
        ax.set_xlabel("env steps")
        ax.set_ylabel("training return / optimum")
        ax.set_title(f"{setting}: mean and 95% CI over seeds")
        ax.legend(fontsize=8)
        first = next(iter(runs.values()))[0]
        commands = [
            r.get("command", "python benchmarks/returns.py") for v in runs.values() for r in v
        ]
        machine = first.get("machine", "unknown machine")
        stamp(fig, machine, commands[0])
        name = f"bench_returns_{slug(setting)}.png"
        save(fig, img / name)
        figures.append(
            f"![learning curves on {setting}]({rel}/{name})\n\n{caption(machine, commands)}"
        )
    return "\n".join(lines) + "\n\n" + "\n\n".join(figures) + "\n"


def table(header: list[str], rows: list[list], formats: dict[int, str] | None = None) -> str:
    formats = formats or {}

    def cell(i: int, x) -> str:
        if isinstance(x, float):
            return format(x, formats.get(i, ".3g"))
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(i, x) for i, x in enumerate(row)) + " |" for row in rows]
    return "\n".join(lines)


def line_plot(path: Path, xs, series: dict[str, list[float]], xlabel, ylabel, title, data) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, ys in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    stamp(fig, data.get("machine", "unknown machine"), data.get("command", ""))
    return save(fig, path)


def column(data: dict, name: str) -> list:
    try:
        i = data["header"].index(name)
    except ValueError:
        raise SystemExit(f"result file has no column {name!r}: {data['header']}") from None
    return [row[i] for row in data["rows"]]


def section_training_time(data: dict | None, img: Path, rel: str) -> str | None:
    if data is None:
        return None
    xs = column(data, "N")
    series = {
        label: column(data, f"{label} update s")
        for label in ("MAPPO", "A2PO", "A2PO-loop", "B2MAPO", "B2MAPO-tied", "B2MAPO-readout")
        if f"{label} update s" in data["header"]
    }
    line_plot(
        img / "bench_training_time.png",
        xs,
        series,
        "agents N",
        "update seconds per iteration",
        "update time per iteration",
        data,
    )
    text = (
        f"`coordination:random-N`, 16 copies × 64 steps per iteration, "
        f"{'mean' if 'settle' in data else 'median'} of "
        f"{data.get('repeats', '?')} interleaved iterations"
        + (f" (B2MAPO after {data['settle']} training iterations)" if data.get("settle") else "")
        + f", {data.get('threads', 1)} thread(s).\n\n"
        + table(data["header"], data["rows"])
    )
    if data.get("split"):
        text += "\n\nWhere B2MAPO's update time goes:\n\n" + table(
            data["split_header"], data["split"]
        )
    return (
        text
        + f"\n\n![training time]({rel}/bench_training_time.png)\n\n"
        + caption(data["machine"], [data["command"]])
        + "\n"
    )


def section_latency(data: dict | None, img: Path, rel: str) -> str | None:
    if data is None:
        return None
    xs = column(data, "N")
    series = {
        "pi_ind (one batched forward)": column(data, "pi_ind µs"),
        "pi_seq (batch by batch)": column(data, "pi_seq µs"),
        "per-agent loop": column(data, "per-agent loop µs"),
    }
    line_plot(
        img / "bench_latency.png",
        xs,
        series,
        "agents N",
        "µs per decision step",
        "execution latency",
        data,
    )
    text = (
        f"One decision step for {data.get('envs', 1)} env copy(ies), medians of "
        f"{data.get('repeats', '?')} interleaved calls, 1 thread.\n\n"
        + table(data["header"], data["rows"], {2: ".0f", 3: ".0f", 4: ".0f", 5: ".3f", 6: ".3f"})
    )
    return (
        text
        + f"\n\n![execution latency]({rel}/bench_latency.png)\n\n"
        + caption(data["machine"], [data["command"]])
        + "\n"
    )


def section_tuning(data: dict | None, img: Path, rel: str) -> str | None:
    if data is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    trials = [t for t in data.get("all_trials", []) if t.get("values")]
    front = sorted(data.get("pareto_front", []), key=lambda t: t["values"][1])
    ax.scatter(
        [t["values"][1] for t in trials],
        [t["values"][0] for t in trials],
        color="0.6",
        label=f"trials ({len(trials)})",
    )
    ax.plot(
        [t["values"][1] for t in front],
        [t["values"][0] for t in front],
        marker="o",
        color="C3",
        label="Pareto front",
    )
    ax.set_xlabel("update seconds per iteration (minimize)")
    ax.set_ylabel("evaluation return (maximize)")
    ax.set_title(f"tuning study on {data.get('env', '?')}")
    ax.legend(fontsize=8)
    stamp(fig, data["machine"], data["command"])
    save(fig, img / "bench_tune_pareto_front.png")
    best = data.get("best_params") or {}
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.items()
    )
    text = (
        f"{data.get('trials', '?')}-trial multi-objective study on `{data.get('env', '?')}` "
        f"({data.get('steps', '?')} env steps per trial), then the Pareto trial with the best "
        f"return (`best.yaml`: {params or '—'}) against the default B2MAPO configuration, "
        f"both retrained on {data.get('seeds', '?')} new seeds.\n\n"
        + table(data["header"], data["rows"], {2: ".3f"})
    )
    return (
        text
        + f"\n\n![Pareto front]({rel}/bench_tune_pareto_front.png)\n\n"
        + caption(data["machine"], [data["command"]])
        + "\n"
    )


def section_scale(data: dict | None, img: Path, rel: str) -> str | None:
    if data is None:
        return None
    xs = column(data, "agents")
    series = {
        name.replace(" ms", ""): column(data, name)
        for name in data["header"]
        if name.endswith(" ms")
    }
    line_plot(
        img / "bench_partition_scale.png",
        xs,
        series,
        "agents",
        "milliseconds per call",
        "partition time against the number of agents",
        data,
    )
    text = (
        "Random DAGs with 2 parents per agent on average; median of "
        f"{data.get('repeats', '?')}; 1 thread.\n\n" + table(data["header"], data["rows"])
    )
    if data.get("generator_rows"):
        text += "\n\n" + table(data["generator_header"], data["generator_rows"])
    return (
        text
        + f"\n\n![partition time]({rel}/bench_partition_scale.png)\n\n"
        + caption(data["machine"], [data["command"]])
        + "\n"
    )


def curve_points(curve: list[dict], metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of the iterations that have a finite ``metric`` (an iteration
    in which no episode ended, e.g. 200-step rollouts of 1000-step episodes, has NaN)."""
    return [
        (p["step"], p[metric])
        for p in curve
        if p.get(metric) is not None and math.isfinite(p[metric])
    ]


def curve_metric(runs: list[dict]) -> str:
    """``"win_rate"`` when some run's curve has a finite win rate (SMAX), else ``"return_mean"``."""
    has_wins = any(curve_points(r["curve"], "win_rate") for r in runs)
    return "win_rate" if has_wins else "return_mean"


def section_references(runs: list[dict], img: Path, rel: str) -> str | None:
    """Table (greedy return and win rate, mean ± 95% CI over seeds) and learning curves of the
    presets at the shipped reference configurations, one figure per environment and budget."""
    if not runs:
        return None
    groups: dict[tuple[str, int], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("overrides"):
            continue  # screening runs with changed settings are not the reference
        groups[(run["env"], run.get("budget", run.get("steps")))][run["algo"]].append(run)

    def cell(values: list[float]) -> str:
        if not values:
            return "—"
        mean, half = mean_ci95(values)
        return f"{mean:.3f}" if math.isnan(half) else f"{mean:.3f} ± {half:.3f}"

    header = [
        "env",
        "env steps",
        "preset",
        "seeds",
        "greedy return",
        "greedy win rate",
        "reference",
    ]
    rows, figures = [], []
    for (env_id, budget), by_algo in groups.items():
        algos = [a for a in ALGO_NAMES if a in by_algo] + sorted(set(by_algo) - set(ALGO_NAMES))
        for algo in algos:
            group = sorted(by_algo[algo], key=lambda r: r["seed"])
            wins = [r["eval_win_rate"] for r in group if r.get("eval_win_rate") is not None]
            rows.append(
                [
                    env_id,
                    f"{budget:,}",
                    ALGO_NAMES.get(algo, algo),
                    ", ".join(str(r["seed"]) for r in group),
                    cell([r["eval_return"] for r in group]),
                    cell(wins),
                    group[0].get("reference") or "—",
                ]
            )
        metric = curve_metric([r for v in by_algo.values() for r in v])
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        plot_bands(
            ax,
            {algo: [curve_points(r["curve"], metric) for r in by_algo[algo]] for algo in algos},
        )
        ax.set_xlabel("env steps")
        ax.set_ylabel("training " + ("win rate" if metric == "win_rate" else "return"))
        ax.set_title(f"{env_id} at the reference: mean and 95% CI over seeds")
        ax.legend(fontsize=8)
        seeds = sorted({r["seed"] for v in by_algo.values() for r in v})
        command = (
            f"python benchmarks/reference_configs.py --envs {env_id} --algos {' '.join(algos)} "
            f"--seeds {' '.join(map(str, seeds))} --steps {budget}"
        )
        first = next(iter(by_algo.values()))[0]
        machine = first.get("machine", "the 2-core CPU development machine (no GPU)")
        stamp(fig, machine, command)
        name = f"bench_reference_{slug(env_id)}_{budget}.png"
        save(fig, img / name)
        figures.append(
            f"![{env_id} learning curves]({rel}/{name})\n\n{caption(machine, [command])}"
        )
    lines = [
        "Greedy evaluation of the execution policy (`pi_ind` for B2MAPO) after training at "
        "the shipped reference configuration (`mg.TrainConfig.for_env`), mean ± 95% CI over "
        "seeds; curves: the training return (win rate on SMAX) of the last rollouts.",
        "",
        table(header, rows),
    ]
    return "\n".join(lines) + "\n\n" + "\n\n".join(figures) + "\n"


# ----------------------------------------------------------------- page


def build_sections(results: Path, img: Path, rel: str) -> dict[str, str]:
    """Markdown of every section that has outputs under ``results``."""
    made = {
        "returns": section_returns(load_returns(results / "returns"), img, rel),
        "training_time": section_training_time(read_json(results / "training_time.json"), img, rel),
        "latency": section_latency(read_json(results / "latency.json"), img, rel),
        "tuning": section_tuning(read_json(results / "tune" / "summary.json"), img, rel),
        "scale": section_scale(read_json(results / "partition.json"), img, rel),
        "references": section_references(load_reference_runs(results / "references"), img, rel),
    }
    return {name: text for name, text in made.items() if text is not None}


def render(template: str, sections: dict[str, str]) -> str:
    """Replace the marked sections of ``template`` that have new content."""
    present = {m.group(2) for m in MARKER.finditer(template)}
    unknown = set(sections) - present
    if unknown:
        raise SystemExit(f"the template has no <!-- report:NAME --> markers for {sorted(unknown)}")

    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name not in sections:
            return match.group(0)
        note = "<!-- generated by benchmarks/report.py from benchmarks/results; do not edit -->\n"
        return f"{match.group(1)}{note}{sections[name]}{match.group(4)}"

    return MARKER.sub(replace, template)


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", default="benchmarks/results")
    parser.add_argument("--page", default="docs/benchmarks.md")
    parser.add_argument("--img", default=None, help="folder for the PNGs (default: PAGE's img/)")
    parser.add_argument("--template", default=None, help="default: PAGE, or docs/benchmarks.md")
    args = parser.parse_args(argv)
    page = Path(args.page)
    img = Path(args.img) if args.img else page.parent / "img"
    template = Path(args.template) if args.template else page
    if not template.exists():
        template = HERE.parent / "docs" / "benchmarks.md"
    try:
        rel = img.resolve().relative_to(page.parent.resolve()).as_posix()
    except ValueError:
        rel = img.resolve().as_posix()
    sections = build_sections(Path(args.results), img, rel)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(template.read_text(), sections))
    kept = sorted({m.group(2) for m in MARKER.finditer(template.read_text())} - set(sections))
    print(f"wrote {page}: regenerated {sorted(sections) or 'nothing'}; kept as written {kept}")
    return sections


if __name__ == "__main__":
    main()
