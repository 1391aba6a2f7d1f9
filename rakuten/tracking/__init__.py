"""MLflow tracking's runs, params, metrics and stores, one module per concern: jobs and experiments
log their runs only through the names below. Other modules use MLflow for what is theirs: the
registry (`rakuten.registry`, `rakuten.promote`), loading models (`rakuten.cli`, `rakuten.runs`), a
command reading runs (`rakuten.leaderboard`, `rakuten.ui`, `python -m rakuten.evaluate`).

- `store`: which store, its checks, the experiment made ready (`connect`);
- `runs`: a run opened and always ended, the process that owns it, repair of orphans;
- `params`: what tells runs apart (the params every run logs, beside its recipe's groups: `Recipe.params`), config, datasets;
- `log`: metrics, reports, figures, tags, search candidates, summary runs;
- `view`: the runs table the UI opens on;
- `console`, `http`: secrets masked, chatter muted; HTTP retries and outages.
The promotion rule lives in `rakuten.registry.rule`; logging a model, beside its adapter, in
`rakuten.model_logging`.
"""

from rakuten.tracking.console import muted, one_line, redact, set_console
from rakuten.tracking.http import is_outage, quick_http, retry_http_for
from rakuten.tracking.log import (find_runs, log_candidate, log_epoch, log_evaluation, log_files_to_run,
                                  log_metrics, log_search_result, log_summary_run, readable, set_tags)
from rakuten.tracking.params import (POPULATION_ARTIFACT, TEST_PREDICTIONS_ARTIFACT, comparable_params, dataset_name,
                                     log_config, log_datasets, log_placements, log_test_predictions, logged_test_predictions, own_settings)
from rakuten.tracking.run_lifecycle import (ENDED_BY_TAG, HOST_TAG, PID_STARTED_TAG, PID_TAG, STALE_LAUNCH_MINUTES,
                                   alive_or_finished, end_open_runs, end_orphaned_runs, experiment_name, git_commit, mark_launch, process_tags,
                                   run, run_info)
from rakuten.tracking.store import (TrackingError, check_writable, connect, describe, ensure_experiment,
                                    registry_lock, resolve_tracking_uri, sqlite_path, tracking_uri)
from rakuten.tracking.view import (EXPERIMENT_TAGS, RUNS_VIEW, RUNS_VIEW_KEY, RUNS_VIEW_TAG, dataset_view_key, run_link,
                                   set_runs_view)

__all__ = [
    "muted", "one_line", "redact", "set_console", "is_outage", "quick_http", "retry_http_for", "find_runs",
    "log_candidate", "log_epoch", "log_evaluation", "log_files_to_run", "log_metrics", "log_search_result",
    "log_summary_run", "readable", "set_tags", "POPULATION_ARTIFACT", "TEST_PREDICTIONS_ARTIFACT",
    "log_test_predictions", "logged_test_predictions", "comparable_params", "dataset_name", "log_config", "log_datasets", "log_placements", "own_settings",
    "alive_or_finished", "ENDED_BY_TAG", "HOST_TAG", "PID_STARTED_TAG", "PID_TAG", "STALE_LAUNCH_MINUTES", "end_open_runs",
    "end_orphaned_runs", "experiment_name", "git_commit", "mark_launch", "process_tags", "run", "run_info", "TrackingError",
    "check_writable", "connect", "describe", "ensure_experiment", "registry_lock", "resolve_tracking_uri", "sqlite_path",
    "tracking_uri", "EXPERIMENT_TAGS", "RUNS_VIEW", "RUNS_VIEW_KEY", "RUNS_VIEW_TAG", "dataset_view_key", "run_link", "set_runs_view",
]
