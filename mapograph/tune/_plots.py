"""Study plots as PNG (matplotlib) and, when plotly is installed, HTML."""

from __future__ import annotations

from pathlib import Path

import optuna


def save_plots(study: optuna.Study, out_dir: str | Path) -> list[Path]:
    """Optimization history, parameter importances and (multi-objective) Pareto front.

    Returns the files written. A plot that needs more completed trials than the
    study has is skipped.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    multi = len(study.directions) > 1
    plots = []
    if multi:
        plots.append(
            (
                "pareto_front",
                lambda m: m.plot_pareto_front(study, target_names=["return", "update s/iter"]),
            )
        )
        target = {"target": lambda t: t.values[0], "target_name": "return"}
    else:
        target = {}
    plots.append(("optimization_history", lambda m: m.plot_optimization_history(study, **target)))
    if len(complete) >= 2:
        plots.append(("param_importances", lambda m: m.plot_param_importances(study, **target)))
    for name, make_plot in plots:
        open_before = set(plt.get_fignums())  # the caller's figures stay open
        try:
            make_plot(ovm)
            fig = plt.gcf()
            fig.set_size_inches(7, 4.5)
            fig.tight_layout()
            path = out / f"{name}.png"
            fig.savefig(path, dpi=110)
            written.append(path)
        except (ValueError, RuntimeError, ZeroDivisionError):
            pass
        finally:
            for number in set(plt.get_fignums()) - open_before:
                plt.close(number)
        try:
            import plotly  # noqa: F401
            from optuna import visualization as ov

            figure = make_plot(ov)
            path = out / f"{name}.html"
            figure.write_html(str(path))
            written.append(path)
        except (ImportError, ValueError, RuntimeError, ZeroDivisionError):
            pass
    return written
