"""Chosen folds of a config's K-fold CV, each fold's score appended to a JSON-lines file as it ends.

`cv.folds=K` runs all K folds in one job; a CV of fine-tunings takes 41-53 min a fold on 2 cores
of an AMD EPYC without AMX (two side by side), more than one sitting. This runs the folds named (the same folds `cv.folds=K`
draws: same seed, rows and recipe), side by side, and appends a line per fold as soon as it ends; a
fold already in the file for the same config is skipped. Once the file holds all K folds of the
config, it prints the mean ± std that `cv.folds=K` would have logged. Text and picture models whose
CV is a scikit-learn pipeline's (not the Keras networks or the fusion).

    python experiments/cv_folds.py --folds 1,2 --out e5_blend8.jsonl model=e5_blend data=full \\
        model.estimator.encoder.epochs=8 model.estimator.encoder.patience=2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def fit_and_score(number: int, pipeline, rows, labels, split) -> tuple[int, dict]:
    """Fold `number` as `cv.folds` scores it (scikit-learn's `cross_validate` on that one split)."""
    from sklearn.model_selection import cross_validate

    result = cross_validate(pipeline, rows, labels, cv=[split], scoring="f1_weighted", error_score="raise",
                            return_estimator=True)
    scored = {"f1_weighted": float(result["test_score"][0]), "fit_seconds": float(result["fit_time"][0]),
              "predict_seconds": float(result["score_time"][0]), "test_rows": len(split[1])}
    fitted, labels = result["estimator"][0], np.asarray(labels)
    return number, {**scored, **blend_choice(fitted, rows.iloc[split[1]], labels[split[1]]),
                    **first_network_alone(fitted, rows.iloc[split[0]], labels[split[0]], rows.iloc[split[1]],
                                          labels[split[1]])}


def blend_choice(fitted, test_rows, test_labels) -> dict:
    """For a blend (rakuten.fine_tuning.Blend): the weight it took, what validation rows said of each
    weight, and what the fold's test part says of each, so that a rule for the weight can be judged
    on folds already fitted. Nothing for other models."""
    blend = fitted[-1]
    if not hasattr(blend, "f1_by_weight"):
        return {}
    return {"weight": blend.weight_, "validation_f1_by_weight": blend.validation_f1_,
            "validation_log_loss_by_weight": blend.validation_log_loss_,
            "test_f1_by_weight": blend.f1_by_weight(fitted[:-1].transform(test_rows), test_labels)}


def first_network_alone(fitted, train_rows, train_labels, test_rows, test_labels) -> dict:
    """For a blend of several networks (`model.estimator.networks` > 1): the blend its first network
    alone would have made (the weight chosen by the same rule on the same validation rows; the first
    network is what `networks=1` trains) and each network alone, on the fold's test part: what the
    other networks add, judged within one fit. Nothing for other models."""
    import copy

    from sklearn.base import clone
    from sklearn.metrics import f1_score

    from rakuten.fine_tuning.blend import _both, _mixes, lowest_log_loss
    from rakuten.fine_tuning.epochs import validation_rows

    blend = fitted[-1]
    networks = getattr(getattr(blend, "encoder_", None), "networks_", None)
    if not networks:
        return {}
    train_rows, test_rows = fitted[:-1].transform(train_rows), fitted[:-1].transform(test_rows)
    train, held = validation_rows(train_labels, float(blend.validation_size), int(blend.random_state))
    linear = clone(blend.linear).fit(train_rows.iloc[train], train_labels[train])  # as Blend.fit weighs
    weight, _ = lowest_log_loss(_mixes(*_both(linear, networks[0], train_rows.iloc[held], blend.classes_)),
                                train_labels[held], blend.classes_)
    alone = copy.copy(blend)  # the same blend, its first network in place of the ensemble
    alone.encoder_, alone.weight_ = networks[0], weight

    def f1(model) -> float:
        return float(f1_score(test_labels, model.predict(test_rows), average="weighted"))

    return {"first_network_weight": weight, "first_network_blend_f1": f1(alone),
            "networks_alone_f1": [f1(network) for network in networks]}


def done_folds(out: Path, key: dict) -> dict[int, dict]:
    """The folds of `key` (overrides, K, seed) already in `out`, by number."""
    if not out.exists():
        return {}
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {line["fold"]: line for line in lines if all(line.get(name) == value for name, value in key.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", required=True, help="fold numbers from 1, comma-separated: 1,2")
    parser.add_argument("--k", type=int, default=5, help="K of the K-fold CV (5)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON-lines file the folds' scores go to")
    parser.add_argument("--jobs", type=int, default=2, help="folds side by side (2)")
    parser.add_argument("overrides", nargs="*", help="the config, as `python -m rakuten.train` takes it")
    args = parser.parse_args(argv)
    wanted = sorted({int(number) for number in args.folds.split(",")})
    if not all(1 <= number <= args.k for number in wanted):
        parser.error(f"--folds {args.folds}: fold numbers run from 1 to --k {args.k}")

    from joblib import Parallel, delayed

    from rakuten import study
    from rakuten.features import item_cache
    from rakuten.features.pretrained import fill_item_caches
    from rakuten.recipes import recipe_for
    from rakuten.recipes.job import Job
    from rakuten.train import compose_config

    cfg = compose_config(*args.overrides)
    job = Job(cfg, recipe_for(cfg.model))
    if not hasattr(job.recipe, "cv_pipeline"):  # the Keras networks and the fusion cross-validate otherwise
        raise SystemExit(f"error: model={job.model}: only text and picture pipelines are cross-validated fold by fold here")
    key = {"overrides": sorted(args.overrides), "k": args.k, "seed": job.seed}
    done = done_folds(args.out, key)
    for number in wanted:
        if number in done:
            print(f"fold {number}: already in {args.out} ({done[number]['f1_weighted']:.4f})")
    todo = [number for number in wanted if number not in done]
    if todo:
        item_cache.use_cache(job.cache_dir)
        parts, _ = job.recipe.split(job.data, job.seed)
        rows, labels = parts.all_rows()
        splits = dict(enumerate(study.folds(args.k, job.seed).split(rows, labels), start=1))
        pipeline = job.recipe.cv_pipeline(job)
        fill_item_caches(pipeline, rows)  # each text's embedding once, before the folds fan out
        print(f"folds {todo} of {args.k} over {len(rows):,} rows, {min(args.jobs, len(todo))} side by side ...", flush=True)
        results = Parallel(n_jobs=min(args.jobs, len(todo)), return_as="generator_unordered")(
            delayed(fit_and_score)(number, pipeline, rows, labels, splits[number]) for number in todo)
        for number, result in results:
            line = {**key, "fold": number, **result}
            with open(args.out, "a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
            done[number] = line
            print(f"fold {number}: f1_weighted {result['f1_weighted']:.4f}, fit {result['fit_seconds'] / 60:.1f} min",
                  flush=True)
    if len(done) == args.k:
        ordered = [done[number] for number in range(1, args.k + 1)]
        metrics = study.cv_metrics(*([fold[name] for fold in ordered]
                                     for name in ("f1_weighted", "fit_seconds", "predict_seconds", "test_rows")))
        print(f"cv_f1_weighted={metrics['cv_f1_weighted_mean']:.4f} ± {metrics['cv_f1_weighted_std']:.4f} "
              f"({args.k} folds; fit {metrics['cv_fit_seconds'] / 60:.1f} min a fold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
