"""Tutorial 6: continuous control on Multi-Agent MuJoCo with a recurrent policy.

Needs the ``mamujoco`` extra (``pip install "mapograph[mamujoco]"``: gymnasium-robotics
and mujoco). Run it with ``python docs/tutorials/mamujoco.py``; the tests set
``MAPOGRAPH_TUTORIAL_STEPS`` to a tiny budget (and skip it where the extra is missing).
"""

import os

import mapograph as mg

STEPS = int(os.environ.get("MAPOGRAPH_TUTORIAL_STEPS", 300_000))
TINY = STEPS <= 4096

if __name__ == "__main__":  # the copies run in worker processes (spawn): keep the guard
    # --8<-- [start:env]
    # HalfCheetah's 6 joints split between 2 agents of 3 joints; each agent sees its
    # own joints and their neighbours one hop away (agent_obsk=1).
    env = mg.envs.make(
        "mamujoco:HalfCheetah-2x3",
        num_envs=2 if TINY else 8,
        seed=0,
        agent_obsk=1,
        episode_limit=50 if TINY else 1000,
    )
    print(env.spec)
    ts = env.reset()
    print("obs", tuple(ts.obs.shape), "state", tuple(ts.state.shape))
    # --8<-- [end:env]

    # --8<-- [start:train]
    cfg = mg.TrainConfig(
        algo="b2mapo",
        total_steps=256 if TINY else STEPS,
        seed=0,
        recurrent=True,  # GRU actors (pi_seq and pi_ind) and critic
        chunk_length=16,  # backpropagation through time over chunks of 16 steps
        rollout_length=64 if TINY else 256,
        lr=3e-4,
        critic_lr=3e-4,
    )
    trainer = mg.Trainer(env, cfg)
    result = trainer.train()
    for row in result.history[-3:]:
        print(f"step {row['step']:>8}  return {row['return_mean']:8.2f}  batches {row['batches']}")
    # --8<-- [end:train]

    # --8<-- [start:act]
    ts = env.reset()
    actions = trainer.act(ts, deterministic=True)  # float [E, N, max joints per agent]
    print("actions", tuple(actions.shape), actions.dtype)
    print("evaluation of pi_ind:", trainer.evaluate(episodes=2))
    env.close()
    # --8<-- [end:act]
