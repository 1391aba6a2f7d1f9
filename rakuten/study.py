"""Studies: configs compared by cross-validation, the table a default is chosen from.

A job with `cv.folds=K` is scored, beside its usual split, by K-fold stratified cross-validation
over every labelled row: each fold fits the whole recipe (features included) on the other folds
and scores its own, so the mean and spread say how a config does, not how one split fell. It logs
`cv_f1_weighted_mean`, `cv_f1_weighted_std`, each fold's score (`cv_f1_weighted_fold_1`...),
`cv_fit_seconds` (per fold) and `cv_predict_rows_per_s`. A multirun with `study.name` set ends with
a summary run, in the jobs' experiment, holding their table (`study.md`, `study.csv`), best CV mean
first; `vs_best` is each config's gain over the best, fold by fold (the folds are the same for a
seed), as mean ± std: two configs' spreads overlap far more than their paired difference does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STUDY_TAG = "rakuten.study"
OVERRIDES_TAG = "rakuten.overrides"
FOLD_METRIC = "cv_f1_weighted_fold_"  # + the fold's number, from 1
FOLDS_DRAWN_FROM = ("seed", "data.dir", "data.max_rows")  # params that decide a job's folds


def folds(count: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    if int(count) < 2:
        raise ValueError(f"cv.folds={count} must be at least 2")
    return StratifiedKFold(n_splits=int(count), shuffle=True, random_state=seed)


def cv_metrics(scores, fit_seconds, predict_seconds, test_rows) -> dict[str, float]:
    scores = np.asarray(scores, dtype=float)
    return {"cv_f1_weighted_mean": float(scores.mean()), "cv_f1_weighted_std": float(scores.std()),
            **{f"{FOLD_METRIC}{number}": float(score) for number, score in enumerate(scores, start=1)},
            "cv_fit_seconds": float(np.mean(fit_seconds)),
            "cv_predict_rows_per_s": float(np.sum(test_rows) / np.sum(predict_seconds)),
            "cv_folds": float(len(scores))}


def cross_validated(count: int, parts, cross_validate) -> dict[str, float]:
    """`cross_validate(rows, labels)` over every labelled row of `parts` (a `rakuten.data.Split`),
    `count` folds, said on the console."""
    rows, labels = parts.all_rows()
    print(f"cross-validation: {count} folds over {len(rows):,} rows ...", end=" ", flush=True)
    scores = cross_validate(rows, labels)
    print(f"cv_f1_weighted={scores['cv_f1_weighted_mean']:.4f} ± {scores['cv_f1_weighted_std']:.4f}", flush=True)
    return scores


def cross_validate_pipeline(pipeline, rows: pd.DataFrame, labels: pd.Series, count: int, seed: int) -> dict[str, float]:
    """`count`-fold CV of a scikit-learn config's whole pipeline (scikit-learn's `cross_validate`)."""
    from sklearn.model_selection import cross_validate

    from rakuten.features.pretrained import fill_item_caches

    splitter = folds(count, seed)
    fill_item_caches(pipeline, rows)
    result = cross_validate(pipeline, rows, labels, cv=splitter, scoring="f1_weighted", error_score="raise")
    test_rows = [len(test) for _, test in splitter.split(rows, labels)]
    return cv_metrics(result["test_score"], result["fit_time"], result["score_time"], test_rows)


def cross_validate_network(fit_network, rows: pd.DataFrame, labels: pd.Series, classes, count: int,
                           seed: int) -> dict[str, float]:
    """`count`-fold CV of an image network: `fit_network(rows, labels)` (a new network, its
    history and settings) on each fold's other folds, scored on it."""
    import time

    from sklearn.metrics import f1_score

    from rakuten import image_models

    scores, fit_seconds, predict_seconds, test_rows = [], [], [], []
    for train, test in folds(count, seed).split(rows, labels):
        started = time.perf_counter()
        network, _, settings = fit_network(rows.iloc[train], labels.iloc[train])
        fit_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        proba = image_models.predict_proba(network, settings, rows.iloc[test]["image_path"])
        predict_seconds.append(time.perf_counter() - started)
        scores.append(f1_score(labels.iloc[test], np.asarray(classes)[np.argmax(proba, axis=1)], average="weighted"))
        test_rows.append(len(test))
    return cv_metrics(scores, fit_seconds, predict_seconds, test_rows)


