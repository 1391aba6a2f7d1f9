"""experiments/cv_folds.py: the folds of `cv.folds=K`, run over several sittings, score as one job's CV."""

import json

import pytest

from experiments import cv_folds
from rakuten import study
from rakuten.recipes import recipe_for
from rakuten.recipes.job import Job
from rakuten.train import compose_config
from tests.helpers.stores import TEST_CACHE_DIR

pytestmark = pytest.mark.slow  # folds in worker processes

CONFIG = [f"cache.dir={TEST_CACHE_DIR}", "model=linearsvc", "data.max_rows=400"]


def test_folds_run_over_two_sittings_score_as_the_cv_of_one_job(tmp_path, capsys):
    out = tmp_path / "folds.jsonl"
    assert cv_folds.main(["--folds", "2", "--k", "3", "--out", str(out), *CONFIG]) == 0
    assert cv_folds.main(["--folds", "1,2,3", "--k", "3", "--out", str(out), *CONFIG]) == 0
    printed = capsys.readouterr().out
    assert "fold 2: already in" in printed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["fold"] for line in lines) == [1, 2, 3]  # fold 2 once

    cfg = compose_config(*CONFIG)
    job = Job(cfg, recipe_for(cfg.model))
    parts, _ = job.recipe.split(job.data, job.seed)
    one_job = study.cross_validate_pipeline(job.settings.pipeline(), *parts.all_rows(), 3, job.seed)
    by_fold = {line["fold"]: line["f1_weighted"] for line in lines}
    assert [by_fold[n] for n in (1, 2, 3)] == pytest.approx([one_job[f"{study.FOLD_METRIC}{n}"] for n in (1, 2, 3)])
    assert f"cv_f1_weighted={one_job['cv_f1_weighted_mean']:.4f} ± {one_job['cv_f1_weighted_std']:.4f}" in printed


def test_a_fold_out_of_range_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cv_folds.main(["--folds", "6", "--out", str(tmp_path / "f.jsonl"), *CONFIG])
    assert "--folds 6: fold numbers run from 1 to --k 5" in capsys.readouterr().err
    assert not (tmp_path / "f.jsonl").exists()


def test_a_network_is_refused_before_any_data_is_read(tmp_path):
    with pytest.raises(SystemExit) as refused:
        cv_folds.main(["--folds", "1", "--out", str(tmp_path / "f.jsonl"), f"cache.dir={TEST_CACHE_DIR}", "model=smallcnn"])
    assert str(refused.value.code) == ("error: model=smallcnn: only text and picture pipelines are cross-validated "
                                       "fold by fold here")
    assert not (tmp_path / "f.jsonl").exists()
