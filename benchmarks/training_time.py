"""Training time per iteration of B2MAPO vs A2PO vs MAPPO, measured side by side.

    python benchmarks/training_time.py [--agents 3 10 30] [--repeats 5] [--settle 0]

For each N the three trainers run on ``coordination:random-N`` with the same
data size (16 copies x 64 steps); their iterations are interleaved round-robin
so all see the same machine load. Prints mean update seconds, mean total
seconds per iteration and the ratios B2MAPO/A2PO and B2MAPO/MAPPO (means, not
medians: B2MAPO's upper layer is fitted on some iterations only once its DAG
holds, see ``upper_max_period``, and the mean is what a run costs).

``--settle K`` first trains B2MAPO for K iterations (the others' work per
iteration does not depend on training), so the measured iterations are those of
a run whose graph has been learned; the output says how many of the measured
iterations fitted the upper layer.

``B2MAPO`` is B2MAPO with ``pi_ind="separate"`` (the paper's design: a second
network trained after the batches), ``B2MAPO-tied`` with ``pi_ind="tied"`` (the
execution policy is ``pi_seq``'s own observation part, distilled inside the batch
passes, no second network to train) and ``B2MAPO-readout`` with ``pi_ind="readout"``
(that part plus a distilled linear head on ``pi_seq``'s detached features), settled
and measured the same way.

Two A2PO columns: ``A2PO`` is mapograph's ``a2po`` preset (the same vectorized
optimizer with one agent per batch: stacked parameters, only the batch's rows
run); ``A2PO-loop`` is the same update run the way A2PO's reference code runs
it, one network and one Adam per agent in a Python loop, acting included
(``_reference_a2po.py``). The paper's B2MAPO/A2PO ratio (0.396) compares against
the latter kind of implementation.
"""

from __future__ import annotations

import argparse
import statistics

from _bench import command_line, print_table, single_thread, write_result
from _reference_a2po import LoopA2PO

import mapograph as mg

#: B2MAPO's measured forms of ``pi_ind`` and their labels
B2MAPO_FORMS = {
    "b2mapo": "B2MAPO",
    "b2mapo_tied": "B2MAPO-tied",
    "b2mapo_readout": "B2MAPO-readout",
}
ALGOS = ("mappo", "a2po", *B2MAPO_FORMS)
#: config of each measured trainer beyond its algo (the forms of B2MAPO's ``pi_ind``)
EXTRA = {
    "b2mapo": {"pi_ind": "separate"},
    "b2mapo_tied": {"pi_ind": "tied"},
    "b2mapo_readout": {"pi_ind": "readout"},
}
#: Where a B2MAPO update's time goes (``Trainer.train_iteration`` statistics).
PARTS = ("policy_update_s", "schedule_update_s", "execution_update_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, nargs="+", default=[3, 10, 30])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settle", type=int, default=0, help="B2MAPO iterations before timing")
    parser.add_argument("--out", default="benchmarks/results/training_time.json")
    args = parser.parse_args()
    if args.threads == 1:
        single_thread()
    rows, split = [], []
    for n in args.agents:
        trainers = {}
        for algo in ALGOS:
            env = mg.envs.make(f"coordination:random-{n}", num_envs=16, seed=0)
            cfg = mg.TrainConfig(
                algo=algo.split("_")[0],
                total_steps=10**9,
                progress=False,
                tensorboard=False,
                **EXTRA.get(algo, {}),
            )
            trainers[algo] = mg.Trainer(env, cfg)
            trainers[algo].train_iteration()  # warm-up
        for _ in range(args.settle):
            for algo in B2MAPO_FORMS:
                trainers[algo].train_iteration()
        env = mg.envs.make(f"coordination:random-{n}", num_envs=16, seed=0)
        cfg = mg.TrainConfig(algo="a2po", total_steps=10**9, progress=False, tensorboard=False)
        loop = LoopA2PO(mg.Trainer(env, cfg))
        loop.iteration()  # warm-up
        steps = {**{a: t.train_iteration for a, t in trainers.items()}, "a2po_loop": loop.iteration}
        update = {a: [] for a in steps}
        total = {a: [] for a in steps}
        b2 = tuple(B2MAPO_FORMS)
        parts = {(a, p): [] for a in b2 for p in PARTS}
        fits: dict[str, list] = {a: [] for a in b2}
        for _ in range(args.repeats):
            for algo, step in steps.items():
                row = step()
                update[algo].append(row["update_s"])
                total[algo].append(row["total_s"])
                if algo in b2:
                    for part in PARTS:
                        parts[algo, part].append(row[part])
                    fits[algo].append(row["upper_fitted"])
        med_u = {a: statistics.mean(v) for a, v in update.items()}
        med_t = {a: statistics.mean(v) for a, v in total.items()}
        batches = trainers["b2mapo"].history[-1]["n_batches"]
        for algo, label in B2MAPO_FORMS.items():
            split.append(
                [
                    n,
                    label,
                    med_u["mappo"],
                    *(statistics.mean(parts[algo, p]) for p in PARTS),
                    f"{sum(fits[algo]):.0f}/{len(fits[algo])}",
                ]
            )
        rows.append(
            [
                n,
                med_u["mappo"],
                med_u["a2po"],
                med_u["a2po_loop"],
                med_u["b2mapo"],
                med_u["b2mapo"] / med_u["a2po"],
                med_u["b2mapo"] / med_u["a2po_loop"],
                med_u["b2mapo"] / med_u["mappo"],
                med_t["b2mapo"] / med_t["a2po"],
                med_t["b2mapo"] / med_t["a2po_loop"],
                med_t["b2mapo"] / med_t["mappo"],
                *(
                    value
                    for algo in b2[1:]
                    for value in (
                        med_u[algo],
                        med_u[algo] / med_u["a2po"],
                        med_u[algo] / med_u["mappo"],
                    )
                ),
                int(batches),
            ]
        )
        print(f"  measured N={n}", flush=True)
    header = [
        "N",
        "MAPPO update s",
        "A2PO update s",
        "A2PO-loop update s",
        "B2MAPO update s",
        "B2MAPO/A2PO (update)",
        "B2MAPO/A2PO-loop (update)",
        "B2MAPO/MAPPO (update)",
        "B2MAPO/A2PO (total)",
        "B2MAPO/A2PO-loop (total)",
        "B2MAPO/MAPPO (total)",
        *(
            column
            for label in list(B2MAPO_FORMS.values())[1:]
            for column in (f"{label} update s", f"{label}/A2PO (update)", f"{label}/MAPPO (update)")
        ),
        "B2MAPO batches",
    ]
    print_table(header, rows)
    split_header = [
        "N",
        "variant",
        "MAPPO update s",
        "pi_seq + critic s",
        "generator + estimator s",
        "pi_ind s",
        "upper-layer fits",
    ]
    print("\nWhere B2MAPO's update time goes (means):")
    print_table(split_header, split)
    write_result(
        args.out,
        {
            "header": header,
            "rows": rows,
            "split_header": split_header,
            "split": split,
            "repeats": args.repeats,
            "settle": args.settle,
            "threads": args.threads,
        },
    )
    print(
        f"\nmean of {args.repeats} interleaved iterations (B2MAPO after {args.settle} training "
        f"iterations), {args.threads} thread(s); command: {command_line()}"
    )


if __name__ == "__main__":
    main()