def table(found: list) -> pd.DataFrame:
    """The study's jobs, one row each, best CV mean first."""
    rows = []
    for run in found:
        metrics = run.data.metrics
        if "cv_f1_weighted_mean" not in metrics:
            continue
        rows.append({
            "config": run.data.tags.get(OVERRIDES_TAG) or run.info.run_name,
            "cv_f1_weighted": f"{metrics['cv_f1_weighted_mean']:.4f} ± {metrics['cv_f1_weighted_std']:.4f}",
            "cv_f1_weighted_mean": metrics["cv_f1_weighted_mean"],
            "cv_f1_weighted_std": metrics["cv_f1_weighted_std"],
            "fit_seconds_per_fold": round(metrics.get("cv_fit_seconds", float("nan")), 2),
            "predict_rows_per_s": round(metrics["cv_predict_rows_per_s"]) if "cv_predict_rows_per_s" in metrics else "",
            "split_test_f1_weighted": round(metrics.get("test_f1_weighted", float("nan")), 4),
            "run_id": run.info.run_id,
            "folds": [metrics.get(f"{FOLD_METRIC}{n}") for n in range(1, int(metrics.get("cv_folds", 0)) + 1)],
            "fold_rows": tuple(run.data.params.get(key) for key in FOLDS_DRAWN_FROM),
        })
    frame = pd.DataFrame(rows)
    if not rows:
        return frame
    shared = set.intersection(*(set(config.split()) for config in frame["config"]))  # the study's own settings
    frame["config"] = [" ".join(t for t in config.split() if t not in shared) or "(defaults)"
                       for config in frame["config"]]
    frame = frame.sort_values("cv_f1_weighted_mean", ascending=False, ignore_index=True)
    best = frame.iloc[0]
    frame["vs_best"] = [""] + [_paired_gain(row, best) for _, row in frame.iloc[1:].iterrows()]
    return frame.drop(columns=["folds", "fold_rows"])


def _paired_gain(row: pd.Series, best: pd.Series) -> str:
    """`row`'s fold-by-fold difference to the best config as "mean ± std" ("" where either logged no
    fold scores, or their folds differ: another count, seed or rows)."""
    folds = row["folds"]
    if not folds or len(folds) != len(best["folds"]) or None in folds + best["folds"] or row["fold_rows"] != best["fold_rows"]:
        return ""
    difference = np.asarray(folds) - np.asarray(best["folds"])
    return f"{difference.mean():+.4f} ± {difference.std():.4f}"


def log_summary(name: str, experiment: str, found: list) -> pd.DataFrame:
    """A summary run named `<name>-summary` holding the table; returns the table."""
    from rakuten import tracking

    frame = table(found)
    if frame.empty:
        raise ValueError(f"study {name!r}: no job logged cv_f1_weighted_mean (did the jobs set cv.folds?)")
    shown = frame.drop(columns=["cv_f1_weighted_mean", "cv_f1_weighted_std"])
    best = frame.iloc[0]
    tracking.log_summary_run(
        f"{name}-summary", experiment,
        tags={STUDY_TAG: name, "run_type": "summary", "best_config": best["config"]},
        metrics={"best_cv_f1_weighted_mean": best["cv_f1_weighted_mean"],
                 "best_cv_f1_weighted_std": best["cv_f1_weighted_std"], "configs": len(frame)},
        files={"study.csv": shown.to_csv(index=False), "study.md": markdown(shown)})
    return shown


def markdown(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table (the results page's and the summary run's)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"
