"""Everything that talks to MLflow tracking: where, which run, what is logged.

Other modules compute; this one records. The promotion rule lives in `rakuten.promote`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import socket
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import mlflow
import psutil
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from rakuten import PROJECT_ROOT
from rakuten.features.pretrained import requirements_of
from rakuten.pyfunc import TEXT_SIGNATURE

# What a logged text model needs at load time; pinned to the versions it was trained with.
MODEL_REQUIREMENTS = (
    "mlflow", "scikit-learn", "imbalanced-learn", "pandas", "numpy", "scipy", "joblib",
    "cloudpickle", "stop-words", "simplemma", "nltk",
)
IMAGE_REQUIREMENTS = MODEL_REQUIREMENTS + ("tensorflow-cpu", "keras", "pillow")
PICTURE_REQUIREMENTS = MODEL_REQUIREMENTS + ("scikit-image", "pillow")

log = logging.getLogger("rakuten.track")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used."""


# scheme://user:password@host: the password never reaches a message, a log line, a param or a tag
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it masked."""
    return _CREDENTIALS.sub(r"\g<head>:***@", str(text))


def resolve_tracking_uri(configured: str | None) -> str:
    """An explicit `mlflow.tracking_uri` wins, then `MLFLOW_TRACKING_URI`, then the project's
    `sqlite:///<repo>/mlflow.db`. Relative SQLite paths are made absolute."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, None for other stores."""
    return Path(uri[len("sqlite:///"):].split("?")[0]) if uri.startswith("sqlite:///") else None


def connect(configured_uri: str | None, experiment: str, retry_seconds: float = 120) -> str:
    """Point MLflow at the store and experiment, ready for many concurrent jobs.

    Fails within seconds when the server does not answer or the SQLite file cannot be written;
    once connected, HTTP calls are retried with backoff for about `retry_seconds`. A new SQLite
    store is created (and migrated) under a file lock beside it: MLflow corrupts a store that
    several processes create at once. Runs that this machine's dead processes left RUNNING are
    ended FAILED.
    """
    uri = resolve_tracking_uri(configured_uri)
    if uri.startswith(("http://", "https://")):
        retry_http_for(retry_seconds)
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as error:
            raise TrackingError(redact(f"MLflow tracking server {uri} is unreachable: {error}")) from error
    database = sqlite_path(uri)
    if database is not None:
        check_writable(database)
    mlflow.set_tracking_uri(uri)
    try:
        with _store_lock(database):
            MlflowClient().search_experiments(max_results=1)  # creates and migrates a new store
            experiment_id = _launch_experiment(experiment)  # under `mlflow run`: its run already has one
            if experiment_id is None:
                experiment_id = mlflow.set_experiment(experiment_id=ensure_experiment(experiment, database)).experiment_id
            _set_runs_view(experiment_id)
        repaired = end_orphaned_runs([experiment_id])
        if repaired:
            log.warning("ended FAILED %d runs left RUNNING by processes that are gone: %s", len(repaired), repaired)
    except TrackingError:
        raise
    except Exception as error:  # the store answers with many exception types
        raise TrackingError(redact(f"cannot use experiment {experiment!r} at {uri}: {one_line(error)}")) from error
    return uri


# What the MLflow UI (3.17) shows for the experiment: the runs table of classic model development,
# best weighted F1 first, with the columns people compare (a shared view, `rakuten.ui` links to it)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
RUNS_VIEW_KEY = "rakuten-runs"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
RUNS_VIEW = {
    "orderByKey": "metrics.`test_f1_weighted`", "orderByAsc": False,
    "selectedColumns": ["attributes.`Dataset`"] + [f"metrics.`{m}`" for m in ("test_f1_weighted", "fit_seconds")]
    + [f"params.`{p}`" for p in ("model.C", "model.alpha", "model.name", "resampler.name")],
}


_launcher_run: str | None = None  # a `mlflow run` launch left in Default: the job logs elsewhere


def _launch_experiment(experiment: str) -> str | None:
    """Under `mlflow run`, the experiment of the run it made for this job, which the job logs into;
    None otherwise. A launch in MLflow's `Default` experiment (`mlflow run .` with no
    `--experiment-name`) is not where users look: the job then logs into `experiment` and the
    launch's run points at the job's run (`_point_launch_at`)."""
    global _launcher_run
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return None
    launched_in = MlflowClient().get_run(run_id).info.experiment_id
    if launched_in == "0" and experiment != "Default":
        _launcher_run = run_id
        del os.environ["MLFLOW_RUN_ID"]  # else MLflow's start_run resumes it, whatever the experiment
        return None
    return launched_in


