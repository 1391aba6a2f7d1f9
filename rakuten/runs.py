"""`python -m rakuten.runs --repair`: the tracking store's housekeeping (runs, temporary folders and
worker processes that dead jobs left behind)."""

from __future__ import annotations

from rakuten.cli import ExitStatus, command, open_store, store_options


@command
def main(argv: list[str] | None = None) -> int:
    """`python -m rakuten.runs --repair`: end FAILED the runs that dead processes left RUNNING."""
    import argparse

    from rakuten import lifecycle, tracking

    parser = argparse.ArgumentParser(parents=[store_options(verbose=False)], prog="python -m rakuten.runs",
                                     description="Housekeeping of the tracking store's runs.")
    parser.add_argument("--repair", action="store_true",
                        help="end FAILED every RUNNING run whose process, on this machine, is gone, and every run "
                             "that `mlflow run` started but whose job never began; remove dead jobs' temporary folders "
                             "and stop their leftover worker processes")
    parser.add_argument("--stale-minutes", type=float, default=tracking.STALE_LAUNCH_MINUTES,
                        help="a run of `mlflow run` without a job's process tags this old is orphaned")
    args = parser.parse_args(argv)
    if not args.repair:
        parser.print_help()
        return ExitStatus.USER_ERROR
    open_store(args.tracking_uri)
    ended = tracking.end_orphaned_runs(None, stale_launch_minutes=args.stale_minutes)
    removed = lifecycle.remove_dead_job_folders()
    workers = lifecycle.stop_orphaned_workers()
    print(f"ended FAILED {len(ended)} runs left RUNNING by processes that are gone or launches that never started"
          + (f": {', '.join(ended)}" if ended else "")
          + f"; removed {len(removed)} temporary folders of dead jobs; stopped {len(workers)} worker processes "
            "of dead jobs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
