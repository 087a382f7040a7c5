"""Execution latency per decision step: pi_ind vs pi_seq vs a per-agent loop.

    python benchmarks/latency.py [--agents 3 10 30] [--envs 1] [--repeats 200]

- ``pi_ind``: B2MAPO's derived independent policy, one batched forward for all agents;
- ``pi_seq``: the batch-sequential policy, one forward per batch of the partition;
- ``loop``: one ``nn.Sequential`` per agent called in a Python loop, the way
  A2PO's and HARL's code act (same sizes and weights as ``pi_ind``).
Times are medians over interleaved calls; ratios are against ``loop``.
"""

from __future__ import annotations

import argparse

import torch
from _bench import (
    command_line,
    interleaved_median_times,
    per_agent_networks,
    print_table,
    single_thread,
    write_result,
)

import mapograph as mg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, nargs="+", default=[3, 10, 30])
    parser.add_argument("--envs", type=int, default=1, help="env copies per decision step")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/latency.json")
    args = parser.parse_args()
    single_thread()
    rows = []
    for n in args.agents:
        env = mg.envs.make(f"coordination:random-{n}", num_envs=args.envs, seed=0)
        trainer = mg.Trainer(env, mg.TrainConfig(algo="b2mapo", num_envs=args.envs, progress=False))
        trainer.train_iteration()  # draws a DAG and its batches
        ts = env.reset()
        ind = trainer.algorithm.policy("ind")
        # a readout pi_ind folds into a plain actor (the same policy)
        nets = per_agent_networks(ind.as_actor() if hasattr(ind, "as_actor") else ind)

        @torch.no_grad()
        def loop(ts=ts, nets=nets):
            actions = []
            for i, net in enumerate(nets):
                logits = net(ts.obs[:, i]).masked_fill(~ts.avail_actions[:, i], -1e9)
                actions.append(torch.distributions.Categorical(logits=logits).sample())
            return torch.stack(actions, 1)

        times = interleaved_median_times(
            {
                "ind": lambda ts=ts, t=trainer: t.act(ts, policy="ind"),
                "seq": lambda ts=ts, t=trainer: t.act(ts, policy="seq"),
                "loop": loop,
            },
            args.repeats,
            warmup=5,
        )
        rows.append(
            [
                n,
                len(trainer.batches),
                times["ind"] * 1e6,
                times["seq"] * 1e6,
                times["loop"] * 1e6,
                times["ind"] / times["loop"],
                times["seq"] / times["loop"],
            ]
        )
        env.close()
    header = [
        "N",
        "batches",
        "pi_ind µs",
        "pi_seq µs",
        "per-agent loop µs",
        "pi_ind / loop",
        "pi_seq / loop",
    ]
    print_table(header, rows)
    write_result(
        args.out, {"header": header, "rows": rows, "envs": args.envs, "repeats": args.repeats}
    )
    print(f"\n{args.envs} env copies per step, 1 thread; command: {command_line()}")


if __name__ == "__main__":
    main()
