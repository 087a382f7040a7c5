"""Where a trained SMAX policy loses, and whether the lost starts can be won at all.

    python benchmarks/smax_outcomes.py --env smax:3m --algo mappo --seeds 0 1 \
        --steps 1000000 --starts 128 --rollouts 256 [--config KEY=VALUE ...] \
        [--out benchmarks/results/smax_outcomes.json]

For each seed: train at the shipped reference (``mg.TrainConfig.for_env``, plus
``--config`` changes), then

1. **outcomes**: 128 greedy and 128 stochastic episodes from fresh starts, each
   classed as a win, a loss (the allies wiped out) or a timeout, with its length;
2. **winnability**: ``--starts`` fresh start states; from each, ``--rollouts`` copies
   of the *same* state are played out: copy 0 greedily, the others with the
   stochastic policy. SMAX is itself random (weapon cooldowns get a random
   deviation per shot, as in pysc2), so a greedy policy's outcome from a fixed start
   is a random variable too. Reported: the share of starts that at least one copy
   wins (a lower bound on the share a policy can win), the greedy win rate, and the
   stochastic win share of the starts the greedy copy lost and won.

A start that no copy wins would be evidence of unwinnable starts (a ceiling below
1); starts the greedy policy loses but its own samples usually win point at the
policy instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _bench import command_line, machine, parse_pairs, write_result

import mapograph as mg
from mapograph.envs import TimeStep
from mapograph.envs._smax import allies_won, observe


def _state_copies(env, copies: int):
    """Jitted ``reset_same(key)`` (``copies`` of one start) and ``step(keys, state, a)``."""
    import jax
    import jax.numpy as jnp

    game = env._env  # jaxmarl's HeuristicEnemySMAX behind mapograph's adapter
    agents = list(game.agents)

    @jax.jit
    def reset_same(key):
        obs, state = game.reset(key)
        tile = lambda x: jnp.broadcast_to(x, (copies, *x.shape))  # noqa: E731
        return jax.tree.map(tile, state), jax.tree.map(tile, observe(game, state, obs))

    @jax.jit
    def step(keys, state, actions):
        def one(key, s, a):
            obs, s2, _, dones, _ = game.step_env(key, s, {ag: a[i] for i, ag in enumerate(agents)})
            return s2, observe(game, s2, obs), dones["__all__"], allies_won(game, s2)

        return jax.vmap(one)(keys, state, actions)

    return reset_same, step


def _timestep(out) -> TimeStep:
    obs, state, avail = (torch.from_dlpack(x) for x in out)
    n = obs.shape[0]
    return TimeStep(
        obs=obs,
        state=state,
        avail_actions=avail,
        reward=torch.zeros(n),
        done=torch.zeros(n, dtype=torch.bool),
    )


def winnability(trainer: mg.Trainer, env, starts: int, rollouts: int, seed: int) -> dict:
    """Play ``rollouts`` copies of each of ``starts`` start states (copy 0 greedy)."""
    import jax

    reset_same, step = _state_copies(env, rollouts)
    key = jax.random.PRNGKey(seed)
    rows = []
    for _ in range(starts):
        key, k_reset, k_run = jax.random.split(key, 3)
        state, out = reset_same(k_reset)
        ts = _timestep(out)
        finished = torch.zeros(rollouts, dtype=torch.bool)
        won = torch.zeros(rollouts, dtype=torch.bool)
        for _ in range(4 * env.spec.episode_limit):
            actions = trainer.act(ts, deterministic=False)
            actions[0] = trainer.act(_timestep(tuple(x[:1] for x in out)), deterministic=True)[0]
            k_run, sub = jax.random.split(k_run)
            jactions = jax.dlpack.from_dlpack(actions.to(torch.int32).contiguous())
            state, out, done, w = step(jax.random.split(sub, rollouts), state, jactions)
            done, w = torch.from_dlpack(done).bool(), torch.from_dlpack(w).bool()
            won |= done & ~finished & w
            finished |= done
            if bool(finished.all()):
                break
            ts = _timestep(out)
        rows.append((bool(won[0]), bool(won.any()), float(won[1:].float().mean())))
    lost = [share for greedy, _, share in rows if not greedy]
    kept = [share for greedy, _, share in rows if greedy]
    return {
        "starts": starts,
        "rollouts": rollouts,
        "winnable": sum(any_win for _, any_win, _ in rows) / starts,
        "greedy_win_rate": len(kept) / starts,
        "stochastic_win_rate": statistics.fmean(share for _, _, share in rows),
        "stochastic_share_where_greedy_lost": statistics.fmean(lost) if lost else None,
        "min_stochastic_share_where_greedy_lost": min(lost) if lost else None,
        "stochastic_share_where_greedy_won": statistics.fmean(kept) if kept else None,
    }


def outcomes(trainer: mg.Trainer, env_id: str, episodes: int, seed: int) -> dict:
    """Win / loss / timeout counts and mean lengths of greedy and stochastic episodes."""
    env = mg.envs.make(env_id, num_envs=episodes, seed=seed)
    result = {}
    try:
        for deterministic in (True, False):
            ts = env.reset()
            length = torch.zeros(episodes)
            first: dict[int, tuple[str, int]] = {}
            for _ in range(4 * env.spec.episode_limit):
                ts = env.step(trainer.act(ts, deterministic))
                length += 1
                for i in ts.done.nonzero().flatten().tolist():
                    if i not in first:
                        kind = "win" if ts.info["won"][i] == 1 else "loss"
                        first[i] = ("timeout" if ts.truncated[i] else kind, int(length[i]))
                length[ts.done.bool()] = 0
                if len(first) == episodes:
                    break
            kinds = {}
            for kind in ("win", "loss", "timeout"):
                lengths = [n for k, n in first.values() if k == kind]
                kinds[kind] = {
                    "share": len(lengths) / episodes,
                    "mean_length": statistics.fmean(lengths) if lengths else None,
                }
            result["greedy" if deterministic else "stochastic"] = kinds
    finally:
        env.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="smax:3m")
    parser.add_argument("--algo", default="mappo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--episodes", type=int, default=128)
    parser.add_argument("--starts", type=int, default=128)
    parser.add_argument("--rollouts", type=int, default=256)
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="benchmarks/results/smax_outcomes.json")
    args = parser.parse_args()
    if not args.env.startswith("smax:"):
        raise SystemExit(f"--env must be a SMAX map (smax:<map>), got {args.env!r}")
    torch.set_num_threads(1)
    overrides = parse_pairs(args.config)
    runs = []
    for seed in args.seeds:
        cfg = mg.TrainConfig.for_env(
            args.env,
            algo=args.algo,
            total_steps=args.steps,
            seed=seed,
            progress=False,
            tensorboard=False,
            **overrides,
        )
        env = mg.envs.make(args.env, num_envs=cfg.env_copies(), seed=seed)
        start = time.perf_counter()
        trainer = mg.Trainer(env, cfg)
        trainer.train()
        wall = time.perf_counter() - start
        probe_env = mg.envs.make(args.env, num_envs=args.rollouts, seed=seed)
        try:
            run = {
                "seed": seed,
                "train_s": wall,
                "outcomes": outcomes(trainer, args.env, args.episodes, 1000 + seed),
                "winnability": winnability(
                    trainer, probe_env, args.starts, args.rollouts, 2000 + seed
                ),
            }
        finally:
            probe_env.close()
            env.close()
        runs.append(run)
        print(json.dumps(run), flush=True)
    write_result(
        args.out,
        {
            "env": args.env,
            "algo": args.algo,
            "steps": args.steps,
            "overrides": overrides,
            "machine": machine(),
            "command": command_line(),
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