def _point_launch_at(job_run) -> None:
    """The `mlflow run` launch's run says where its job's run is (tag and note)."""
    experiment = experiment_name(job_run.info.experiment_id)
    MlflowClient().set_tag(_launcher_run, "rakuten.job_run", f"{experiment}/{job_run.info.run_id}")
    MlflowClient().set_tag(_launcher_run, "mlflow.note.content",
                           f"This launch's job logged its run in experiment `{experiment}`: {job_run.info.run_id}")
    for key, value in process_tags().items():  # alive while the job is: `end_orphaned_runs` checks them
        MlflowClient().set_tag(_launcher_run, key, value)


def _set_runs_view(experiment_id: str) -> None:
    """Tag the experiment with the runs-table view, unless it has it. Jobs that start together on a
    server race to insert the same tag (PostgreSQL answers all but one with a unique-key error):
    the tag being there afterwards is what counts."""
    client, value = MlflowClient(), json.dumps(RUNS_VIEW)
    if client.get_experiment(experiment_id).tags.get(RUNS_VIEW_TAG) == value:
        return
    try:
        client.set_experiment_tag(experiment_id, RUNS_VIEW_TAG, value)
    except MlflowException:
        if client.get_experiment(experiment_id).tags.get(RUNS_VIEW_TAG) != value:
            raise


