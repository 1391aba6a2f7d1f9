"""Scores and pictures of a set of predictions: arrays in, numbers and figures out. No MLflow here."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score  # noqa: E402

from rakuten.classes import labelled  # noqa: E402


def score(y_true, y_pred, prefix: str = "test_") -> dict[str, float]:
    """Weighted F1 (the challenge's metric), macro F1 and accuracy."""
    return {
        f"{prefix}f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        f"{prefix}f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        f"{prefix}accuracy": float(accuracy_score(y_true, y_pred)),
    }


def report(y_true, y_pred, labels) -> tuple[dict, str]:
    """The per-class report, as a dict (for JSON) and as a readable table."""
    labels = list(labels)
    names = [str(label) for label in labels]
    as_dict = classification_report(
        y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0
    )
    as_text = classification_report(y_true, y_pred, labels=labels, target_names=[labelled(label) for label in labels],
                                    digits=3, zero_division=0)
    return as_dict, as_text


def plot_confusion_matrix(y_true, y_pred, labels, title: str = "Confusion matrix (row-normalised)"):
    """Row-normalised confusion matrix: each row shows where one true class went.

    Sized for the MLflow UI's preview: codes in sorted order on both axes in a readable size, and
    a cell says its share in whole percent only where it is 10% or more.
    """
    labels = sorted(labels)
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    figure, axes = plt.subplots(figsize=(11.5, 9), dpi=130)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), [str(label) for label in labels], rotation=90, fontsize=11)
    axes.set_yticks(range(len(labels)), [labelled(label) for label in labels], fontsize=10)
    axes.set_xlabel("predicted prdtypecode", fontsize=12)
    axes.set_ylabel("true prdtypecode", fontsize=12)
    axes.set_title(title, fontsize=13)
    for row in range(len(labels)):
        for col in range(len(labels)):
            if shares[row, col] >= 0.1:
                colour = "white" if shares[row, col] > 0.5 else "black"
                axes.text(col, row, f"{100 * shares[row, col]:.0f}", ha="center", va="center", fontsize=8,
                          color=colour)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class (cells: %)")
    figure.tight_layout()
    return figure


def plot_per_class_f1(report_dict: dict, labels, title: str = "F1 per class"):
    """Horizontal bars of F1 per prdtypecode (sorted codes), with the class's test support."""
    names = [str(label) for label in sorted(labels)]
    f1 = [report_dict[name]["f1-score"] for name in names]
    support = [int(report_dict[name]["support"]) for name in names]
    figure, axes = plt.subplots(figsize=(8, 9), dpi=130)
    axes.barh(range(len(names)), f1, color="tab:blue")
    axes.set_yticks(range(len(names)), [f"{labelled(int(n))} (n={s})" for n, s in zip(names, support)], fontsize=10)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("F1", fontsize=12)
    axes.tick_params(axis="x", labelsize=11)
    axes.axvline(report_dict["weighted avg"]["f1-score"], color="tab:red", linestyle="--", label="weighted F1")
    axes.legend(loc="lower right", fontsize=11)
    axes.set_title(title, fontsize=13)
    figure.tight_layout()
    return figure


def plot_learning_curve(history: dict[str, list[float]], title: str = "Learning curve"):
    """Loss and accuracy per epoch, training and validation."""
    figure, (loss, accuracy) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for axes, key in ((loss, "loss"), (accuracy, "accuracy")):
        if key in history:
            axes.plot(epochs, history[key], label=f"train {key}")
        if f"val_{key}" in history:
            axes.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_gradcam(image: np.ndarray, heatmap: np.ndarray, title: str):
    """The picture, and the Grad-CAM heatmap (resized to it) laid over it."""
    from PIL import Image

    size = (image.shape[1], image.shape[0])
    resized = np.asarray(Image.fromarray(np.uint8(255 * heatmap)).resize(size, Image.BILINEAR)) / 255.0
    figure, (left, right) = plt.subplots(1, 2, figsize=(6, 3.2))
    left.imshow(image)
    right.imshow(image)
    right.imshow(resized, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    for axes in (left, right):
        axes.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure

