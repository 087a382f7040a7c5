"""Do ``pi_seq``'s children learn to answer their parents? (issue 12, the conditioned games)

    python benchmarks/answers.py [--task climbing:tree-7] [--iterations 80] [--every 10]
        [--seeds 0] [--config KEY=VALUE ...] [--supervised 400]

Trains B2MAPO with the env's true DAG given (``fixed_dag``) on a climbing game twice,
on its plain layout (``conditioned=0``: a child's right answer depends on its
parent's action only) and on its observation-conditioned one (the answer also depends
on both agents' contexts), and every ``--every`` iterations probes ``pi_seq`` on 2048
fresh states: for each edge ``i -> j`` and each action of the parent, the probability
that the child's answer *follows* (decodes to the parent's decoded action, the
climbing game's best reply). 1/A is chance, 1.0 a child that always answers right.
Also printed: the training return / optimum and ``pi_seq``'s mean entropy over the
probed children.

``--supervised K`` (chain and tree layouts: one parent per child) also fits the same
``pi_seq`` (a fresh trainer's actor, built from the same config) to the right answers
by cross-entropy for ``K`` Adam steps of 1024 fresh states at the config's learning
rate: whether the head *can* represent and learn the answer quickly when the answer
is given, as against learning it from the team reward.
"""

from __future__ import annotations

import argparse

import torch
from _bench import command_line, parse_pairs, print_table, single_thread

import mapograph as mg

PROBE_STATES = 2048


def answer(env, parent: int, child: int, parent_actions: torch.Tensor) -> torch.Tensor:
    """``[E]`` the child's following answer (the action decoding to the parent's decoded
    action, the climbing game's best reply) to the parent's ``parent_actions`` ``[E]``."""
    decoded = (parent_actions - env.offsets[parent] - env.context[:, parent]) % env.n_signals
    return (decoded + env.offsets[child] + env.context[:, child]) % env.n_signals


def right_answers(env, edges: list, parents: torch.Tensor) -> torch.Tensor:
    """``[E, N]`` each child's following answer to ``parents`` (-1 for roots; a child with
    several parents gets its answer to the last of them in ``edges``)."""
    target = torch.full_like(parents, -1)
    for i, j in edges:
        target[:, j] = answer(env, i, j, parents[:, i])
    return target


def follow_probability(actor, plan_edges: torch.Tensor, env, edges: list) -> tuple[float, float]:
    """Mean probability over ``edges`` and parent actions that the child's ``pi_seq``
    answer follows its parent, and the children's mean entropy, on ``env``'s states."""
    ts = env.reset()
    follow, entropy = [], []
    for i, j in edges:
        for a_i in range(env.n_signals):
            parents = torch.zeros(PROBE_STATES, env.spec.n_agents, dtype=torch.long)
            parents[:, i] = a_i
            with torch.no_grad():
                dist = actor.distribution(
                    ts.obs, ts.avail_actions, **actor.context(parents, plan_edges)
                )
            right = answer(env, i, j, parents[:, i])
            follow.append(dist.probs[:, j].gather(-1, right[:, None]).mean())
            entropy.append(dist.entropy()[:, j].mean())
    return float(torch.stack(follow).mean()), float(torch.stack(entropy).mean())


def supervised(task: str, env_kwargs: dict, config: mg.TrainConfig, steps: int, seed: int) -> list:
    """Follow accuracy of a fresh ``pi_seq`` fitted to the right answers (every 100 steps)."""
    torch.manual_seed(seed)
    env = mg.envs.make(task, num_envs=1024, seed=seed, **env_kwargs)
    edges = [list(e) for e in env.interdependence().edges]
    edge_index = torch.tensor(edges).t()
    if edge_index[1].unique().numel() < edge_index.shape[1]:
        raise SystemExit(f"--supervised needs one parent per child (chain or tree), not {task}")
    env.reset()
    # a fresh pi_seq built exactly as training builds it (same head, same config)
    fresh = mg.envs.make(task, num_envs=16, seed=seed, **env_kwargs)
    actor = mg.Trainer(fresh, config).actor
    optim = torch.optim.Adam(actor.parameters(), lr=config.lr)
    children = edge_index[1]
    accuracy = []
    for step in range(steps):
        ts = env.step(torch.randint(env.spec.n_actions, (1024, env.spec.n_agents)))
        parents = torch.randint(env.spec.n_actions, (1024, env.spec.n_agents))
        target = right_answers(env, edges, parents)[:, children]
        dist = actor.distribution(ts.obs, ts.avail_actions, **actor.context(parents, edge_index))
        logits = dist.logits[:, children]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
        optim.zero_grad()
        loss.backward()
        optim.step()
        if (step + 1) % 100 == 0:
            accuracy.append(round(float((logits.argmax(-1) == target).float().mean()), 2))
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="climbing:tree-7")
    parser.add_argument("--iterations", type=int, default=80)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--config", nargs="*", default=[], help="TrainConfig KEY=VALUE")
    parser.add_argument("--supervised", type=int, default=0, help="Adam steps of the fit")
    args = parser.parse_args()
    single_thread()
    extra = parse_pairs(args.config)
    rows = []
    for layout, env_kwargs in (("plain", {"conditioned": 0}), ("conditioned", {})):
        for seed in args.seeds:
            env = mg.envs.make(args.task, num_envs=16, seed=seed, **env_kwargs)
            edges = [list(e) for e in env.interdependence().edges]
            config = mg.TrainConfig(
                algo="b2mapo",
                fixed_dag=edges,
                total_steps=10**12,
                seed=seed,
                progress=False,
                tensorboard=False,
                **extra,
            )
            trainer = mg.Trainer(env, config)
            probe = mg.envs.make(args.task, num_envs=PROBE_STATES, seed=999, **env_kwargs)
            for it in range(args.iterations + 1):
                row = trainer.train_iteration()
                if it % args.every == 0:
                    follow, entropy = follow_probability(
                        trainer.actor, trainer.plan.edge_index, probe, edges
                    )
                    ret = row["return_mean"] / env.spec.episode_limit
                    rows.append([layout, seed, it, f"{ret:.2f}", f"{follow:.2f}", f"{entropy:.2f}"])
                    print(*rows[-1], flush=True)
            if args.supervised and seed == args.seeds[0]:
                fit = supervised(args.task, env_kwargs, config, args.supervised, seed)
                print(f"{layout}: supervised follow accuracy every 100 steps {fit}", flush=True)
    print_table(
        ["layout", "seed", "iteration", "return / optimum", "follow prob.", "entropy"], rows
    )
    print(f"\n1/A = {1 / probe.n_signals:.2f} is chance; command: {command_line()}")


if __name__ == "__main__":
    main()