def ensure_experiment(name: str, database: Path | None = None) -> str:
    """The id of experiment `name`, created if needed, tagged as custom model development. On a
    SQLite store its artifacts go beside the database (`<folder>/mlruns/<name>`), not into
    whatever folder the first job happened to start in."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if database is not None:
        location = (database.parent / "mlruns" / re.sub(r"[^\w.-]", "_", name)).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def check_writable(database: Path) -> None:
    """Refuse at once a SQLite store that cannot be written (MLflow would retry for minutes)."""
    if not database.parent.is_dir():
        raise TrackingError(f"folder of the tracking database does not exist: {database.parent}")
    try:
        if database.exists():
            open(database, "r+b").close()
        with tempfile.TemporaryFile(dir=database.parent):  # SQLite writes its journal beside the file
            pass
    except OSError as error:
        raise TrackingError(f"the tracking store {database} is not writable ({error.strerror}): "
                            "fix its permissions or set mlflow.tracking_uri") from error


def _store_lock(database: Path | None):
    if database is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(f"{database}.lock", timeout=300)


def retry_http_for(seconds: float, timeout: int = 30) -> None:
    """MLflow's HTTP retries (urllib3, backoff 0, 2, 4, 8 ... s) spread over about `seconds`, each
    request waiting at most `timeout` s. Variables the user set win."""
    retries = next((n for n in range(1, 11) if 2 ** n - 2 >= seconds), 10)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))


@contextlib.contextmanager
def _quick_http():
    """Few, short HTTP retries: ending a run after a failure must not wait minutes for a dead store."""
    saved = {key: os.environ.get(key) for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def is_outage(error: BaseException) -> bool:
    """The store did not answer (after MLflow's retries), as opposed to answering with an error; a
    server killed in the middle of a reply breaks the connection (`IncompleteRead`)."""
    text = str(error)
    return isinstance(error, requests.ConnectionError) or any(
        marker in text for marker in ("Max retries exceeded", "Connection refused", "Read timed out",
                                      "Connection broken", "Connection aborted", "RemoteDisconnected"))


def describe(error: BaseException) -> str:
    """One line for the user: an outage during a run is said as such, anything else is the error's
    message (ours already say what to fix)."""
    if is_outage(error) and not isinstance(error, TrackingError):
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
        return (f"the tracking store {redact(mlflow.get_tracking_uri())} stopped answering and still did not "
                f"after {retries} retries (raise mlflow.retry_seconds to wait longer); the run is ended FAILED "
                "once it answers again, by the next job or `python -m rakuten.runs --repair`")
    return one_line(error)


_verbose = True  # library use: MLflow prints as it always does; the commands turn it down


def set_console(verbose: bool) -> None:
    """The commands' console: without `verbose`, MLflow's own chatter (INFO lines, download bars,
    registry and run-link prints, each HTTP retry) is kept out, so what the project says shows."""
    global _verbose
    _verbose = verbose
    if not verbose:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def muted():
    """MLflow's prints (not its log records) silenced, unless verbose."""
    if _verbose:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def tracking_uri() -> str:
    return mlflow.get_tracking_uri()


def run_info(run_id: str):
    return MlflowClient().get_run(run_id).info


def experiment_name(experiment_id: str) -> str:
    return MlflowClient().get_experiment(experiment_id).name


def one_line(error: BaseException, limit: int = 500) -> str:
    """An error's message on one line, cut at `limit` characters, passwords masked."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return redact(text if len(text) <= limit else text[:limit] + " ...")


# --- runs -----------------------------------------------------------------------------------------
# Which process owns a run: how `end_orphaned_runs` tells a live job from one that died.
HOST_TAG, PID_TAG, PID_STARTED_TAG = "rakuten.host", "rakuten.pid", "rakuten.pid_started"
ENDED_BY_TAG = "rakuten.ended_by"
_open_runs: list[str] = []  # runs this process started and has not ended, outermost first


def process_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            PID_STARTED_TAG: f"{psutil.Process().create_time():.3f}"}


@contextlib.contextmanager
def run(run_name: str, tags: dict[str, str], nested_in_env_run: bool = False):
    """One MLflow run, ended FINISHED, FAILED, or KILLED (Ctrl-C), never left RUNNING.

    Under `mlflow run`, MLFLOW_RUN_ID names the run it created: a single job logs into it, and
    with `nested_in_env_run` (a Hydra multirun) each job is a child of it; unless that run was left
    in `Default` (see `_launch_experiment`).
    """
    env_run_id = os.environ.get("MLFLOW_RUN_ID")
    owned = {**tags, **process_tags()}
    opened = []
    try:
        if env_run_id and nested_in_env_run:
            opened.append(mlflow.start_run(run_id=env_run_id))
            opened.append(mlflow.start_run(run_name=run_name, nested=True, tags=owned))
        elif env_run_id:
            opened.append(mlflow.start_run(run_id=env_run_id))
            mlflow.set_tags({"mlflow.runName": run_name, **owned})
        else:
            opened.append(mlflow.start_run(run_name=run_name, tags=owned))
            if _launcher_run is not None:
                _point_launch_at(opened[-1])
        _open_runs.extend(r.info.run_id for r in opened)
        yield opened[-1]
    except BaseException as error:
        _end(opened, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED", quick=True)
        raise
    else:
        _end(opened, "FINISHED")


def _end(opened: list, status: str, quick: bool = False) -> None:
    for active in reversed(opened):
        run_id = active.info.run_id
        try:
            with _quick_http() if quick else contextlib.nullcontext(), muted():
                mlflow.end_run(status)
        except Exception as error:
            if not quick:
                raise
            log.warning("run %s is left RUNNING: the store did not answer (%s)", run_id,
                        "no connection" if is_outage(error) else one_line(error, 200))
        finally:
            if run_id in _open_runs:
                _open_runs.remove(run_id)


def end_open_runs(status: str) -> list[str]:
    """End every run this process has open (from any thread): what a kill does before exiting."""
    ended = []
    with _quick_http():
        for run_id in reversed(list(_open_runs)):
            try:
                MlflowClient().set_tag(run_id, ENDED_BY_TAG, status.lower())
                MlflowClient().set_terminated(run_id, status)
                ended.append(run_id)
            except Exception as error:  # noqa: BLE001 - a kill goes on whatever the store says
                log.warning("could not end run %s %s: %s", run_id, status, one_line(error))
    _open_runs.clear()
    return ended


STALE_LAUNCH_MINUTES = 10.0  # a run `mlflow run` made whose job has not begun after this long is orphaned


def end_orphaned_runs(experiment_ids: list[str] | None = None,
                      stale_launch_minutes: float | None = STALE_LAUNCH_MINUTES) -> list[str]:
    """End FAILED the RUNNING runs (of these experiments; None: all) whose process, on this
    machine, is gone: killed with -9, crashed, or stopped by a store outage that outlasted the
    retries. Also those that `mlflow run` created but whose job never began (no process tags; the
    environment could not be made, say) after `stale_launch_minutes` (None: left alone). Runs of
    other machines are left alone (their processes cannot be seen from here). Returns the ids ended."""
    found = mlflow.search_runs(
        experiment_ids=experiment_ids, search_all_experiments=experiment_ids is None,
        filter_string="attributes.status = 'RUNNING'", output_format="list",
    )
    client, ended = MlflowClient(), []
    for found_run in found:
        tags = found_run.data.tags
        if found_run.info.run_id in (os.environ.get("MLFLOW_RUN_ID"), _launcher_run):  # this job's `mlflow run` run
            continue
        why = _orphaned(tags, found_run.info.start_time, stale_launch_minutes)
        if why:
            client.set_tag(found_run.info.run_id, ENDED_BY_TAG, f"repair: {why}")
            client.set_terminated(found_run.info.run_id, "FAILED")
            ended.append(found_run.info.run_id)
    return ended


def _orphaned(tags: dict, start_time_ms: int, stale_launch_minutes: float | None) -> str:
    """Why a RUNNING run is orphaned, '' when it is not (or cannot be told from here)."""
    if PID_TAG in tags:
        if tags.get(HOST_TAG) != socket.gethostname() or _process_alive(tags.get(PID_TAG), tags.get(PID_STARTED_TAG)):
            return ""
        return f"process {tags.get(PID_TAG)} on {tags.get(HOST_TAG)} is gone"
    if stale_launch_minutes is None or tags.get("mlflow.source.type") != "PROJECT":
        return ""
    import time

    age_minutes = (time.time() * 1000 - start_time_ms) / 60_000
    if age_minutes < stale_launch_minutes:
        return ""
    return f"`mlflow run` started it {age_minutes:.0f} min ago and its job never began"


def _process_alive(pid: str | None, started: str | None) -> bool:
    try:
        process = psutil.Process(int(pid))
        return started is None or abs(process.create_time() - float(started)) < 1.0
    except (TypeError, ValueError, psutil.Error):
        return False


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def log_config(cfg: DictConfig) -> None:
    """The params a person compares (`comparable_params`) and the whole resolved config as the
    artifact `config.yaml`."""
    mlflow.log_params({key: redact(value)[:6000] for key, value in comparable_params(cfg).items()})
    mlflow.log_text(redact(OmegaConf.to_yaml(cfg, resolve=True)), "config.yaml")


def dataset_name(data_dir: str) -> str:
    """What the runs table calls a data folder: `rakuten-sample` (the bundled sample), `rakuten-full`
    (the shared challenge data), else `rakuten-<folder name>`."""
    folder = Path(data_dir).resolve()
    if folder == (PROJECT_ROOT / "data" / "sample").resolve():
        return "rakuten-sample"
    if folder.parts[-3:] == ("shared", "data", "rakuten"):
        return "rakuten-full"
    return f"rakuten-{folder.name}"


def log_datasets(parts, data_dir: str) -> str:
    """The run's training and test rows as MLflow datasets (the runs table's Dataset column and
    filter): named by `dataset_name`, digest the split's `data_fingerprint`, source the folder."""
    import time
    import warnings

    import mlflow.data

    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")  # ids: never null
    name = dataset_name(data_dir)
    for context, rows, labels in (("training", parts.X_train, parts.y_train), ("test", parts.X_test, parts.y_test)):
        frame = rows.assign(prdtypecode=labels.to_numpy())
        with muted():
            dataset = mlflow.data.from_pandas(frame, source=redact(str(data_dir)), targets="prdtypecode", name=name,
                                              digest=parts.fingerprint)
        for attempt in range(5):  # jobs starting together on a server race to insert the same dataset
            try:
                mlflow.log_input(dataset, context=context)
                break
            except MlflowException as error:
                if attempt == 4 or "unique" not in str(error).lower():
                    raise
                time.sleep(0.2 * (attempt + 1))
    return name


