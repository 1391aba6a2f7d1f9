"""What each change of `model=smallcnn` bought over the seed's Sequential CNN, by 5-fold CV.

Every variant is `smallcnn` with one of its changes undone (plus the seed's `sequential` and
`smallcnn` itself), scored by the folds of `experiment=image_models` (`rakuten.study.folds` over
the pictured products of data=full, in the order `rakuten.study.folds` yields them): mean ± std of
weighted F1 on each held-out fold, fit seconds, epochs run, predict pictures/s. The networks, the
training loop (`rakuten.image_models.fit`) and the augmentation layers are the project's; the
pictures are read by Pillow into arrays instead of tf.data, so any Keras backend runs it: the GPU
machines lent here have PyTorch and no TensorFlow.

    PYTHONPATH=. KERAS_BACKEND=torch python experiments/cnn_ablation.py --workers 8 --out results.csv

Each (variant, fold) is one job in a pool of `--workers` processes; a line per job is appended to
`--out` as it ends, and no job starts after `--deadline` seconds, so a cut-short run still leaves
whole rows. The table (Markdown) is printed at the end.
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import importlib
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rakuten import PROJECT_ROOT

def _composed(model: str) -> tuple[dict, dict]:
    """(the model node, the `augment` group) of `model=<model>`, composed as a run composes them."""
    from omegaconf import OmegaConf

    from rakuten.train import compose_config

    cfg = compose_config(f"model={model}")
    return OmegaConf.to_container(cfg.model, resolve=True), OmegaConf.to_container(cfg.augment, resolve=True)


def variants() -> dict[str, dict]:
    """Name -> (model config, augmentation): the seed, smallcnn, and smallcnn less one change."""
    (seed, default_augment), (small, _) = _composed("sequential"), _composed("smallcnn")  # config.yaml's `augment`

    def without(**changes) -> dict:
        model = copy.deepcopy(small)
        model.update(changes)
        return model

    return {
        "sequential (seed)": {**seed, "augment": default_augment},
        "smallcnn": small,
        "smallcnn, seed's network (Flatten, Dense 512, no BN)": without(network=seed["network"]),
        "smallcnn, seed's pictures (grey 125 px)": without(image_size=[125, 125], grayscale=True, channels=1),
        "smallcnn, seed's augmentation (low)": without(augment=default_augment),
        "smallcnn, no label smoothing": without(label_smoothing=0.0),
        "smallcnn, seed's schedule (plateau)": without(schedule="plateau"),
        "smallcnn, early stopping on val_loss": without(monitor="val_loss"),
    }


@functools.lru_cache(maxsize=1)
def study_rows(data_dir: str, seed: int = 42, test_size: float = 0.2) -> tuple[pd.DataFrame, pd.Series]:
    """The rows `experiment=image_models` cross-validates, in its order."""
    from rakuten import data_pictures

    parts, _ = data_pictures.image_split(data_dir, None, False, None, test_size, seed)
    return pd.concat([parts.X_train, parts.X_test]), pd.concat([parts.y_train, parts.y_test])


@functools.lru_cache(maxsize=2)
def pixels(data_dir: str, image_size: tuple[int, int], grayscale: bool) -> np.ndarray:
    """Every study picture resized (bilinear) and scaled to [0, 1], as the configs' `rescale`."""
    from PIL import Image

    rows, _ = study_rows(data_dir)
    height, width = image_size
    decoded = []
    for path in rows["image_path"]:
        image = Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR)
        decoded.append(np.asarray(image.convert("L") if grayscale else image, dtype=np.float32) / 255.0)
    array = np.stack(decoded)
    return array[..., None] if grayscale else array


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int):
    """A Keras dataset of (pixels, class index) batches, reshuffled each epoch when asked."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = np.arange(len(x))
            self.random = np.random.default_rng(seed)
            self.on_epoch_end()

        def __len__(self):
            return int(np.ceil(len(x) / batch_size))

        def __getitem__(self, number):
            chosen = self.order[number * batch_size:(number + 1) * batch_size]
            return x[chosen], y[chosen]

        def on_epoch_end(self):
            if shuffle:
                self.random.shuffle(self.order)

    return Batches()


def run_job(job: tuple[str, int, str, int, float, float]) -> dict | None:
    """Fit one variant on the other folds, score it on fold `fold`; None past the deadline."""
    name, fold, data_dir, seed, deadline, max_epochs = job
    if time.time() > deadline:
        return None
    import keras
    from sklearn.metrics import f1_score

    from rakuten import data, image_models
    from rakuten.features.network_input import augmentation
    from rakuten.study import folds

    model = variants()[name]
    rows, labels = study_rows(data_dir)
    classes = np.sort(labels.unique())
    targets = np.searchsorted(classes, labels.to_numpy())
    train, test = list(folds(5, seed).split(rows, labels))[fold]
    x = pixels(data_dir, tuple(model["image_size"]), bool(model["grayscale"]))
    fitting = data.split(rows.iloc[train], labels.iloc[train], model["validation_size"], seed)
    fit_rows, validation_rows = (rows.index.get_indexer(part.index) for part in (fitting.X_train, fitting.X_test))
    batch = int(model["batch_size"])

    started = time.perf_counter()
    network_options = {k: v for k, v in model["network"].items() if k != "_target_"}
    module, _, builder = model["network"]["_target_"].rpartition(".")
    network = getattr(importlib.import_module(module), builder)(
        input_shape=x.shape[1:], n_classes=len(classes), **network_options)
    augment = augmentation(model.get("augment"), seed)
    if augment is not None:  # active in training only, as the tf.data map of the project's runs
        network = keras.Sequential([keras.Input(shape=x.shape[1:]), augment, network])
    epochs = min(int(model["epochs"]), max_epochs)
    training = image_models.Training(epochs, float(model["learning_rate"]), model["patience"], seed,
                                     model.get("schedule", "plateau"), float(model.get("label_smoothing", 0.0)),
                                     model.get("monitor", "val_loss"))
    history = image_models.fit(
        network, batches(x[fit_rows], targets[fit_rows], batch, True, seed),
        batches(x[validation_rows], targets[validation_rows], batch, False, seed), training,
        validation_targets=targets[validation_rows], n_classes=len(classes))
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = np.argmax(network.predict(x[test], batch_size=64, verbose=0), axis=1)
    predict_seconds = time.perf_counter() - started
    return {"variant": name, "fold": fold, "f1_weighted": f1_score(targets[test], predicted, average="weighted"),
            "fit_seconds": round(fit_seconds, 1), "epochs": len(history["loss"]),
            "predict_pictures_per_s": round(len(test) / predict_seconds), "train_pictures": len(fit_rows),
            "test_pictures": len(test), "backend": keras.backend.backend()}


def summary(results: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per variant, in `order`: mean ± std of the folds and the change against smallcnn."""
    rows = []
    reference = results.loc[results["variant"] == "smallcnn", "f1_weighted"].mean()
    for name in order:
        scores = results[results["variant"] == name]
        if scores.empty:
            continue
        mean = scores["f1_weighted"].mean()
        rows.append({"config": name, "folds": len(scores),
                     "cv_f1_weighted": f"{mean:.4f} ± {scores['f1_weighted'].std(ddof=0):.4f}",
                     "vs_smallcnn": "" if name == "smallcnn" or np.isnan(reference) else f"{mean - reference:+.4f}",
                     "epochs": f"{scores['epochs'].mean():.0f}",
                     "fit_seconds_per_fold": f"{scores['fit_seconds'].mean():.0f}",
                     "predict_pictures_per_s": f"{scores['predict_pictures_per_s'].mean():.0f}"})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(PROJECT_ROOT.parent / "shared" / "data" / "rakuten"))
    parser.add_argument("--variants", nargs="*", help="names to run (default: all, in order)")
    parser.add_argument("--folds", type=int, nargs="*", default=list(range(5)), help="which of the 5 folds")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=float("inf"), help="seconds after which no job starts")
    parser.add_argument("--max-epochs", type=int, default=10 ** 6, help="cap on each config's epochs (smoke runs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="cnn_ablation.csv")
    args = parser.parse_args()

    names = args.variants or list(variants())
    unknown = set(names) - set(variants())
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {list(variants())}")
    deadline = time.time() + args.deadline
    jobs = [(name, fold, args.data_dir, args.seed, deadline, args.max_epochs) for name in names for fold in args.folds]
    study_rows(args.data_dir)  # fail here, once, on a bad data folder
    out = Path(args.out)
    with out.open("w", newline="") as handle, multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        writer = None
        for result in pool.imap_unordered(run_job, jobs):
            if result is None:
                continue
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(result))
                writer.writeheader()
            writer.writerow(result)
            handle.flush()
            print(f"{result['variant']} fold {result['fold']}: {result['f1_weighted']:.4f} "
                  f"({result['epochs']} epochs, {result['fit_seconds']} s)", flush=True)
    if writer is None:
        raise SystemExit("no job finished before the deadline")
    from rakuten.study import markdown

    print(markdown(summary(pd.read_csv(out), names)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
