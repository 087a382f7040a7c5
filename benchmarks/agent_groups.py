"""Actor passes in agent groups against one pass over all of a batch's agents.

    python benchmarks/agent_groups.py [--agents 30 100] [--algos mappo b2mapo]
        [--iterations 10] [--settle 5]

For each N and preset, two trainers with the same seed train on
``coordination:random-N`` (16 copies x 64 steps): one with the default
``GROUP_ELEMENTS`` (a CPU pass whose activations exceed 2 MB per layer runs its
agents in groups, see ``mapograph/algos/_ppo.py``), one with groups switched off.
Their iterations are interleaved (the same machine load) and the table gives the
mean policy-update and total seconds per iteration and the ratio grouped /
whole. The two runs train the same to float rounding (tests/test_agent_groups.py).
"""

from __future__ import annotations

import argparse
import statistics

from _bench import command_line, print_table, single_thread

import mapograph as mg
from mapograph.algos import _ppo

#: GROUP_ELEMENTS that never splits a pass
WHOLE = 1 << 62


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--algos", nargs="+", default=["mappo", "b2mapo"])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--settle", type=int, default=5, help="untimed iterations of each first")
    args = parser.parse_args()
    single_thread()
    grouped_elements = _ppo.GROUP_ELEMENTS
    rows = []
    for n in args.agents:
        for algo in args.algos:
            trainers = {}
            for label in ("grouped", "whole"):
                env = mg.envs.make(f"coordination:random-{n}", num_envs=16, seed=0)
                cfg = mg.TrainConfig(
                    algo=algo, total_steps=10**12, seed=0, progress=False, tensorboard=False
                )
                trainers[label] = mg.Trainer(env, cfg)
            limits = {"grouped": grouped_elements, "whole": WHOLE}
            times: dict[str, dict[str, list[float]]] = {
                label: {"policy_update_s": [], "total_s": []} for label in trainers
            }
            try:
                for i in range(args.settle + args.iterations):
                    for label, trainer in trainers.items():
                        _ppo.GROUP_ELEMENTS = limits[label]
                        row = trainer.train_iteration()
                        if i >= args.settle:
                            for key in times[label]:
                                times[label][key].append(row[key])
            finally:
                _ppo.GROUP_ELEMENTS = grouped_elements
            mean = {
                label: {key: statistics.mean(v) for key, v in parts.items()}
                for label, parts in times.items()
            }
            rows.append(
                [
                    n,
                    algo,
                    mean["whole"]["policy_update_s"],
                    mean["grouped"]["policy_update_s"],
                    mean["grouped"]["policy_update_s"] / mean["whole"]["policy_update_s"],
                    mean["whole"]["total_s"],
                    mean["grouped"]["total_s"],
                    mean["grouped"]["total_s"] / mean["whole"]["total_s"],
                ]
            )
            print(f"  measured N={n} {algo}", flush=True)
    print_table(
        [
            "agents",
            "preset",
            "update s (whole)",
            "update s (groups)",
            "update groups/whole",
            "iteration s (whole)",
            "iteration s (groups)",
            "iteration groups/whole",
        ],
        rows,
    )
    print(
        f"\nCPU, 1 thread; mean of {args.iterations} interleaved iterations after "
        f"{args.settle} untimed ones; GROUP_ELEMENTS {grouped_elements}; "
        f"command: {command_line()}"
    )


if __name__ == "__main__":
    main()
