"""Where B2MAPO's update time goes beyond a bare K-batch update, measured side by side.

    python benchmarks/update_floor.py [--agents 10] [--settle 60] [--repeats 16]

On ``coordination:random-N`` (16 copies x 64 steps per iteration, one thread), B2MAPO
is trained ``--settle`` iterations so that its learned DAG holds; its current most
likely DAG and that DAG's ``k_batches`` partition are then fixed, and these trainers
run interleaved round-robin (so all see the same machine load):

- ``MAPPO`` (one batch) and ``A2PO`` (one agent per batch), the presets;
- ``K batches``: the same optimizer on the same K batches with nothing of B2MAPO
  (``happo`` with that ``fixed_partition``: the correction of the earlier batches is
  kept, no parent conditioning, no ``pi_ind``, no upper layer) -- the floor of any
  batch-by-batch update with K sequential batches;
- ``given DAG`` rows: B2MAPO's lower layer on the fixed DAG (``fixed_dag``, no upper
  layer), with and without parent conditioning (``condition_on_parents``) and the
  readout ``pi_ind``'s distillation (``kl_coef=0`` switches it off);
- ``B2MAPO``: the learned DAG, as a run costs (mean over iterations: the upper layer
  fits on some of them).

Prints the mean update seconds of each and its ratio to MAPPO and to A2PO: the
difference between consecutive rows is what each part of B2MAPO costs.
"""

from __future__ import annotations

import argparse
import statistics

import networkx as nx
from _bench import command_line, print_table, single_thread, write_result

import mapograph as mg


def trainer(n: int, **config) -> mg.Trainer:
    """A trainer on ``coordination:random-n`` with the benchmark's data size."""
    env = mg.envs.make(f"coordination:random-{n}", num_envs=16, seed=0)
    cfg = mg.TrainConfig(
        seed=0,
        num_envs=16,
        rollout_length=64,
        total_steps=10**9,
        progress=False,
        tensorboard=False,
        **config,
    )
    return mg.Trainer(env, cfg)


def variants(n: int, settle: int) -> tuple[dict[str, mg.Trainer], list[list[int]]]:
    """The measured trainers (B2MAPO settled) and the K batches they share."""
    learned = trainer(n, algo="b2mapo")
    for _ in range(settle):
        learned.train_iteration()
    schedule = learned.algorithm.schedule
    edges = sorted(schedule.upper.mode_edges(schedule.features))
    batches = mg.partition.k_batches(_digraph(n, edges), k=learned.cfg.k)
    given = {"algo": "b2mapo", "fixed_dag": [list(e) for e in edges], "partition": "k_batches"}
    trainers = {
        "MAPPO": trainer(n, algo="mappo"),
        "A2PO": trainer(n, algo="a2po"),
        "K batches (bare)": trainer(n, algo="happo", fixed_partition=batches),
        "given DAG, no conditioning, no pi_ind": trainer(
            n, **given, condition_on_parents=False, kl_coef=0.0
        ),
        "given DAG, no pi_ind": trainer(n, **given, kl_coef=0.0),
        "given DAG, no conditioning": trainer(n, **given, condition_on_parents=False),
        "given DAG": trainer(n, **given),
        "B2MAPO (learned DAG)": learned,
    }
    return trainers, batches


def _digraph(n: int, edges: list[tuple[int, int]]) -> nx.DiGraph:
    """The DAG of ``edges`` on the nodes ``0..n-1``."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, nargs="+", default=[10])
    parser.add_argument("--settle", type=int, default=60, help="B2MAPO iterations first")
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--out", default="benchmarks/results/update_floor.json")
    args = parser.parse_args()
    single_thread()
    header = ["N", "variant", "batches", "update s", "/MAPPO", "/A2PO"]
    rows = []
    for n in args.agents:
        trainers, batches = variants(n, args.settle)
        for name, t in trainers.items():
            if name != "B2MAPO (learned DAG)":
                t.train_iteration()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for _ in range(args.repeats):
            for name, t in trainers.items():
                times[name].append(t.train_iteration()["update_s"])
        mean = {name: statistics.mean(v) for name, v in times.items()}
        for name, t in trainers.items():
            count = int(t.history[-1]["n_batches"])
            rows.append(
                [n, name, count, mean[name], mean[name] / mean["MAPPO"], mean[name] / mean["A2PO"]]
            )
        print(f"  measured N={n} (K batches: {batches})", flush=True)
    print_table(header, rows)
    write_result(
        args.out, {"header": header, "rows": rows, "settle": args.settle, "repeats": args.repeats}
    )
    print(
        f"\nmean update s of {args.repeats} interleaved iterations (B2MAPO after {args.settle} "
        f"training iterations), 1 thread; command: {command_line()}"
    )


if __name__ == "__main__":
    main()
