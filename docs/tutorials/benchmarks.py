"""Tutorial 7: reproduce the benchmark tables and regenerate the benchmark page.

Run it from the repository root with ``python docs/tutorials/benchmarks.py``.
By default it runs every benchmark with a small budget that fits a laptop in a few
minutes and writes the page to ``runs/tutorial7/report/``; the tests set
``MAPOGRAPH_TUTORIAL_STEPS=1024`` for a run of seconds. The full budgets of the
published tables are the scripts' defaults (see the page).
"""

import os
import runpy
import sys
from pathlib import Path

STEPS = int(os.environ.get("MAPOGRAPH_TUTORIAL_STEPS", 20_000))
TINY = STEPS <= 4096

# --8<-- [start:run]
BENCH = Path(__file__).resolve().parents[2] / "benchmarks"  # the repository's benchmarks/
RESULTS = Path("runs/tutorial7/results")


def run(script, *args):
    """Same as ``python benchmarks/<script> <args>`` from the repository root."""
    sys.path.insert(0, str(BENCH))
    argv, sys.argv = sys.argv, [f"benchmarks/{script}", *map(str, args)]
    try:
        runpy.run_path(str(BENCH / script), run_name="__main__")
    finally:
        sys.argv = argv
        sys.path.remove(str(BENCH))


run(
    "returns.py",
    "--tasks",
    "coordination:chain-4",
    "--algos",
    "mappo",
    "b2mapo",
    "--seeds",
    2,
    "--steps",
    STEPS,
    "--out",
    RESULTS / "returns",
)
run(
    "training_time.py",
    "--agents",
    3,
    5,
    "--repeats",
    1 if TINY else 3,
    "--out",
    RESULTS / "training_time.json",
)
run(
    "latency.py",
    "--agents",
    3,
    10,
    "--repeats",
    5 if TINY else 100,
    "--out",
    RESULTS / "latency.json",
)
run(
    "partition.py",
    "--sizes",
    10,
    100,
    "--repeats",
    1 if TINY else 3,
    "--generator-sizes",
    10,
    "--out",
    RESULTS / "partition.json",
)
run(
    "tune_study.py",
    "--env",
    "coordination:chain-4",
    "--trials",
    2 if TINY else 10,
    "--steps",
    STEPS,
    "--seeds",
    2,
    "--out",
    RESULTS / "tune",
)
# --8<-- [end:run]

# --8<-- [start:report]
run("report.py", "--results", RESULTS, "--page", "runs/tutorial7/report/benchmarks.md")
page = Path("runs/tutorial7/report/benchmarks.md").read_text()
print(page[page.index("<!-- report:latency -->") :][:900])
print(sorted(p.name for p in Path("runs/tutorial7/report/img").iterdir()))
# --8<-- [end:report]
