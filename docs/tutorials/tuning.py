"""Tutorial 4: tune B2MAPO's partition hyperparameters with Optuna (one worker, SQLite).

Run it with ``python docs/tutorials/tuning.py``. The tests set
``MAPOGRAPH_TUTORIAL_STEPS`` and ``MAPOGRAPH_TUTORIAL_TRIALS`` to tiny values.
Set ``MAPOGRAPH_TUTORIAL_POSTGRES=postgresql://user@host:5432/db`` to also run
the two-worker study on a PostgreSQL server.
"""

import os
from pathlib import Path

import optuna

import mapograph as mg

STEPS = int(os.environ.get("MAPOGRAPH_TUTORIAL_STEPS", 20_000))
TRIALS = int(os.environ.get("MAPOGRAPH_TUTORIAL_TRIALS", 20))
POSTGRES = os.environ.get("MAPOGRAPH_TUTORIAL_POSTGRES")

# --8<-- [start:sqlite]
study = mg.tune.optimize(
    "coordination:chain-6",
    n_trials=TRIALS,
    steps=STEPS,  # env steps per trial
    space="partition",  # partitioner, its width / k, edge threshold, temperature, ...
    out_dir="runs/tutorial4",  # study.db (SQLite), best.yaml and the plots go here
    study_name="tutorial",
    eval_episodes=16,
)
finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
print(f"{len(finished)} complete trials; best value {study.best_value:.3f}")
print("best parameters:", study.best_params)
print(sorted(p.name for p in Path("runs/tutorial4").iterdir()))
# --8<-- [end:sqlite]

# --8<-- [start:best]
best = mg.TrainConfig.from_yaml("runs/tutorial4/best.yaml")
print("best.yaml:", best.partition, best.k, best.max_batch_size, best.edge_threshold)
env = mg.envs.make("coordination:chain-6", num_envs=16, seed=1)
trainer = mg.Trainer(env, best.replace(total_steps=STEPS, seed=1))
trainer.train()
print("retrained on seed 1:", trainer.evaluate(32)["return_mean"])
env.close()
# --8<-- [end:best]

# --8<-- [start:reopen]
# The study lives in the SQLite file: reopen it later, from any process.
again = optuna.load_study(study_name="tutorial", storage="sqlite:///runs/tutorial4/study.db")
print(again.trials_dataframe(attrs=("number", "value", "state"))[:5])
# A second call with the same out_dir and study_name continues the study.
# --8<-- [end:reopen]


# --8<-- [start:space]
def my_space(trial):
    """A search space of your own: a dict of TrainConfig fields."""
    return {
        "algo": "b2mapo",
        "partition": trial.suggest_categorical("partition", ["bounded", "k_batches"]),
        "k": trial.suggest_int("k", 2, 4),
        "max_batch_size": trial.suggest_int("max_batch_size", 2, 4),
    }


mine = mg.tune.optimize(
    "coordination:chain-6",
    n_trials=TRIALS,
    steps=STEPS,
    space=my_space,
    out_dir="runs/tutorial4-mine",
    plots=False,
    eval_episodes=16,
)
print("my space, best:", mine.best_params)
# --8<-- [end:space]

if POSTGRES:
    # --8<-- [start:postgres]
    # Many workers on one study: a PostgreSQL storage (pip install "mapograph[postgres]").
    # workers=2 starts two processes here; other machines join with the same URL and name.
    shared = mg.tune.optimize(
        "coordination:chain-6",
        n_trials=2 * TRIALS,
        steps=STEPS,
        storage=POSTGRES,
        study_name="tutorial-shared",
        workers=2,
        out_dir="runs/tutorial4-pg",
    )
    print("shared study:", len(shared.trials), "trials; best", shared.best_params)
    # --8<-- [end:postgres]
