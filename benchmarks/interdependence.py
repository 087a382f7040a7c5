"""Does B2MAPO's graph pay? Learned vs true vs random DAG against MAPPO, HAPPO, A2PO.

    python benchmarks/interdependence.py [--tasks contextual:chain-6 contextual:mixed-10
        coordination:chain-6] [--seeds 3] [--steps 30000]
        [--variants mappo happo a2po b2mapo b2mapo_true b2mapo_random]
        [--out benchmarks/results/interdependence] [--config KEY=VALUE ...]
        [--env-kwargs KEY=VALUE ...]

Variants (every one gets the same env steps and seeds):

- ``mappo``, ``happo``, ``a2po``, ``b2mapo``: the presets (B2MAPO with the default
  ``pairwise`` interdependence estimator);
- ``b2mapo_anova``: B2MAPO with the pooled ANOVA estimator;
- ``b2mapo_true``: B2MAPO with the env's true DAG given (``fixed_dag``; cut into its
  generations since session 15, before by ``k_batches``: ``--config partition=k_batches``
  for the old cut);
- ``b2mapo_random``: B2MAPO with a random DAG of the same number of edges (a
  random order, edges drawn forward in it; seeded by the run's seed; generations too);
- suspects of the lower layer, all with the true DAG: ``true_noparents``
  (``condition_on_parents=False``), ``true_nokl`` (``kl_coef=0``),
  ``true_nocorr`` (``correction="none"``), ``true_seq`` (evaluates ``pi_seq``, the
  optimized policy, instead of the distilled ``pi_ind``), ``true_warmup``
  (``parent_warmup=50``: ``pi_seq`` reads its parents only after 50 iterations),
  ``true_parentobs`` (``parent_obs=True``: the parent head also reads the agent's
  observation);
- any variant above with the suffix ``_explore`` (``mappo_explore``,
  ``b2mapo_explore``, ``b2mapo_true_explore``, ``b2mapo_random_explore``...):
  the same with ``behaviour_epsilon`` = ``--explore`` (default 0.2), a share of
  uniformly random actions while collecting.

On the observation-conditioned games (``contextual:*``, ``climbing:*``) each run also probes the
greedy joint policy of ``pi_ind`` on 4096 fresh states (:func:`equilibrium`): the
share of states where it is optimal, where it is a Nash profile (no agent gains by
changing its own action alone) and where it is a *suboptimal* Nash profile.

A run whose result file is already in ``--out`` is not repeated (the
script resumes). "final" is the greedy ``evaluate()`` return (64 episodes) divided by the
episode limit (1.0 is the optimum of both game families). For learned-graph
variants the skeleton AUC and direction accuracy (fraction of true edges with
``p(i->j) > p(j->i)``) of ``trainer.interdependence()`` are recorded, and for the
``pairwise`` estimator the AUC of its own strengths and the accuracy of its order.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _bench import command_line, mean_ci95, parse_pairs, print_table, single_thread
from returns import edge_weight, skeleton_auc

import mapograph as mg

SUSPECTS = {
    "true_noparents": {"condition_on_parents": False},
    "true_nokl": {"kl_coef": 0.0},
    "true_nocorr": {"correction": "none"},
    "true_seq": {},
    "true_warmup": {"parent_warmup": 50},
    "true_parentobs": {"parent_obs": True},
}
VARIANTS = (
    "mappo",
    "happo",
    "a2po",
    "b2mapo",
    "b2mapo_anova",
    "b2mapo_true",
    "b2mapo_random",
    *SUSPECTS,
)


def random_dag(n: int, n_edges: int, seed: int) -> list[list[int]]:
    """``n_edges`` edges drawn forward in a random order of ``n`` agents (seeded)."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    order = torch.randperm(n, generator=gen).tolist()
    pairs = [(order[a], order[b]) for a in range(n) for b in range(a + 1, n)]
    pick = torch.randperm(len(pairs), generator=gen)[:n_edges].tolist()
    return [list(pairs[k]) for k in sorted(pick)]


EXPLORE_SUFFIX = "_explore"
#: ``behaviour_epsilon`` of the ``*_explore`` variants (``--explore``)
EXPLORE = {"behaviour_epsilon": 0.2}


