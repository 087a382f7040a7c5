"""Tutorial 2: the learned interdependence graph, its batches, and pictures of both.

Run it with ``python docs/tutorials/graph.py``; the tests set
``MAPOGRAPH_TUTORIAL_STEPS`` to a tiny budget.
"""

import os

import networkx as nx
import torch

import mapograph as mg
from mapograph.viz import plot_interdependence, plot_learning_curves

STEPS = int(os.environ.get("MAPOGRAPH_TUTORIAL_STEPS", 100_000))

# --8<-- [start:train]
env = mg.envs.make("coordination:random-10", num_envs=16, seed=0)
true_dag = env.interdependence()  # the games know their true DAG
print("true edges:", sorted(true_dag.edges))
print("true generations:", mg.partition.generations(true_dag))

trainer = mg.Trainer(env, mg.TrainConfig(algo="b2mapo", total_steps=STEPS, seed=0))
result = trainer.train()
# --8<-- [end:train]

# --8<-- [start:read]
learned = trainer.interdependence()  # networkx.DiGraph, weight = P(edge i -> j)
strongest = sorted(learned.edges(data="weight"), key=lambda e: -e[2])[:8]
for i, j, p in strongest:
    mark = "true" if true_dag.has_edge(i, j) else ("reversed" if true_dag.has_edge(j, i) else "")
    print(f"  {i} -> {j}: p = {p:.2f} {mark}")
print("batches used in the last update:", trainer.batches)

# How well does the skeleton match? Score a pair by p(i -> j) + p(j -> i).
pairs = [(i, j) for i in range(10) for j in range(i + 1, 10)]
score = {(i, j): learned[i][j]["weight"] + learned[j][i]["weight"] for i, j in pairs}
adjacent = {(i, j) for i, j in pairs if true_dag.has_edge(i, j) or true_dag.has_edge(j, i)}
wins = [score[a] > score[b] for a in adjacent for b in set(pairs) - adjacent]
print(
    f"skeleton AUC {sum(wins) / len(wins):.2f} (0.5 = chance, 1.0 = every true pair ranked first)"
)
# --8<-- [end:read]

# --8<-- [start:dag]
# The marginal probabilities form a complete graph with both directions of a
# pair: keep the edges above the trainer's edge_threshold (0.3), most probable
# first, while the graph stays acyclic.
dag = nx.DiGraph()
dag.add_nodes_from(learned.nodes)
for i, j, p in sorted(learned.edges(data="weight"), key=lambda e: -e[2]):
    if p >= 0.3 and not nx.has_path(dag, j, i):
        dag.add_edge(i, j, weight=p)
print("learned DAG:", sorted(dag.edges))
print("its generations:", mg.partition.generations(dag))
# --8<-- [end:dag]

# --8<-- [start:plots]
plot_interdependence(
    learned,
    batches=trainer.batches,
    true_dag=true_dag,
    path="learned_graph.png",
    title="learned graph (dashed: true DAG)",
)
plot_interdependence(
    true_dag,
    batches=mg.partition.generations(true_dag),
    path="true_graph.png",
    title="true DAG and its generations",
)
plot_learning_curves({"b2mapo": result.history}, path="curve.png", reference={"optimum": 10.0})
plot_learning_curves({"b2mapo": result.history}, key="n_batches", path="n_batches.png")
# --8<-- [end:plots]

# --8<-- [start:generator]
# The generator on its own: features [copies, agents, feature_dim] -> a DAG distribution.
torch.manual_seed(0)
generator = mg.graph.DAGGenerator(feature_dim=8, n_agents=5, hidden=32, heads=2)
features = torch.randn(3, 5, 8)
with torch.no_grad():
    dist = generator(features)
    sample = dist.sample()  # one DAG per copy, acyclic by construction
print("edge probabilities of copy 0:\n", dist.edge_probabilities()[0].round(decimals=2))
print("log-probability of the samples:", dist.log_prob(sample))
edge_index = sample.edge_index(0)  # torch [2, E]
as_nx = mg.graph.to_networkx(edge_index, num_nodes=5)
print("sampled DAG:", sorted(as_nx.edges), "generations:", mg.partition.generations(as_nx))
# --8<-- [end:generator]
env.close()