def comparable_params(cfg: DictConfig) -> dict[str, str]:
    """What tells runs apart, in the groups that apply to the run's modality: the model, its
    estimator's class (short) and own hyperparameters (`model.C`), the resampler and its settings,
    the features and their key settings, the search, the data and the seed."""
    config = OmegaConf.to_container(cfg, resolve=True)
    model, data = config["model"], config["data"]
    params = {"model.name": model["name"], "modality": model["modality"], "seed": config["seed"],
              "data.dir": data["dir"], "data.max_rows": data.get("max_rows"), "data.test_size": data["test_size"]}
    if model["modality"] == "text":
        params.update(_text_params(model, config))
    elif model["modality"] == "image":
        params.update(_image_params(model, config))
    else:
        params.update({"model.method": model["method"], "model.text": model["text"]["name"],
                       "model.image": model["image"]["name"], **_text_params(model["text"], config, "model.text."),
                       **_image_params(model["image"], config, "model.image.")})
    search = config.get("search") or {}
    params["search.name"] = search.get("name", "none")
    if params["search.name"] != "none":
        params.update({f"search.{k}": v for k, v in search.items()
                       if k in ("cv", "n_iter", "n_trials", "grid_points", "study_name", "storage")})
    return {key: json.dumps(value) if isinstance(value, (list, dict)) else str(value) for key, value in params.items()}


