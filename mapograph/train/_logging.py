"""Run logging: CSV always, TensorBoard when installed, a progress bar on a terminal."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

SCALAR_TYPES = (int, float)


class RunLogger:
    """Writes one row per iteration.

    Args:
        out_dir: run folder (``progress.csv``, ``tb/``); ``None`` logs nothing to disk.
        total_steps: for the progress bar.
        progress: show a progress bar; ``None``: only when stdout is a terminal.
        tensorboard: also write TensorBoard scalars when ``tensorboard`` imports.
        initial_step: where the bar starts (resume).
        resume_iteration: the iteration training continues from: rows of ``progress.csv``
            logged after it (by a run killed after its last checkpoint) are dropped, and
            TensorBoard events after ``initial_step`` are purged, so nothing is logged twice.
    """

    def __init__(
        self,
        out_dir: str | Path | None,
        total_steps: int,
        progress: bool | None = None,
        tensorboard: bool = True,
        initial_step: int = 0,
        resume_iteration: int = 0,
    ) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self._csv_fields: list[str] | None = None
        self._writer = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            csv_path = self.out_dir / "progress.csv"
            if csv_path.exists() and csv_path.stat().st_size > 0:
                self._csv_fields = truncate_progress(csv_path, resume_iteration)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._writer = SummaryWriter(
                        str(self.out_dir / "tb"), purge_step=initial_step + 1
                    )
                except ImportError:  # pragma: no cover - tensorboard is a core dependency
                    self._writer = None
        show = sys.stdout.isatty() if progress is None else progress
        self._bar = None
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True
            )

    def log(self, row: dict[str, Any]) -> None:
        """Record one iteration's row: scalars go to CSV and TensorBoard, the batches to
        the CSV as JSON text. A key that appears later (an evaluation every k iterations,
        a distillation every k) widens the CSV's header; earlier rows leave it empty."""
        scalars = {k: v for k, v in row.items() if isinstance(v, SCALAR_TYPES)}
        if self.out_dir is not None:
            csv_path = self.out_dir / "progress.csv"
            fields = dict(scalars)
            if "batches" in row:
                fields["batches"] = json.dumps(row["batches"])
            if self._csv_fields is None:
                self._csv_fields = list(fields)
                with csv_path.open("w", newline="") as handle:
                    csv.writer(handle).writerow(self._csv_fields)
            new = [k for k in fields if k not in self._csv_fields]
            if new:
                self._csv_fields = [*self._csv_fields, *new]
                widen_header(csv_path, self._csv_fields)
            with csv_path.open("a", newline="") as handle:
                csv.writer(handle).writerow([fields.get(k, "") for k in self._csv_fields])
        if self._writer is not None:
            for key, value in scalars.items():
                if key != "step" and math.isfinite(float(value)):
                    self._writer.add_scalar(key, value, row.get("step", 0))
        if self._bar is not None:
            self._bar.update(row["step"] - self._bar.n)
            self._bar.set_postfix(
                ret=f"{row.get('return_mean', float('nan')):.3f}",
                sps=f"{row.get('env_steps_per_s', 0.0):.0f}",
                batches=int(row.get("n_batches", 1)),
            )

    def close(self) -> None:
        """Flush and close the writers."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def truncate_progress(csv_path: Path, last_iteration: int) -> list[str] | None:
    """Keep the rows of ``csv_path`` up to ``last_iteration``; returns its header (``None``: empty).

    A run killed after its last checkpoint logged rows that its resume logs again;
    they are dropped here (the file is replaced atomically).
    """
    with csv_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return None
    header, body = rows[0], rows[1:]
    column = header.index("iteration") if "iteration" in header else None

    def keep(row: list[str]) -> bool:
        try:
            return column is not None and float(row[column]) <= last_iteration
        except (IndexError, ValueError):
            return False

    kept = [row for row in body if keep(row)]
    if len(kept) == len(body):
        return header
    if not kept:
        csv_path.unlink()
        return None
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *kept])
    tmp.replace(csv_path)
    return header


def widen_header(csv_path: Path, header: list[str]) -> None:
    """Rewrite ``csv_path`` with ``header`` (its old columns first, in order), the new
    columns empty in the rows already written (the file is replaced atomically)."""
    with csv_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    body = [row + [""] * (len(header) - len(row)) for row in rows[1:]]
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    tmp.replace(csv_path)