def variant_config(variant: str, env, seed: int) -> dict:
    """TrainConfig fields of a variant on ``env``."""
    if variant.endswith(EXPLORE_SUFFIX):
        return {**variant_config(variant[: -len(EXPLORE_SUFFIX)], env, seed), **EXPLORE}
    true_edges = [list(e) for e in env.interdependence().edges]
    if variant in ("mappo", "happo", "a2po", "b2mapo"):
        return {"algo": variant}
    if variant == "b2mapo_anova":
        return {"algo": "b2mapo", "interaction_estimator": "anova"}
    if variant == "b2mapo_true":
        return {"algo": "b2mapo", "fixed_dag": true_edges}
    if variant == "b2mapo_random":
        return {
            "algo": "b2mapo",
            "fixed_dag": random_dag(env.spec.n_agents, len(true_edges), seed),
        }
    if variant in SUSPECTS:
        return {"algo": "b2mapo", "fixed_dag": true_edges, **SUSPECTS[variant]}
    raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def direction_accuracy(learned, true_dag) -> float:
    """Fraction of true edges ``i -> j`` with ``p(i->j) > p(j->i)``."""
    edges = list(true_dag.edges)
    return sum(edge_weight(learned, i, j) > edge_weight(learned, j, i) for i, j in edges) / len(
        edges
    )


def estimator_scores(trainer, true_dag) -> dict:
    """AUC of the pairwise estimator's strengths and accuracy of its order (if it has them)."""
    estimator = getattr(trainer.algorithm.schedule, "estimator", None)
    if estimator is None or not hasattr(estimator, "own"):
        return {}
    import networkx as nx

    strength = estimator.strength.cpu()
    n = strength.shape[0]
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(
        (i, j, float(strength[i, j]) / 2) for i in range(n) for j in range(n) if i != j
    )
    order = mg.graph.priority_order(estimator.strength, estimator.own)
    rank = {v: k for k, v in enumerate(order)}
    edges = list(true_dag.edges)
    return {
        "estimator_auc": skeleton_auc(graph, true_dag),
        "estimator_direction": sum(rank[i] < rank[j] for i, j in edges) / len(edges),
    }


def profile_equilibrium(env, actions: torch.Tensor) -> dict:
    """Joint actions ``[E, N]`` for the current states of a contextual game ``env``: the
    shares of states where they are optimal, a Nash profile (no agent gains by changing
    its own action alone) and a suboptimal Nash profile."""
    signal, context = env.signal, env.context
    reward = env.team_reward(actions, signal, context)
    gain = torch.zeros_like(reward)
    n_actions = env.spec.n_actions
    for agent in range(env.spec.n_agents):  # analysis, not a hot path
        for shift in range(1, n_actions):
            other = actions.clone()
            other[:, agent] = (other[:, agent] + shift) % n_actions
            gain = torch.maximum(gain, env.team_reward(other, signal, context) - reward)
    optimal = reward >= env.optimal_return() - 1e-6
    nash = gain <= 1e-6
    return {
        "optimal_states": float(optimal.float().mean()),
        "nash_states": float(nash.float().mean()),
        "subopt_nash_states": float((nash & ~optimal).float().mean()),
    }


def equilibrium(
    trainer, task: str, policy: str = "ind", states: int = 4096, env_kwargs: dict | None = None
) -> dict:
    """:func:`profile_equilibrium` of the trainer's greedy joint policy on ``states``
    fresh states of the contextual game ``task`` (made with ``env_kwargs``)."""
    env = mg.envs.make(task, num_envs=states, seed=12_345, **(env_kwargs or {}))
    ts = env.reset()
    result = profile_equilibrium(env, trainer.act(ts, deterministic=True, policy=policy))
    env.close()
    return result