def _own_settings(spec: dict, prefix: str) -> dict:
    """A `_target_` block's own arguments (its class and seed aside)."""
    return {f"{prefix}{k}": v for k, v in spec.items() if k not in ("_target_", "random_state")}


def _text_params(model: dict, config: dict, prefix: str = "model.") -> dict:
    estimator = model["estimator"]
    params = {f"{prefix}class": estimator["_target_"].rsplit(".", 1)[-1], **_own_settings(estimator, prefix),
              f"{prefix}calibrate": model.get("calibrate", False), f"{prefix}max_features": model.get("max_features")}
    if "calibration_ensemble" in model:
        params[f"{prefix}calibration_ensemble"] = model["calibration_ensemble"]
    params["refit"] = config.get("refit", "none")
    if (config.get("cv") or {}).get("folds"):
        params["cv.folds"] = config["cv"]["folds"]
    resampler = config["resampler"]
    params["resampler.name"] = resampler["name"]
    params.update(_own_settings(resampler.get("sampler") or {}, "resampler."))
    features = config["features"]
    params.update({"features.name": features.get("name", "custom"),
                   "features.vectorizers": ",".join(features["vectorizers"]),
                   "features.normalizer": (features.get("cleaning") or {}).get("normalizer")})
    return params


def _image_params(model: dict, config: dict, prefix: str = "model.") -> dict:
    if model.get("descriptors"):  # a scikit-learn model over picture descriptors
        estimator = model["estimator"]
        return {f"{prefix}class": estimator["_target_"].rsplit(".", 1)[-1], **_own_settings(estimator, prefix),
                **_own_settings(model["descriptors"], f"{prefix}descriptors."), "refit": config.get("refit", "none")}
    keys = ("image_size", "grayscale", "epochs", "batch_size", "learning_rate", "patience", "weights", "schedule",
            "label_smoothing", "monitor")
    params = {f"{prefix}{k}": model[k] for k in keys if k in model}
    params[f"{prefix}class"] = model["network"]["_target_"].rsplit(".", 1)[-1].removeprefix("build_")
    params.update(_own_settings(model["network"], prefix))
    params["augment.name"] = (model.get("augment") or config["augment"])["name"]
    return params


def readable(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics as people read them in the runs table: seconds to 2 decimals, the rest (scores,
    rates, counts) to 4. The full values stay in `classification_report.json`."""
    return {key: round(float(value), 2 if "seconds" in key else 4) for key, value in metrics.items()}


def log_evaluation(metrics: dict[str, float], report_dict: dict, report_text: str, figures: dict) -> None:
    """Metrics (`readable`), `classification_report.json` / `.txt`, and each figure as `<name>.png`."""
    mlflow.log_metrics(readable(metrics))
    mlflow.log_dict(report_dict, "classification_report.json")
    mlflow.log_text(report_text, "classification_report.txt")
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"{name}.png")
        plt.close(figure)


def log_text_model(pipeline, input_example):
    """Log the fitted pipeline as the run's model `model`, a pyfunc over raw product rows."""
    return _log_pyfunc({"pipeline": pipeline}, {}, TEXT_SIGNATURE, input_example,
                       MODEL_REQUIREMENTS + requirements_of(pipeline))


def _log_pyfunc(joblib_artifacts: dict, file_artifacts: dict, signature, input_example, packages):
    """Log `rakuten/pyfunc.py` (models-from-code) as the run's model `model`, with the rakuten
    package as its code and these artifacts: objects saved with joblib, and files written by
    `file_artifacts[name](path)`."""
    with tempfile.TemporaryDirectory() as folder:
        artifacts = {}
        for name, value in joblib_artifacts.items():
            artifacts[name] = str(Path(folder) / f"{name}.joblib")
            joblib.dump(value, artifacts[name])
        for name, (file_name, write) in file_artifacts.items():
            artifacts[name] = str(Path(folder) / file_name)
            write(artifacts[name])
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).parent / "pyfunc.py"),
            artifacts=artifacts,
            code_paths=[str(Path(__file__).parent)],
            signature=signature,
            input_example=input_example,
            pip_requirements=requirements(packages),
        )


