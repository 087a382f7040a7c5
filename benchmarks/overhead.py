"""How much of an update is arithmetic and how much is overhead (matched-work MAPPO).

    python benchmarks/overhead.py [--iterations 3] [--env vmas:balance] [--env-kwargs n_agents=4]

The matched-work configuration of BenchMARL's MAPPO on VMAS balance: 4 agents,
shared 2x256 tanh MLPs, 45 epochs x 15 minibatches of 400 frames, 6,000 frames per
iteration (60 copies x 100 steps). For one iteration's update it prints

- ``update s``: the Trainer's measured update time;
- ``FLOP floor s``: the time this core takes for the update's matmuls alone
  (actor and critic, forward and backward: ``x @ W``, ``dy @ W^T``, ``x^T @ dy``
  per layer, each timed on its own shapes), times the number of optimizer steps;
- ``bare loop s``: the same forward/backward/Adam steps on plain ``nn.Sequential``
  networks with pre-cut minibatches (what a hand-written loop with no library
  around it costs);
- the overhead share ``1 - floor / update`` and ``1 - bare / update``.

All numbers come from one process, interleaved, so they see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _bench import command_line, print_table, single_thread
from torch import nn

import mapograph as mg
from mapograph.cli import _parse_env_kwargs

MATCHED = dict(
    hidden=256,
    layers=2,
    epochs=45,
    minibatches=15,
    rollout_length=100,
    share_params=True,
    lr=5e-5,
    critic_lr=5e-5,
    gae_lambda=0.9,
    entropy_coef=0.0,
    max_grad_norm=5.0,
)


def matmul_shapes(rows: int, dims: list[int]) -> list[tuple[int, int, int]]:
    """``(m, k, n)`` of an MLP's matmuls on ``rows`` inputs through layer sizes ``dims``."""
    return [(rows, dims[i], dims[i + 1]) for i in range(len(dims) - 1)]


def backward_shapes(shapes: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Every matmul of forward + backward: ``x @ W``, ``dy @ W^T`` and ``x^T @ dy`` per layer."""
    return [s for m, k, n in shapes for s in ((m, k, n), (m, n, k), (k, m, n))]


def flops(shapes: list[tuple[int, int, int]]) -> float:
    """FLOPs (``2 m k n`` each) of these matmuls."""
    return sum(2 * m * k * n for m, k, n in shapes)


def matmul_seconds(shapes: list[tuple[int, int, int]], repeats: int = 20) -> float:
    """Seconds this core takes for exactly these matmuls (the transposed operands of the
    backward pass included: they are timed as the contiguous products of those shapes)."""
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    for a, b in mats:
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        for a, b in mats:
            a @ b
    return (time.perf_counter() - start) / repeats


def bare_loop(spec, cfg, frames: int) -> float:
    """Seconds of the same PPO steps on plain modules (no library code around them)."""
    n, mb = spec.n_agents, frames // cfg.minibatches
    actor = nn.Sequential(
        nn.Linear(spec.obs_dim + n, cfg.hidden),
        nn.Tanh(),
        nn.Linear(cfg.hidden, cfg.hidden),
        nn.Tanh(),
        nn.Linear(cfg.hidden, spec.n_actions),
    )
    critic = nn.Sequential(
        nn.Linear(spec.state_dim, cfg.hidden),
        nn.Tanh(),
        nn.Linear(cfg.hidden, cfg.hidden),
        nn.Tanh(),
        nn.Linear(cfg.hidden, 1),
    )
    opt_a = torch.optim.Adam(actor.parameters(), lr=cfg.lr)
    opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
    obs = torch.randn(cfg.minibatches, mb * n, spec.obs_dim + n)
    state = torch.randn(cfg.minibatches, mb, spec.state_dim)
    actions = torch.randint(spec.n_actions, (cfg.minibatches, mb * n))
    adv = torch.randn(cfg.minibatches, mb * n)
    ret = torch.randn(cfg.minibatches, mb, 1)
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        for i in range(cfg.minibatches):
            logp = torch.log_softmax(actor(obs[i]), -1).gather(1, actions[i, :, None]).squeeze(1)
            loss = -(logp.exp() * adv[i]).mean()
            opt_a.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(actor.parameters(), cfg.max_grad_norm)
            opt_a.step()
            vloss = (critic(state[i]) - ret[i]).pow(2).mean()
            opt_c.zero_grad()
            vloss.backward()
            opt_c.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="vmas:balance")
    parser.add_argument("--env-kwargs", nargs="*", default=["n_agents=4"])
    parser.add_argument("--num-envs", type=int, default=60)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    single_thread()
    env = mg.envs.make(
        args.env, num_envs=args.num_envs, seed=0, **_parse_env_kwargs(args.env_kwargs)
    )
    cfg = mg.TrainConfig(
        algo="mappo",
        total_steps=10**12,
        num_envs=args.num_envs,
        progress=False,
        tensorboard=False,
        **MATCHED,
    )
    trainer = mg.Trainer(env, cfg)
    spec, frames = env.spec, cfg.rollout_length * args.num_envs
    mb = frames // cfg.minibatches
    actor_shapes = matmul_shapes(
        mb * spec.n_agents, [spec.obs_dim + spec.n_agents, cfg.hidden, cfg.hidden, spec.n_actions]
    )
    critic_shapes = matmul_shapes(mb, [spec.state_dim, cfg.hidden, cfg.hidden, 1])
    steps = cfg.epochs * cfg.minibatches
    all_shapes = backward_shapes(actor_shapes + critic_shapes)
    total_flops = steps * flops(all_shapes)
    update, collect, floor, bare = [], [], [], []
    for _ in range(args.iterations):
        row = trainer.train_iteration()
        update.append(row["update_s"])
        collect.append(row["collect_s"])
        floor.append(steps * matmul_seconds(all_shapes))
        bare.append(bare_loop(spec, cfg, frames))
    med = {
        k: statistics.median(v)
        for k, v in dict(update=update, collect=collect, floor=floor, bare=bare).items()
    }
    print_table(
        [
            "env",
            "frames/iter",
            "optimizer steps",
            "GFLOP",
            "collect s",
            "update s",
            "FLOP floor s",
            "bare loop s",
            "overhead vs floor",
            "overhead vs bare",
            "frames/s",
        ],
        [
            [
                args.env,
                frames,
                steps,
                total_flops / 1e9,
                med["collect"],
                med["update"],
                med["floor"],
                med["bare"],
                1 - med["floor"] / med["update"],
                1 - med["bare"] / med["update"],
                frames / (med["collect"] + med["update"]),
            ]
        ],
    )
    print(
        f"\n{torch.get_num_threads()} thread(s), median of {args.iterations}; command: {command_line()}"
    )


if __name__ == "__main__":
    main()
