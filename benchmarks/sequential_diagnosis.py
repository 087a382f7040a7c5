"""Why sequential presets do (not) beat MAPPO: one update of each variant on the same data.

    python benchmarks/sequential_diagnosis.py --env mamujoco:HalfCheetah-6x1 \
        --env-kwargs '{"num_workers": 1}' --seeds 0 1 2 --checkpoints 20000 60000 \
        [--heldout-length 1000] [--out benchmarks/results/sequential_diagnosis]

For each seed, MAPPO trains at the env's reference configuration up to each
checkpoint (env steps). There the policy collects one training batch ``D`` (the
usual ``num_envs x rollout_length``) and a larger held-out batch ``H``. Every
variant (MAPPO; HAPPO; HAPPO without its correction, with a fixed order, with
the correction clipped; A2PO's corrections with a random order) then starts from
*the same* parameters, optimizer state and minibatch generator and makes one
update on ``D``; the sequential variants share the same random agent order.
Each updated joint policy is scored on ``D`` and on ``H``:

- ``gain``: ``E[(prod_i r_i - 1) A_hat]`` with ``r_i = pi_i^new / pi_i^old`` and
  the normalized GAE advantage: the importance-sampled first-order estimate of
  the joint policy's improvement (HAPPO's theory guarantees it for the joint
  ratio; MAPPO optimizes each ``r_i`` alone);
- ``sum of individual gains``: ``sum_i E[(r_i - 1) A_hat]`` (what MAPPO's loss sees);
- ``KL``: ``E[sum_i KL(pi_i^old || pi_i^new)]`` (the joint KL of independent agents);
- ``gain / KL``: improvement per unit of policy change;
- ``mean abs(prod r - 1)``: how far the joint ratio moved (the size of HAPPO's factor).

On ``H`` these are unbiased estimates for fresh states of the same policy, so an
update that overfits ``D`` shows a gain on ``D`` that ``H`` does not confirm. One
JSON line per (seed, checkpoint, variant) goes to ``OUT/<env>.jsonl``; the table
gives mean +- 95% CI over (seed, checkpoint) and the paired difference to MAPPO.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

import torch
from _bench import command_line, mean_ci95, print_table, single_thread
from torch.distributions import kl_divergence

import mapograph as mg
from mapograph.algos import CORRECTIONS
from mapograph.algos._advantages import normalize

#: name -> (sequential?, order, correction, correction clip)
VARIANTS: dict[str, tuple[bool, str, str, float | None]] = {
    "mappo": (False, "-", "none", None),
    "happo": (True, "random", "factor", None),
    "happo, no correction": (True, "random", "none", None),
    "happo, fixed order": (True, "identity", "factor", None),
    "happo, correction clip 0.2": (True, "random", "factor", 0.2),
    "a2po corrections, random order": (True, "random", "both", 0.2),
}


@torch.no_grad()
def score(actor, old_actor, rollout, advantages: torch.Tensor) -> dict[str, float]:
    """Joint gain, sum of individual gains and joint KL of ``actor`` against ``old_actor``."""
    obs, avail = rollout.flat(rollout.obs), rollout.flat(rollout.avail)
    actions, old_logp = rollout.flat(rollout.actions), rollout.flat(rollout.log_probs)
    adv = normalize(advantages).reshape(-1, 1)
    new = actor.distribution(obs, avail)
    log_ratio = new.log_prob(actions) - old_logp  # [T * E, N]
    joint = torch.exp(log_ratio.sum(-1, keepdim=True))
    kl = kl_divergence(old_actor.distribution(obs, avail), new).sum(-1)
    return {
        "gain": float(((joint - 1) * adv).mean()),
        "individual_gains": float(((torch.exp(log_ratio) - 1) * adv).mean(0).sum()),
        "kl": float(kl.mean()),
        "mean_abs_joint_ratio_dev": float((joint - 1).abs().mean()),
        "max_abs_log_joint_ratio": float(log_ratio.sum(-1).abs().max()),
    }


def probe(trainer: mg.Trainer, args: argparse.Namespace, seed: int) -> list[dict]:
    """Collect D and H with the current policy; one update per variant; score each."""
    algo = trainer.algorithm
    behaviour = trainer._behaviour(trainer.plan)
    data, _, _ = trainer.collector.collect(behaviour, args.rollout_length)
    heldout, _, _ = trainer.collector.collect(behaviour, args.heldout_length)
    opt = algo.optimizer
    values_d = opt.rollout_values(data)
    adv_d = opt.advantages(data, values_d)
    adv_h = opt.advantages(heldout, opt.rollout_values(heldout))
    n = trainer.n_agents
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    rows = []
    for name, (sequential, order_name, correction, clip) in VARIANTS.items():
        if sequential:
            agents = order if order_name == "random" else list(range(n))
            plan = [[i] for i in agents]
        else:
            plan = [list(range(n))]
        variant = copy.deepcopy(opt)  # same parameters, Adam state and minibatch generator
        variant.correction = CORRECTIONS.get(correction)
        variant.correction_clip = clip
        start = time.perf_counter()
        stats = variant.update(data, plan, values_d, adv_d)
        wall = time.perf_counter() - start
        rows.append(
            {
                "variant": name,
                "order": [b[0] for b in plan] if sequential else None,
                "update_s": wall,
                "clip_fraction": stats["clip_fraction"],
                "train": score(variant.actor, algo.actor, data, adv_d),
                "heldout": score(variant.actor, algo.actor, heldout, adv_h),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mamujoco:HalfCheetah-6x1")
    parser.add_argument("--env-kwargs", default="", help="JSON, e.g. '{\"num_workers\": 1}'")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--checkpoints", nargs="+", type=int, default=[20_000, 60_000])
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rollout-length", type=int, default=200)
    parser.add_argument("--heldout-length", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/sequential_diagnosis")
    args = parser.parse_args()
    single_thread()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{args.env.replace(':', '_').replace('-', '_')}.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["seed"], r["checkpoint"]) for r in records}
    env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else {}
    for seed in args.seeds:
        todo = [c for c in sorted(args.checkpoints) if (seed, c) not in done]
        if not todo:
            continue
        env = mg.envs.make(args.env, num_envs=args.num_envs, seed=seed, **env_kwargs)
        try:
            for checkpoint in todo:
                cfg = mg.TrainConfig.for_env(
                    args.env,
                    algo="mappo",
                    seed=seed,
                    total_steps=checkpoint,
                    num_envs=args.num_envs,
                    rollout_length=args.rollout_length,
                    progress=False,
                    tensorboard=False,
                )
                if checkpoint == todo[0]:
                    trainer = mg.Trainer(env, cfg)
                else:  # continue the same run up to this checkpoint
                    trainer.cfg = dataclasses.replace(trainer.cfg, total_steps=checkpoint)
                trainer.train()
                for row in probe(trainer, args, seed):
                    row.update(env=args.env, seed=seed, checkpoint=checkpoint)
                    records.append(row)
                    with log.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                print(f"seed {seed} checkpoint {checkpoint} done", flush=True)
        finally:
            env.close()
    table(records)
    print(f"\n{command_line()}; {time.strftime('%Y-%m-%d')}")


def table(records: list[dict]) -> None:
    """Mean +- 95% CI over (seed, checkpoint) per variant, and the paired difference to MAPPO."""
    mappo = {(r["seed"], r["checkpoint"]): r for r in records if r["variant"] == "mappo"}
    rows = []
    for name in VARIANTS:
        runs = [r for r in records if r["variant"] == name]
        if not runs:
            continue

        def fmt(values: list[float], digits: int = 3) -> str:
            mean, ci = mean_ci95(values)
            return f"{mean:.{digits}f} +- {ci:.{digits}f}"

        h = [r["heldout"] for r in runs]
        diff = [
            r["heldout"]["gain"] - mappo[(r["seed"], r["checkpoint"])]["heldout"]["gain"]
            for r in runs
            if (r["seed"], r["checkpoint"]) in mappo
        ]
        rows.append(
            [
                name,
                len(runs),
                fmt([r["train"]["gain"] for r in runs]),
                fmt([x["gain"] for x in h]),
                fmt(diff),
                fmt([x["individual_gains"] for x in h]),
                fmt([x["kl"] for x in h], 4),
                fmt([x["gain"] / x["kl"] for x in h], 1),
                fmt([r["train"]["mean_abs_joint_ratio_dev"] for r in runs]),
                fmt([r["clip_fraction"] for r in runs], 2),
            ]
        )
    print_table(
        [
            "variant",
            "probes",
            "joint gain on D",
            "joint gain on H",
            "H gain - MAPPO's",
            "sum of individual gains on H",
            "joint KL on H",
            "gain / KL on H",
            "mean abs(prod r - 1) on D",
            "clip fraction",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
