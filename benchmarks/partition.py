"""Partition time for up to 1,000 agents; DAG generator sample + log_prob time.

    python benchmarks/partition.py [--sizes 10 100 1000] [--repeats 5]

Random DAGs: each agent gets on average 2 parents among earlier agents of a
random order. Generator: ``DAGGenerator(feature_dim=16, n)`` on 64 copies.
"""

from __future__ import annotations

import argparse
import statistics
import time

import networkx as nx
import torch
from _bench import command_line, print_table, single_thread, write_result

from mapograph import partition as P
from mapograph.graph import DAGGenerator


def random_dag(n: int, seed: int, mean_parents: float = 2.0) -> nx.DiGraph:
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen).tolist()
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    for pos in range(1, n):
        k = min(pos, int(torch.poisson(torch.tensor(mean_parents), generator=gen)))
        for q in torch.randperm(pos, generator=gen)[:k].tolist():
            dag.add_edge(perm[q], perm[pos])
    return dag


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--generator-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--out", default="benchmarks/results/partition.json")
    args = parser.parse_args()
    single_thread()
    rows = []
    for n in args.sizes:
        dag = random_dag(n, seed=n)
        rows.append(
            [
                n,
                dag.number_of_edges(),
                len(P.generations(dag)),
                timed(lambda dag=dag: P.generations(dag), args.repeats) * 1e3,
                timed(
                    lambda dag=dag, n=n: P.bounded(dag, max_batch_size=max(1, n // 10)),
                    args.repeats,
                )
                * 1e3,
                timed(lambda dag=dag: P.k_batches(dag, k=3), args.repeats) * 1e3,
            ]
        )
    header = [
        "agents",
        "edges",
        "generations",
        "generations ms",
        "bounded(n/10) ms",
        "k_batches(3) ms",
    ]
    print_table(header, rows)
    partition_rows = rows
    rows = []
    for n in args.generator_sizes:
        torch.manual_seed(0)
        gen = DAGGenerator(16, n)
        x = torch.randn(64, n, 16)
        rng = torch.Generator().manual_seed(0)

        def sample_and_log_prob(gen=gen, x=x, rng=rng):
            with torch.no_grad():
                dist = gen(x)
                return dist.log_prob(dist.sample(rng))

        rows.append([n, 64, timed(sample_and_log_prob, args.repeats) * 1e3])
    print()
    generator_header = ["agents", "copies", "generator forward + sample + log_prob ms"]
    print_table(generator_header, rows)
    write_result(
        args.out,
        {
            "header": header,
            "rows": partition_rows,
            "generator_header": generator_header,
            "generator_rows": rows,
            "repeats": args.repeats,
        },
    )
    print(f"\n1 thread, median of {args.repeats}; command: {command_line()}")


if __name__ == "__main__":
    main()
