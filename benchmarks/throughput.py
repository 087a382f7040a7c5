"""Env-steps/s of collection and of the update for MAPPO, at N in {3, 10, 30}.

    python benchmarks/throughput.py [--iterations 5] [--vmas] [--policies]

``--policies``: the same measurement for discrete and continuous actions, each
with feed-forward and recurrent (``recurrent=True``, chunks of 16) policies, on
``coordination:random-10`` (discrete) and ``continuous:follow-10`` (continuous),
plus ``vmas:balance`` continuous and discrete with ``--vmas``.

Env alone: ``env.step`` with uniformly random available actions (no policy).
Collect: ``rollout_length x num_envs`` env steps with the stacked actor.
Update: one MAPPO iteration (critic + actor, 5 epochs) on that data,
reported as env steps of data processed per second.
"""

from __future__ import annotations

import argparse
import time

import torch
from _bench import command_line, print_table, random_actions, single_thread

import mapograph as mg


def env_alone(env_id: str, num_envs: int, steps: int = 200, **env_kwargs) -> float:
    """Env steps per second of ``env.step`` alone, random available actions."""
    env = mg.envs.make(env_id, num_envs=num_envs, seed=0, **env_kwargs)
    gen = torch.Generator().manual_seed(0)
    ts = env.reset()
    elapsed = 0.0
    low, high = env.spec.action_bounds()
    for _ in range(steps):
        if env.spec.continuous:  # uniform in every agent's box
            actions = low + torch.rand(num_envs, *low.shape, generator=gen) * (high - low)
        else:
            actions = random_actions(ts, gen)
        start = time.perf_counter()
        ts = env.step(actions)
        elapsed += time.perf_counter() - start
    env.close()
    return steps * num_envs / elapsed


def measure(
    env_id: str, iterations: int, num_envs: int, recurrent: bool = False, **env_kwargs
) -> tuple[float, float, int]:
    env = mg.envs.make(env_id, num_envs=num_envs, seed=0, **env_kwargs)
    cfg = mg.TrainConfig(
        algo="mappo",
        num_envs=num_envs,
        rollout_length=64,
        total_steps=10**9,
        progress=False,
        recurrent=recurrent,
        chunk_length=16,
    )
    trainer = mg.Trainer(env, cfg)
    trainer.train_iteration()  # warm-up
    collect = update = 0.0
    for _ in range(iterations):
        row = trainer.train_iteration()
        collect += row["collect_s"]
        update += row["update_s"]
    steps = iterations * trainer.steps_per_iteration
    env.close()
    return steps / collect, steps / update, env.spec.n_agents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--vmas", action="store_true", help="also measure VMAS tasks")
    parser.add_argument("--mpe", action="store_true", help="also measure MPE simple_spread")
    parser.add_argument(
        "--policies",
        action="store_true",
        help="discrete vs continuous actions, feed-forward vs recurrent policies",
    )
    args = parser.parse_args()
    single_thread()
    tasks = []
    if args.policies:
        for recurrent in (False, True):
            tasks.append(("coordination:random-10", {"recurrent": recurrent}))
            tasks.append(("continuous:follow-10", {"recurrent": recurrent}))
            if args.vmas:
                tasks.append(("vmas:balance", {"recurrent": recurrent}))
                tasks.append(
                    ("vmas:balance", {"recurrent": recurrent, "continuous_actions": False})
                )
    else:
        for n in (3, 10, 30):
            tasks.append((f"coordination:random-{n}", {}))
        if args.vmas:
            for n in (3, 10, 30):
                tasks.append(("vmas:balance", {"n_agents": n}))
            tasks.append(("vmas:transport", {}))
        if args.mpe:
            tasks.append(("mpe:simple_spread_v3", {}))
    rows = []
    for env_id, kwargs in tasks:
        recurrent = kwargs.pop("recurrent", False)
        collect_sps, update_sps, n = measure(
            env_id, args.iterations, args.num_envs, recurrent, **kwargs
        )
        alone_sps = env_alone(env_id, args.num_envs, **kwargs)
        kind = "discrete" if kwargs.get("continuous_actions") is False else ""
        rows.append(
            [
                env_id + (f" ({kind})" if kind else ""),
                "GRU" if recurrent else "MLP",
                n,
                args.num_envs,
                round(alone_sps * n),
                round(collect_sps),
                round(collect_sps * n),
                round(update_sps),
            ]
        )
        print(f"  measured {env_id} ({n} agents)", flush=True)
    print_table(
        [
            "env",
            "torso",
            "agents",
            "copies",
            "env alone agent-steps/s",
            "collect env-steps/s",
            "collect agent-steps/s",
            "update env-steps/s",
        ],
        rows,
    )
    print(f"\n1 torch thread; command: {command_line()}; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
