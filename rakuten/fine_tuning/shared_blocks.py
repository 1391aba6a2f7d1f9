"""A picture blend's two parts run the same first blocks of the same network: the fine-tuned
EfficientNet trains only its last blocks (`trainable_blocks`), and the frozen model's features come
from the whole ImageNet network. At prediction each picture is decoded once and those first blocks
run once for both; then each part runs its own last blocks and head (`model=efficientnet_blend`:
Lite2 at 320 px, 15 blocks of 21 shared, about two thirds of a picture's work).

The pictures are decoded as the frozen model reads them (resized straight to the side), which the
network, trained on random crops of them, sees as well; the shared blocks run with the ImageNet
weights in full precision, which the network trained with (its own copy is kept in fp16).
With several networks (a blend's `networks`: `SeedEnsemble`), each runs its own last blocks after
the common ones and their probabilities are averaged.
"""

from __future__ import annotations

import numpy as np
import torch  # this module is imported only when a picture blend predicts

BATCH = 32  # pictures a pass


def shared_block_count(features, network) -> int:
    """How many first blocks the frozen `features` (EfficientNetFeatures) and the fine-tuned `network`
    (FineTunedEfficientNet, fitted) run alike: the same variant and side, and the network's frozen
    blocks stored as the ImageNet weights are (in fp16). 0: they run apart."""
    trainable = int(network.trainable_blocks)
    if features.variant != network.variant or features.side() != network._size() or trainable < 0:
        return 0
    imagenet = features._network()
    frozen = len(imagenet._blocks) - trainable
    weights = imagenet.state_dict()
    names = [name for name in weights if name.startswith(("_conv_stem.", "_bn0."))
             or (name.startswith("_blocks.") and int(name.split(".")[1]) < frozen)]
    same = all(np.array_equal(network.trained_[f"backbone.{name}"], weights[name].half().numpy()) for name in names)
    return max(frozen, 0) if same else 0


def probabilities_together(frozen_model, encoder, X) -> tuple[np.ndarray, np.ndarray] | None:
    """(the frozen model's probabilities, the `encoder`'s) of picture rows `X`, the pictures decoded
    once and the first blocks the two share (`shared_block_count`, counted once per loaded model) run
    once; None when they share none or run on different devices or precisions: then each runs apart.
    `encoder`: a fine-tuned network, or a `SeedEnsemble` of them (`networks_`: their probabilities
    averaged, each network's own last blocks after the common ones). On the CPU the pass runs
    compiled by OpenVINO where it is installed (`rakuten.features.openvino_engine`).
    `frozen_model`: a pipeline of EfficientNetFeatures, then the scaler and the head."""
    from sklearn.pipeline import Pipeline

    from rakuten.features.pictures import picture_paths
    from rakuten.features.pretrained import EfficientNetFeatures

    if not isinstance(frozen_model, Pipeline) or not isinstance(frozen_model[0], EfficientNetFeatures):
        return None
    features, paths = frozen_model[0], picture_paths(X)
    networks = list(getattr(encoder, "networks_", [encoder]))
    if getattr(encoder, "_shared", (None,))[0] is not features:
        counts = {shared_block_count(features, network) for network in networks}
        encoder._shared = (features, counts.pop() if len(counts) == 1 else 0, None)  # not pickled
    if not encoder._shared[1] or not paths:
        return None
    for network in networks:
        network._network()  # built: its device and precision resolved
        if features.placement() != network._built[1:]:
            return None
    pooled, by_network = zip(*(_one_batch(features, encoder, networks, paths[start:start + BATCH])
                               for start in range(0, len(paths), BATCH)))
    return frozen_model[1:].predict_proba(np.vstack(pooled)), np.vstack(by_network)


def _one_batch(features, encoder, networks, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from rakuten.features.efficientnet_network import network_input

    inputs = network_input(features._decoded(paths))  # as the frozen model reads them
    blend_pass = _blend_pass(features, encoder, networks, inputs)
    if not isinstance(blend_pass, torch.nn.Module):  # compiled
        pooled, proba = blend_pass(inputs.numpy())
        return pooled, proba
    _, device, precision = networks[0]._built
    with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.bfloat16,
                                                enabled=precision == "bf16"):
        pooled, proba = blend_pass(inputs.to(device).contiguous(memory_format=torch.channels_last))
        return pooled.float().cpu().numpy(), proba.float().cpu().numpy()


def _blend_pass(features, encoder, networks, example):
    """The pass of both parts over a batch, built once per loaded model: `BlendPass`, compiled when
    `openvino_engine.compiles` on the networks' device (`example`, a batch, traces it)."""
    from rakuten.features import openvino_engine

    features_of, shared, built = encoder._shared
    if built is None:
        built = BlendPass(features, networks, shared)
        first = networks[0]
        if openvino_engine.compiles(first._built[1]):
            built = openvino_engine.CompiledNetwork(
                built, example, first.precision, f"efficientnet-{first.variant} {first._size()}px blend of "
                f"{shared} blocks shared" + (f", {len(networks)} networks" if len(networks) > 1 else ""))
        encoder._shared = (features_of, shared, built)
    return built


class BlendPass(torch.nn.Module):
    """Pictures (N, 3, S, S), the networks' input, to (the frozen model's pooled features, the
    networks' mean probabilities): the shared first blocks once over the pictures and, when the
    networks average their mirrors, their mirrors; then each part's own last blocks."""

    def __init__(self, features, networks: list, shared: int):
        super().__init__()
        self.features, self.shared = features, shared
        self.imagenet = features._folded_network(networks[0]._built[1])
        self.trained = torch.nn.ModuleList([network._network().eval() for network in networks])
        self.mirror = bool(networks[0].mirror_at_prediction)

    def forward(self, inputs):
        views = torch.cat([inputs, inputs.flip(3)]) if self.mirror else inputs
        common = _blocks(self.imagenet, _stem(self.imagenet, views), 0, self.shared)
        frozen_maps = _last(self.imagenet, _blocks(self.imagenet, common[:inputs.shape[0]], self.shared))
        probas = []
        for trained in self.trained:
            trained_maps = _last(trained.backbone, _blocks(trained.backbone, common, self.shared))
            logits = trained.head(trained_maps.mean((2, 3))).float()
            probas.append(torch.softmax(logits, -1).reshape(-1, inputs.shape[0], logits.shape[-1]).mean(0))
        return self.features._pooled(frozen_maps).float(), torch.stack(probas).mean(0)


def _stem(network, x):
    return network._swish(network._bn0(network._conv_stem(x)))


def _blocks(network, x, start: int, stop: int | None = None):
    """Blocks [start, stop) as `extract_features` runs them (the same drop-connect rates: none in eval)."""
    rate, count = network._global_params.drop_connect_rate, len(network._blocks)
    for index in range(start, count if stop is None else stop):
        x = network._blocks[index](x, drop_connect_rate=rate * index / count if rate else rate)
    return x


def _last(network, x):
    return network._swish(network._bn1(network._conv_head(x)))
