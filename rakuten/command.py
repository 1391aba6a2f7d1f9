"""`rakuten <command> ...`: one command over the project's commands, each still runnable as
`python -m rakuten.<module>`. `rakuten --help` lists them; `rakuten <command> --help` gives a
command's own options. Exit codes are `rakuten.cli.ExitStatus`."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {  # name -> (module whose `main` it runs, what it does)
    "train": ("rakuten.train", "train one model (Hydra overrides: model=linearsvc data=full ...; -m sweeps)"),
    "predict": ("rakuten.predict", "write y_test.csv from a registered model and an X-format file"),
    "evaluate": ("rakuten.evaluate.__main__", "score a model on a labelled file and log the evaluation"),
    "leaderboard": ("rakuten.leaderboard", "the finished runs of each dataset, best first"),
    "promote": ("rakuten.promote", "rank runs and point champion, challenger and fast"),
    "serve": ("rakuten.serve", "serve a model over REST (POST /invocations)"),
    "explain": ("rakuten.explain", "LIME explanations of a text model, logged to its run"),
    "runs": ("rakuten.runs", "housekeeping: --repair ends runs and workers that dead processes left"),
    "ui": ("rakuten.ui", "the MLflow UI, opened on one dataset's runs"),
    "team-server": ("rakuten.team_server", "the team's MLflow server with authentication, and its users"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: rakuten <command> [options]   (rakuten <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from rakuten.cli import ExitStatus

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return ExitStatus.OK if argv else ExitStatus.USER_ERROR
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: no command {name!r}\n{usage()}", file=sys.stderr)
        return ExitStatus.USER_ERROR
    if name == "train":  # Hydra reads the command line itself, and finds conf/ from a module run as a script
        import runpy

        sys.argv = [f"rakuten {name}", *rest]
        runpy.run_module(COMMANDS[name][0], run_name="__main__")  # exits with the job's code
        return ExitStatus.OK
    if name == "predict":  # as `python -m rakuten.predict` does: its batches reuse the memory the last one freed
        from rakuten.features.allocator import keep_freed_memory

        keep_freed_memory()
    return importlib.import_module(COMMANDS[name][0]).main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
