"""What a sweep prints when it ends: its jobs, best weighted F1 first (a Hydra callback).

Wired in `conf/config.yaml` (`hydra.callbacks.summary`); it runs in the launching process, whatever
the launcher, and reads the jobs' runs back from the store by their `rakuten.sweep` tag.
"""

from __future__ import annotations

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SWEEP_TAG = "rakuten.sweep"


class MultirunSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        import mlflow

        from rakuten import tracking

        try:
            mlflow.set_tracking_uri(tracking.resolve_tracking_uri(config.mlflow.tracking_uri))
            found = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                       filter_string=f"tags.`{SWEEP_TAG}` = '{config.hydra.sweep.dir}'")
        except Exception as error:  # a summary never fails the sweep
            print(f"(no sweep summary: {tracking.one_line(error, 200)})")
            return
        print(table(found))
        study = config.get("study") or {}
        if study.get("name"):
            from rakuten import study as studies

            try:
                print(f"study {study.name}, by cross-validated weighted F1:")
                print(studies.markdown(studies.log_summary(study.name, config.mlflow.experiment, found)), end="")
            except Exception as error:  # noqa: BLE001 - the jobs' runs are logged; the table can be redone
                print(f"(no study summary: {tracking.one_line(error, 200)})")


def table(found: list) -> str:
    """Runs as a table, best test weighted F1 first; runs without it (failed) last."""
    def score(run) -> float:
        return run.data.metrics.get("test_f1_weighted", float("-inf"))

    lines = [f"{'test_f1_weighted':>16}  {'fit_s':>6}  {'status':8}  {'run':8}  name"]
    for run in sorted(found, key=score, reverse=True):
        f1 = run.data.metrics.get("test_f1_weighted")
        lines.append(f"{f1 if f1 is not None else float('nan'):>16.4f}  "
                     f"{run.data.metrics.get('fit_seconds', float('nan')):>6.1f}  {run.info.status:8}  "
                     f"{run.info.run_id[:8]}  {run.info.run_name}")
    return f"sweep of {len(found)} jobs:\n" + "\n".join(lines)
