"""Final return of MAPPO, HAPPO, A2PO and B2MAPO on coordination games, several seeds.

    python benchmarks/returns.py [--tasks coordination:chain-6 coordination:random-10]
        [--seeds 5] [--steps 150000] [--out benchmarks/results/returns]
        [--env-kwargs trap=0.5 n_actions=3] [--config condition_on_parents=false]

Every algorithm gets the same env steps and seeds. "final" is the mean
``evaluate()`` return (greedy, 64 episodes) of the policy that acts at execution
(``pi_ind`` for B2MAPO), divided by the episode limit so 1.0 is the optimum.
Also prints the skeleton AUC of B2MAPO's ``interdependence()`` against the true
DAG (undirected: score of a pair = p(i->j) + p(j->i)).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _bench import command_line, machine, mean_ci95, parse_pairs, print_table, single_thread

import mapograph as mg

ALGOS = ("mappo", "happo", "a2po", "b2mapo")


def edge_weight(graph, i: int, j: int) -> float:
    """``weight`` of the edge ``i -> j`` (0 where the graph has no such edge, as a given
    DAG's ``interdependence()`` lists only its edges)."""
    return float(graph.get_edge_data(i, j, {}).get("weight", 0.0))


def skeleton_auc(learned, true_dag) -> float:
    """Area under the ROC curve of p(i->j)+p(j->i) for 'i and j are adjacent in the true DAG'."""
    n = true_dag.number_of_nodes()
    pos, neg = [], []
    for i in range(n):
        for j in range(i + 1, n):
            score = edge_weight(learned, i, j) + edge_weight(learned, j, i)
            (pos if true_dag.has_edge(i, j) or true_dag.has_edge(j, i) else neg).append(score)
    if not pos or not neg:
        return float("nan")
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def run(
    task: str, algo: str, seed: int, steps: int, out: Path, env_kwargs: dict, config: dict
) -> dict:
    env = mg.envs.make(task, num_envs=16, seed=seed, **env_kwargs)
    cfg = mg.TrainConfig(
        algo=algo, total_steps=steps, seed=seed, progress=False, tensorboard=False, **config
    )
    trainer = mg.Trainer(env, cfg)
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    evaluation = trainer.evaluate(64)
    limit = env.spec.episode_limit
    record = {
        "task": task,
        "algo": algo,
        "seed": seed,
        "env_kwargs": env_kwargs,
        "config": config,
        "final": evaluation["return_mean"] / limit,
        "train_curve": [(h["step"], h["return_mean"] / limit) for h in result.history],
        "wall_s": wall,
        "steps": steps,
        "command": command_line(),
        "machine": machine(),
    }
    if algo == "b2mapo":
        if hasattr(env, "interdependence"):  # the env knows its true DAG
            record["skeleton_auc"] = skeleton_auc(trainer.interdependence(), env.interdependence())
        record["last_batches"] = result.history[-1]["batches"]
    env.close()
    tag = "".join(f"_{k}{v}" for k, v in sorted({**env_kwargs, **config}.items()))
    (out / f"{task.replace(':', '_')}{tag}_{algo}_{seed}.json").write_text(json.dumps(record))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tasks", nargs="+", default=["coordination:chain-6", "coordination:random-10"]
    )
    parser.add_argument("--algos", nargs="+", default=list(ALGOS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--out", default="benchmarks/results/returns")
    parser.add_argument("--env-kwargs", nargs="*", default=[], help="key=value passed to make()")
    parser.add_argument(
        "--config", nargs="*", default=[], help="key=value TrainConfig fields for every algorithm"
    )
    args = parser.parse_args()
    single_thread()  # several runs side by side must not oversubscribe the cores
    env_kwargs = parse_pairs(args.env_kwargs)
    config = parse_pairs(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for task in args.tasks:
        for seed in range(args.seeds):
            for algo in args.algos:
                rec = run(task, algo, seed, args.steps, out, env_kwargs, config)
                records.append(rec)
                print(
                    f"  {task} {algo} seed {seed}: final {rec['final']:.3f} ({rec['wall_s']:.0f}s)",
                    flush=True,
                )
    rows = []
    for task in args.tasks:
        for algo in args.algos:
            finals = [r["final"] for r in records if r["task"] == task and r["algo"] == algo]
            mean, half = mean_ci95(finals)
            aucs = [
                r["skeleton_auc"]
                for r in records
                if r["task"] == task and r["algo"] == algo and "skeleton_auc" in r
            ]
            auc = mean_ci95(aucs)[0] if aucs else float("nan")
            rows.append([task, algo, len(finals), f"{mean:.3f} ± {half:.3f}", auc])
    print()
    print_table(["task", "algo", "seeds", "final return / optimum (95% CI)", "skeleton AUC"], rows)
    print(f"\n{args.steps} env steps per run; command: {command_line()}")
    try:
        from mapograph.viz import plot_learning_curves

        for task in args.tasks:
            histories = {}
            for algo in args.algos:
                curves = [
                    r["train_curve"] for r in records if r["task"] == task and r["algo"] == algo
                ]
                length = min(len(c) for c in curves)
                histories[algo] = [
                    {
                        "step": curves[0][i][0],
                        "return_mean": sum(c[i][1] for c in curves) / len(curves),
                    }
                    for i in range(length)
                ]
            tag = "".join(f"_{k}{v}" for k, v in sorted({**env_kwargs, **config}.items()))
            plot_learning_curves(histories, path=out / f"{task.replace(':', '_')}{tag}.png")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
