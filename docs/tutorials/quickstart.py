"""Tutorial 1: train B2MAPO on a built-in game, then read what the run wrote.

Run it with ``python docs/tutorials/quickstart.py``. The test suite runs it with
``MAPOGRAPH_TUTORIAL_STEPS=1024`` (one iteration); the default is the budget the
page talks about.
"""

import csv
import json
import os
import shutil
from pathlib import Path

import mapograph as mg
from mapograph.cli import main as mapograph_cli

STEPS = int(os.environ.get("MAPOGRAPH_TUTORIAL_STEPS", 40_000))
OUT = Path("runs/tutorial1")
# A trainer refuses to write over a folder that already holds a run: start fresh
# each time this tutorial runs.
for folder in (OUT, Path("runs/tutorial1-cli")):
    shutil.rmtree(folder, ignore_errors=True)

# --8<-- [start:train]
env = mg.envs.make("coordination:chain-6", num_envs=16, seed=0)
print(env.spec)  # 6 agents, 2 actions each, the true DAG is a chain 0 -> 1 -> ... -> 5

cfg = mg.TrainConfig(algo="b2mapo", total_steps=STEPS, seed=0)
trainer = mg.Trainer(env, cfg, out_dir=OUT)
result = trainer.train()

last = result.history[-1]
print(f"{len(result.history)} iterations, last return {last['return_mean']:.2f}")
print("batches of the last update:", last["batches"])
print("greedy evaluation of pi_ind:", trainer.evaluate(episodes=32))
# --8<-- [end:train]

# --8<-- [start:outputs]
print(sorted(p.name for p in OUT.iterdir()))  # checkpoint.pt, progress.csv, tb/

with (OUT / "progress.csv").open() as handle:
    rows = list(csv.DictReader(handle))
print("progress.csv columns:", list(rows[0])[:8], "...")
print("steps logged:", [int(float(r["step"])) for r in rows][-3:])

state = mg.train.load_checkpoint(OUT)  # torch.load(weights_only=True): no code runs
print("checkpoint:", state["iteration"], "iterations,", state["env_steps"], "env steps")
print("modules in it:", sorted(state["modules"]))
# --8<-- [end:outputs]

# --8<-- [start:resume]
env = mg.envs.make("coordination:chain-6", num_envs=16, seed=0)
restored = mg.Trainer.load(OUT, env, total_steps=STEPS + 1024)
print("restored at step", restored.env_steps)
restored.train()  # continues where the checkpoint stopped, one more iteration
assert restored.env_steps > STEPS
env.close()
# --8<-- [end:resume]

# --8<-- [start:cli]
# The same from the command line: `mapograph train --env coordination:chain-6 ...`.
mapograph_cli(
    ["train", "--env", "coordination:chain-6", "--algo", "b2mapo"]
    + ["--steps", str(STEPS), "--seed", "0", "--out", "runs/tutorial1-cli"]
)
summary = json.loads(Path("runs/tutorial1-cli/summary.json").read_text())
print("summary.json:", {k: summary[k] for k in ("algo", "steps", "iterations", "last_batches")})
mapograph_cli(["eval", "runs/tutorial1-cli", "--episodes", "8"])
mapograph_cli(["graph", "runs/tutorial1-cli"])  # writes runs/tutorial1-cli/graph.png
assert Path("runs/tutorial1-cli/graph.png").stat().st_size > 0
# --8<-- [end:cli]