def requirements(packages=MODEL_REQUIREMENTS) -> list[str]:
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def set_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)


def log_files_to_run(run_id: str, paths, artifact_path: str) -> None:
    """Add files to a run after the fact (explanations of a finished run's model)."""
    client = mlflow.MlflowClient()
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)


def log_candidate(candidate, kind: str) -> None:
    """One search candidate as a child run of the active run: its params and CV score."""
    tags = {"search": kind, **process_tags()}  # a kill mid-candidate: `end_orphaned_runs` ends it
    with mlflow.start_run(run_name=f"{kind}-{candidate.number}", nested=True, tags=tags):
        mlflow.log_params({key: str(value) for key, value in candidate.params.items()})
        mlflow.log_metrics(readable({"cv_f1_weighted": candidate.cv_score, "cv_f1_weighted_std": candidate.cv_std,
                                     "fit_seconds": candidate.fit_seconds}))


def log_search_result(result) -> None:
    """The best params and CV score; for a shared Optuna study, those of the whole study so far
    (other workers' trials included), its size and name."""
    mlflow.log_params({f"best.{key}": str(value) for key, value in result.best_params.items()})
    mlflow.log_metrics(readable({"best_cv_f1_weighted": result.best_score, "search_candidates": len(result.candidates)}))
    if result.study:
        mlflow.log_metrics({"study_trials": result.study["trials"], "study_best_trial": result.study["best_trial"]})
        mlflow.set_tag("optuna_study", result.study["name"])


def log_epoch(metrics: dict[str, float], step: int) -> None:
    mlflow.log_metrics(readable({f"epoch_{key}": value for key, value in metrics.items()}), step=step)


def log_picture_model(pipeline, input_example):
    """Log a scikit-learn pipeline over pictures as the run's model `model` (`image_path` rows)."""
    from rakuten.pyfunc import IMAGE_SIGNATURE

    return _log_pyfunc({"picture_pipeline": pipeline}, {}, IMAGE_SIGNATURE, input_example,
                       PICTURE_REQUIREMENTS + requirements_of(pipeline))


def log_fusion_model(fused: dict, input_example, signature):
    """Log a fusion whose parts are all scikit-learn pipelines (saved together with joblib)."""
    extra = requirements_of(fused["text_pipeline"]) + requirements_of(fused["picture_pipeline"])
    return _log_pyfunc({"fusion": fused}, {}, signature, input_example, PICTURE_REQUIREMENTS + extra)


def log_image_model(network, image_config: dict, input_example, signature=None, extra_artifacts=None):
    """Log a Keras network and its image settings (classes included) as the run's model `model`;
    `extra_artifacts` (saved with joblib) make it a fusion model."""
    from rakuten.pyfunc import IMAGE_SIGNATURE

    files = {"keras_model": ("network.keras", network.save),
             "image_config": ("image_config.json", lambda path: Path(path).write_text(json.dumps(image_config)))}
    return _log_pyfunc(extra_artifacts or {}, files, signature or IMAGE_SIGNATURE, input_example,
                       IMAGE_REQUIREMENTS)


def log_summary_run(run_name: str, experiment: str, tags: dict[str, str], metrics: dict[str, float],
                    files: dict[str, str], figures: dict | None = None, dicts: dict[str, dict] | None = None) -> str:
    """A run made of other runs or of the data (a study's table, a report, the EDA): its tags,
    metrics, text files, figures (`<name>.png`) and dicts (`<name>.json`). Returns its id."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name, tags=tags) as active, tempfile.TemporaryDirectory() as folder:
        mlflow.log_metrics(readable(metrics))
        for file_name, text in files.items():
            (Path(folder) / file_name).write_text(text)
        for name, figure in (figures or {}).items():
            mlflow.log_figure(figure, f"{name}.png")
            plt.close(figure)
        for name, content in (dicts or {}).items():
            mlflow.log_dict(content, f"{name}.json")
        if files:
            mlflow.log_artifacts(folder)
        return active.info.run_id


def find_runs(experiment: str, filter_string: str = ""):
    """The runs of `experiment` matching `filter_string`, as a DataFrame (MLflow's search)."""
    return mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string)


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(readable(metrics))