def run(
    task: str,
    variant: str,
    seed: int,
    steps: int,
    out: Path,
    extra: dict | None = None,
    env_kwargs: dict | None = None,
) -> dict:
    name = f"{task.replace(':', '_')}_{variant}_{seed}_{steps}.json"
    if (out / name).exists():  # resume: a finished run is not repeated
        return json.loads((out / name).read_text())
    env = mg.envs.make(task, num_envs=16, seed=seed, **(env_kwargs or {}))
    config = {**variant_config(variant, env, seed), **(extra or {})}
    cfg = mg.TrainConfig(total_steps=steps, seed=seed, progress=False, tensorboard=False, **config)
    trainer = mg.Trainer(env, cfg)
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    policy = "seq" if variant == "true_seq" else "ind"
    evaluation = trainer.evaluate(64, policy=policy)
    limit = env.spec.episode_limit
    record = {
        "task": task,
        "variant": variant,
        "seed": seed,
        "steps": steps,
        "final": evaluation["return_mean"] / limit,
        "train_curve": [(h["step"], h["return_mean"] / limit) for h in result.history],
        "wall_s": wall,
    }
    if task.startswith(("contextual:", "climbing:")):
        record.update(equilibrium(trainer, task, policy, env_kwargs=env_kwargs))
    if variant.removesuffix(EXPLORE_SUFFIX) in ("b2mapo", "b2mapo_anova"):
        true_dag = env.interdependence()
        learned = trainer.interdependence()
        record["skeleton_auc"] = skeleton_auc(learned, true_dag)
        record["direction"] = direction_accuracy(learned, true_dag)
        record.update(estimator_scores(trainer, true_dag))
    env.close()
    (out / name).write_text(json.dumps(record))
    return record


def summarize(records: list[dict], tasks: list[str], variants: list[str]) -> None:
    """Print the table of final returns (95% CI) and graph scores."""
    rows = []
    for task in tasks:
        for variant in variants:
            recs = [r for r in records if r["task"] == task and r["variant"] == variant]
            if not recs:
                continue
            mean, half = mean_ci95([r["final"] for r in recs])
            cells = [task, variant, len(recs), f"{mean:.3f} ± {half:.3f}"]
            stuck = [r["subopt_nash_states"] for r in recs if "subopt_nash_states" in r]
            cells.append(f"{mean_ci95(stuck)[0]:.2f}" if stuck else "")
            for key in ("skeleton_auc", "direction", "estimator_auc", "estimator_direction"):
                values = [r[key] for r in recs if key in r]
                cells.append(f"{mean_ci95(values)[0]:.2f}" if values else "")
            rows.append(cells)
    header = ["task", "variant", "seeds", "final / optimum (95% CI)", "subopt. Nash states"]
    header += ["skeleton AUC"]
    header += ["direction acc.", "estimator AUC", "estimator direction"]
    print_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=["contextual:chain-6", "contextual:mixed-10", "coordination:chain-6"],
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS[:7]))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--explore", type=float, default=0.2, help="behaviour_epsilon of *_explore variants"
    )
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--out", default="benchmarks/results/interdependence")
    parser.add_argument(
        "--summary-only", action="store_true", help="only tabulate the JSON files in --out"
    )
    parser.add_argument(
        "--env-kwargs",
        nargs="*",
        default=[],
        help="key=value passed to make() for every task (e.g. conditioned=0); give each "
        "setting its own --out",
    )
    parser.add_argument(
        "--config",
        nargs="*",
        default=[],
        help="key=value TrainConfig fields for every variant (e.g. pi_ind=readout); "
        "give each setting its own --out",
    )
    args = parser.parse_args()
    single_thread()  # several runs side by side must not oversubscribe the cores
    extra = parse_pairs(args.config)
    env_kwargs = parse_pairs(args.env_kwargs)
    EXPLORE["behaviour_epsilon"] = args.explore
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    if not args.summary_only:
        for seed in range(args.seeds):
            for task in args.tasks:
                for variant in args.variants:
                    rec = run(task, variant, seed, args.steps, out, extra, env_kwargs)
                    records.append(rec)
                    print(
                        f"  {task} {variant} seed {seed}: final {rec['final']:.3f} "
                        f"({rec['wall_s']:.0f}s)",
                        flush=True,
                    )
    else:
        for path in sorted(out.glob("*.json")):
            rec = json.loads(path.read_text())
            if rec["steps"] == args.steps and rec["seed"] < args.seeds:
                records.append(rec)
    print()
    summarize(records, args.tasks, args.variants)
    print(f"\n{args.steps} env steps per run; command: {command_line()}")


if __name__ == "__main__":
    main()
