"""Small helpers shared by the benchmark scripts (timing, tables, confidence intervals)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

T_95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def command_line() -> str:
    """The command that ran this script (printed under every table)."""
    script = sys.argv[0]
    if os.path.isabs(script) and not os.path.relpath(script).startswith(".."):
        script = os.path.relpath(script)
    return "python " + " ".join([script, *sys.argv[1:]])


def parse_pairs(pairs: Sequence[str]) -> dict:
    """``["trap=0.5", "lr=1e-3"]`` -> ``{"trap": 0.5, "lr": 0.001}`` (YAML scalars;
    "1e-3", a string to YAML 1.1, is read as a number)."""
    import yaml

    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"expected key=value pairs, got {pair!r}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        kwargs[key] = parsed
    return kwargs


def machine() -> str:
    """What the numbers were measured on: CPU model and core count, GPU name if torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return f"{text}, torch {torch.__version__}"


def write_result(path: str | Path, payload: dict) -> Path:
    """Write a benchmark's raw result as JSON with the command and the machine that made it.

    ``benchmarks/report.py`` reads these files to regenerate ``docs/benchmarks.md``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command_line(), "machine": machine(), "time": time.time(), **payload}
    path.write_text(json.dumps(record, indent=1))
    return path


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t confidence interval."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return values[0], float("nan")
    sd = statistics.stdev(values)
    t = T_95.get(len(values) - 1, 1.96)
    return statistics.fmean(values), t * sd / math.sqrt(len(values))


def interleaved_median_times(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin.

    Interleaving makes the ratios robust to a noisy, shared machine: every
    candidate sees the same background load.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a GitHub-markdown table."""

    def fmt(x: object) -> str:
        if isinstance(x, float):
            return f"{x:.4g}"
        return str(x)

    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(fmt(x) for x in row) + " |")


def single_thread() -> None:
    """Pin torch to one thread so timings compare like with like."""
    torch.set_num_threads(1)


def per_agent_networks(actor) -> list[nn.Sequential]:
    """Copy a stacked actor's weights into N separate MLPs."""
    nets = []
    layers = [*actor.net.hidden_layers, actor.net.out_layer]
    for agent in range(actor.n_agents):
        modules: list[nn.Module] = []
        for i, layer in enumerate(layers):
            linear = nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                linear.weight.copy_(layer.weight[agent].t())
                linear.bias.copy_(layer.bias[agent])
            modules.append(linear)
            if i < len(layers) - 1:
                modules.append(nn.Tanh())
        nets.append(nn.Sequential(*modules))
    return nets


def train_quietly(env, **config):
    """Train a fresh ``Trainer`` on ``env`` without progress bar or TensorBoard.

    ``config`` holds :class:`mapograph.TrainConfig` fields. Returns
    ``(trainer, result, wall_seconds)``.
    """
    import mapograph as mg

    cfg = mg.TrainConfig(**config, progress=False, tensorboard=False)
    trainer = mg.Trainer(env, cfg)
    start = time.perf_counter()
    result = trainer.train()
    return trainer, result, time.perf_counter() - start


def random_actions(ts, generator: torch.Generator) -> torch.Tensor:
    """Uniformly random available actions ``[E, N]`` for a time step."""
    avail = ts.avail_actions
    weights = avail.reshape(-1, avail.shape[-1]).float()
    return torch.multinomial(weights, 1, generator=generator).view(avail.shape[:-1])
