"""Tutorial 3: the partition algorithms by example.

Run it with ``python docs/tutorials/partitions.py``; the tests set
``MAPOGRAPH_TUTORIAL_STEPS`` to a tiny budget for the training part.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import torch  # noqa: E402

import mapograph as mg  # noqa: E402
from mapograph.viz import plot_interdependence  # noqa: E402

STEPS = int(os.environ.get("MAPOGRAPH_TUTORIAL_STEPS", 20_000))

# --8<-- [start:dag]
# Seven agents: 0 and 1 lead, 2..4 follow them, 5 and 6 follow the followers.
dag = nx.DiGraph()
dag.add_nodes_from(range(7))
dag.add_edges_from([(0, 2), (0, 3), (1, 3), (1, 4), (2, 5), (3, 5), (4, 6)])
# --8<-- [end:dag]

# --8<-- [start:generations]
print(mg.partition.generations(dag))  # [[0, 1], [2, 3, 4], [5, 6]]
# --8<-- [end:generations]
assert mg.partition.generations(dag) == [[0, 1], [2, 3, 4], [5, 6]]

# --8<-- [start:bounded]
print(mg.partition.bounded(dag, max_batch_size=2))  # no batch wider than 2
# --8<-- [end:bounded]
assert max(len(b) for b in mg.partition.bounded(dag, max_batch_size=2)) <= 2

# --8<-- [start:k_batches]
two = mg.partition.k_batches(dag, k=2)  # at most 2 batches
print(two, "edges inside a batch:", mg.partition.inside_weight(dag, two))
nx.set_edge_attributes(dag, 1.0, "weight")
dag[3][5]["weight"] = 5.0  # a strong dependence: keep 3 and 5 apart
heavy = mg.partition.k_batches(dag, k=2)
print(heavy, "weight inside:", mg.partition.inside_weight(dag, heavy))
# --8<-- [end:k_batches]
assert len(two) <= 2

# --8<-- [start:extremes]
print(mg.partition.simultaneous(7))  # MAPPO: [[0, 1, 2, 3, 4, 5, 6]]
print(mg.partition.agent_by_agent([6, 5, 4, 3, 2, 1, 0]))  # HAPPO / A2PO: one agent per batch
gen = torch.Generator().manual_seed(0)
print(mg.partition.random_order(7, gen))  # HAPPO's order
print(mg.partition.semi_greedy_order([0.1, 0.9, 0.3, 0.5, 0.2, 0.8, 0.0], gen))  # A2PO's order
# --8<-- [end:extremes]

# --8<-- [start:edge_index]
edge_index = torch.tensor([[0, 0, 1, 1, 2, 3, 4], [2, 3, 3, 4, 5, 5, 6]])
print(mg.partition.generations(edge_index, num_nodes=7))
# --8<-- [end:edge_index]

# --8<-- [start:errors]
cycle = nx.DiGraph([(0, 1), (1, 2), (2, 0)])
try:
    mg.partition.generations(cycle)
except ValueError as err:
    print("ValueError:", err)
try:
    mg.partition.validate_partition([[0, 2], [1]], n_agents=3, dag=nx.DiGraph([(0, 1), (1, 2)]))
except ValueError as err:
    print("ValueError:", err)
# --8<-- [end:errors]

# --8<-- [start:picture]
partitions = {
    "generations": mg.partition.generations(dag),
    "bounded(2)": mg.partition.bounded(dag, max_batch_size=2),
    "k_batches(2)": mg.partition.k_batches(dag, k=2),
    "agent_by_agent": mg.partition.agent_by_agent(range(7)),
}
fig, axes = plt.subplots(1, 4, figsize=(16, 4.5))
for ax, (name, batches) in zip(axes, partitions.items()):
    plot_interdependence(dag, batches=batches, ax=ax, title=name)
fig.savefig("partitions.png", dpi=80, bbox_inches="tight")
# --8<-- [end:picture]


# --8<-- [start:register]
def topological(dag, **kwargs):
    """One agent per batch in a topological order of the DAG (a toy partitioner)."""
    return [[v] for v in nx.topological_sort(mg.partition.as_dag(dag))]


mg.partition.register_partitioner("topological", topological, overwrite=True)
print(mg.partition.partitioners())
# --8<-- [end:register]

# --8<-- [start:train]
env = mg.envs.make("coordination:tree-7", num_envs=16, seed=0)
for options in (
    dict(partition="generations"),
    dict(partition="bounded", max_batch_size=2),
    dict(partition="k_batches", k=2),
    dict(partition="topological"),
    dict(partition="fixed", fixed_partition=[[0], [1, 2], [3, 4, 5, 6]]),
):
    trainer = mg.Trainer(env, mg.TrainConfig(algo="b2mapo", total_steps=STEPS, seed=0, **options))
    trainer.train()
    print(options, "->", trainer.batches, f"eval {trainer.evaluate(16)['return_mean']:.2f}")
env.close()
# --8<-- [end:train]
