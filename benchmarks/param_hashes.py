"""Final-parameter hashes of a short run per preset (refactoring guard).

Trains each preset for a few iterations on CPU with a fixed seed and prints one
SHA-256 per trained module (``trainer.state_dict()["modules"]``) plus the
batches of the last iteration and the final return. Run it on two commits and
compare: equal hashes mean the refactor did not change a single bit of what the
presets compute.

    python benchmarks/param_hashes.py --out benchmarks/results/hashes_after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json

import torch

import mapograph as mg

CASES: dict[str, dict] = {
    "mappo": {"algo": "mappo"},
    "mappo_shared": {"algo": "mappo", "share_params": True},
    "happo": {"algo": "happo"},
    "happo_minibatches": {"algo": "happo", "minibatches": 2},
    "a2po": {"algo": "a2po"},
    "b2mapo": {"algo": "b2mapo"},
    "b2mapo_generations": {"algo": "b2mapo", "partition": "generations"},
    "b2mapo_bounded": {"algo": "b2mapo", "partition": "bounded", "max_batch_size": 2},
    "b2mapo_edges": {"algo": "b2mapo", "partition": "generations", "edge_threshold": 0.0},
    "b2mapo_simultaneous": {"algo": "b2mapo", "partition": "simultaneous"},
    "b2mapo_fixed": {
        "algo": "b2mapo",
        "partition": "fixed",
        "fixed_partition": [[0, 1], [2, 3, 4, 5]],
    },
}


def tensor_digest(state: object) -> str:
    """SHA-256 over every tensor of a (nested) state dict, in key order."""
    h = hashlib.sha256()

    def visit(prefix: str, value: object) -> None:
        if isinstance(value, torch.Tensor):
            h.update(prefix.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(f"{prefix}.{key}", value[key])
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(f"{prefix}[{i}]", item)

    visit("", state)
    return h.hexdigest()[:16]


def run_case(overrides: dict, iterations: int, env_id: str) -> dict:
    env = mg.envs.make(env_id, num_envs=8, seed=0)
    cfg = mg.TrainConfig(
        total_steps=8 * 32 * iterations,
        rollout_length=32,
        num_envs=8,
        seed=0,
        progress=False,
        tensorboard=False,
        **overrides,
    )
    trainer = mg.Trainer(env, cfg)
    result = trainer.train()
    state = trainer.state_dict()
    hashes = {name: tensor_digest(s) for name, s in sorted(state["modules"].items())}
    # the DAG generator and its critic (B2MAPO); "upper" was their key before 0.2
    upper = state.get("upper") or (state.get("schedule") or {}).get("upper")
    if isinstance(upper, dict) and "net" in upper:
        hashes["dag_generator"] = tensor_digest(upper["net"])
        hashes["dag_critic"] = tensor_digest(upper["critic"])
    return {
        "hashes": hashes,
        "last_batches": result.history[-1]["batches"],
        "return_mean": [round(h["return_mean"], 6) for h in result.history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="coordination:chain-6")
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--out", help="write the JSON here too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {name: run_case(cfg, args.iterations, args.env) for name, cfg in CASES.items()}
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
