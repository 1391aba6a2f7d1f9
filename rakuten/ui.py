"""`python -m rakuten.ui`: the MLflow UI, opened on the experiment's runs table.

MLflow 3.17 opens an experiment on the view of its `workflowType`, taken from the link's
`?workflowType=` or else from the browser's last choice (stored as `mlflow.workflowType`, "genai" by
default: the traces overview); the experiment tag `mlflow.experimentKind` alone does not decide it.
Links with `workflowType=machine_learning` land on the runs table whatever the browser remembers,
and `viewStateShareKey` opens the shared view that `rakuten.tracking` keeps on each experiment: sorted
by weighted F1, its columns and the key hyperparameters shown. Every link the project prints is so.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import mlflow
import requests

from rakuten import defaults
from rakuten.cli import ExitStatus, command, open_store, store_options
from rakuten.tracking.view import DEFAULT_PORT, experiment_url, ui_base



def newest_dataset(experiment_id: str) -> str | None:
    """The dataset of the experiment's newest finished training run (None: none has one)."""
    found = mlflow.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'",
                               order_by=["attributes.start_time DESC"], max_results=50, output_format="list")
    return next((r.data.tags["dataset"] for r in found if "dataset" in r.data.tags), None)


@command
def main(argv: list[str] | None = None) -> int:
    from rakuten import lifecycle, tracking

    parser = argparse.ArgumentParser(parents=[store_options(verbose=False)], prog="python -m rakuten.ui",
                                     description="Start the MLflow UI on 127.0.0.1 and print the link to the runs.")
    parser.add_argument("--experiment", default=defaults.EXPERIMENT)
    parser.add_argument("--dataset", default=None,
                        help="open on this dataset's runs (rakuten-sample, rakuten-full, rakuten-full-images...; "
                             "default: that of the newest finished run; 'all' for every run)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    uri = open_store(args.tracking_uri)
    experiment = mlflow.MlflowClient().get_experiment_by_name(args.experiment)
    if experiment is None:
        print(f"error: no experiment {args.experiment!r} in {tracking.redact(uri)} yet: train a model first",
              file=sys.stderr)
        return ExitStatus.USER_ERROR
    dataset = None if args.dataset == "all" else args.dataset or newest_dataset(experiment.experiment_id)
    if dataset is not None:
        tracking.set_runs_view(experiment.experiment_id, dataset)
    if uri.startswith(("http://", "https://")):  # a server has its UI already
        print(f"MLflow UI: {experiment_url(ui_base(uri), experiment.experiment_id, dataset)}")
        return 0
    lifecycle.exit_on_sigterm()  # so that the server below is stopped too
    mlflow_cli = os.path.join(os.path.dirname(sys.executable), "mlflow")
    server_log = tempfile.NamedTemporaryFile("w+", prefix="rakuten-ui-", suffix=".log")  # its INFO lines, warnings
    server = subprocess.Popen([mlflow_cli, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(args.port)], start_new_session=True, stdout=server_log,
                              stderr=subprocess.STDOUT,
                              env=defaults.server_environment({**os.environ, "PYTHONWARNINGS": "ignore"}))
    try:
        base = ui_base(uri, args.port)
        for _ in range(240):
            if server.poll() is not None:
                server_log.seek(0)
                tail = [line for line in server_log.read().splitlines() if line.strip()][-1:]
                print(f"error: the MLflow UI server exited {server.returncode}: {' '.join(tail)}", file=sys.stderr)
                return ExitStatus.USER_ERROR
            try:
                if requests.get(f"{base}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        shown = f"the runs of {dataset}" if dataset else "every run"
        print(f"MLflow UI: {experiment_url(base, experiment.experiment_id, dataset)}  ({shown}; Ctrl-C to stop)",
              flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(server)
        server_log.close()


def _stop(server: subprocess.Popen, grace: float = 3) -> None:
    """The UI server and its workers, at once: a viewer holds no state worth a graceful wait."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
