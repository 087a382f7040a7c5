"""B2MAPO against MAPPO as the number of agents grows: iteration time and parameters.

    python benchmarks/scale.py [--agents 10 100 1000] [--iterations 2] [--settle 0]
        [--pi-ind separate|tied|readout] [--config key=value ...]

For each N, MAPPO and B2MAPO (defaults: beyond 16 agents ``pi_seq`` reads its
parents through linear-size coded messages, beyond 64 the generator attends over a
sparse candidate graph) train on ``coordination:random-N`` with 16 copies x 64
steps; their iterations are interleaved (same machine load). Prints the mean
seconds per iteration (with ``--settle K``: after K untimed iterations of each, so
that B2MAPO's upper layer has backed off to its steady period, and averaged over the
timed ones, fits of the upper layer included), the ratio B2MAPO/MAPPO, the trained parameters of each
(B2MAPO: pi_seq, pi_ind, critic, generator and its critic) and their ratio, where
B2MAPO's iteration went (collection, ``pi_seq``'s batch update, the upper layer, a
separate ``pi_ind``; means over the timed iterations), and the
time of the three partitioners on a B2MAPO-sized random DAG.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _bench import command_line, parse_pairs, print_table, single_thread
from partition import random_dag

import mapograph as mg
from mapograph import partition as P

#: B2MAPO's iteration split (``Trainer`` statistics) -> column label
SPLIT = {
    "collect_s": "collect",
    "policy_update_s": "pi_seq update",
    "schedule_update_s": "upper layer",
    "execution_update_s": "pi_ind",
}


def trained_parameters(trainer: mg.Trainer) -> int:
    """Parameters of every trained module, the upper layer's generator and critic included."""
    modules = dict(trainer.algorithm.modules())
    upper = getattr(trainer.algorithm.schedule, "upper", None)
    if upper is not None:
        modules.update(generator=upper.net, generator_critic=upper.critic)
    return sum(p.numel() for m in modules.values() for p in m.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--rollout", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--settle", type=int, default=0, help="untimed iterations of each method before timing"
    )
    parser.add_argument(
        "--pi-ind",
        default=None,
        help="B2MAPO's execution policy: separate, tied or readout (default: TrainConfig's)",
    )
    parser.add_argument(
        "--config",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="B2MAPO TrainConfig overrides, e.g. interaction_estimator=pairwise",
    )
    args = parser.parse_args()
    single_thread()
    b2mapo_config = parse_pairs(args.config)
    if args.pi_ind is not None:
        b2mapo_config["pi_ind"] = args.pi_ind
    rows = []
    for n in args.agents:
        trainers = {}
        for algo in ("mappo", "b2mapo"):
            env = mg.envs.make(f"coordination:random-{n}", num_envs=args.num_envs, seed=0)
            cfg = mg.TrainConfig(
                algo=algo,
                total_steps=10**12,
                rollout_length=args.rollout,
                num_envs=args.num_envs,
                device=args.device,
                progress=False,
                tensorboard=False,
                **(b2mapo_config if algo == "b2mapo" else {}),
            )
            trainers[algo] = mg.Trainer(env, cfg)
        for _ in range(args.settle):
            for trainer in trainers.values():
                trainer.train_iteration()
        seconds: dict[str, list[float]] = {a: [] for a in trainers}
        parts: dict[str, list[float]] = {k: [] for k in SPLIT}
        for _ in range(args.iterations):
            for algo, trainer in trainers.items():
                row = trainer.train_iteration()
                seconds[algo].append(row["total_s"])
                if algo == "b2mapo":
                    for key in SPLIT:
                        parts[key].append(row.get(key, 0.0))
        med = {a: statistics.mean(v) for a, v in seconds.items()}
        params = {a: trained_parameters(t) for a, t in trainers.items()}
        dag = random_dag(n, seed=n)
        part_ms = {}
        for name, fn in (
            ("generations", P.generations),
            ("bounded", lambda d, n=n: P.bounded(d, max_batch_size=max(1, n // 10))),
            ("k_batches", lambda d: P.k_batches(d, k=3)),
        ):
            start = time.perf_counter()
            fn(dag)
            part_ms[name] = (time.perf_counter() - start) * 1e3
        rows.append(
            [
                n,
                med["mappo"],
                med["b2mapo"],
                med["b2mapo"] / med["mappo"],
                params["mappo"],
                params["b2mapo"],
                params["b2mapo"] / params["mappo"],
                len(trainers["b2mapo"].history[-1]["batches"]),
                *(statistics.mean(parts[key]) for key in SPLIT),
                part_ms["generations"],
                part_ms["bounded"],
                part_ms["k_batches"],
            ]
        )
        print(f"  measured N={n}", flush=True)
    print_table(
        [
            "agents",
            "MAPPO s/iter",
            "B2MAPO s/iter",
            "B2MAPO/MAPPO",
            "MAPPO params",
            "B2MAPO params",
            "params ratio",
            "B2MAPO batches",
            *(f"B2MAPO {label} s" for label in SPLIT.values()),
            "generations ms",
            "bounded(n/10) ms",
            "k_batches(3) ms",
        ],
        rows,
    )
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU, 1 thread"
    print(
        f"\n{device}; mean of {args.iterations} iterations after {args.settle} untimed ones; "
        f"command: {command_line()}"
    )


if __name__ == "__main__":
    main()
