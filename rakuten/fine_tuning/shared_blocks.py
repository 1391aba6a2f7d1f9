"""A picture blend's two parts run the same first blocks of the same network: the fine-tuned
EfficientNet trains only its last blocks (`trainable_blocks`), and the frozen model's features come
from the whole ImageNet network. At prediction each picture is decoded once and those first blocks
run once for both; then each part runs its own last blocks and head (`model=efficientnet_blend`:
Lite2 at 320 px, 15 blocks of 21 shared, about two thirds of a picture's work).

The pictures are decoded as the frozen model reads them (resized straight to the side), which the
network, trained on random crops of them, sees as well; the shared blocks run with the ImageNet
weights in full precision, which the network trained with (its own copy is kept in fp16).
"""

from __future__ import annotations

import numpy as np

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


def probabilities_together(frozen_model, network, X) -> tuple[np.ndarray, np.ndarray] | None:
    """(the frozen model's probabilities, the network's) of picture rows `X`, the pictures decoded once
    and the first blocks the two share (`shared_block_count`, counted once per loaded model) run once;
    None when they share none or run on different devices or precisions: then each runs apart.
    `frozen_model`: a pipeline of EfficientNetFeatures, then the scaler and the head."""
    from sklearn.pipeline import Pipeline

    from rakuten.features.pictures import picture_paths
    from rakuten.features.pretrained import EfficientNetFeatures

    if not isinstance(frozen_model, Pipeline) or not isinstance(frozen_model[0], EfficientNetFeatures):
        return None
    features, paths = frozen_model[0], picture_paths(X)
    if getattr(network, "_shared", (None,))[0] is not features:
        network._shared = (features, shared_block_count(features, network))  # not pickled
    shared = network._shared[1]
    if not shared or not paths:
        return None
    network._network()  # built: its device and precision resolved
    if features.placement() != network._built[1:]:
        return None
    pooled, by_network = zip(*(_one_batch(features, network, shared, paths[start:start + BATCH])
                               for start in range(0, len(paths), BATCH)))
    return frozen_model[1:].predict_proba(np.vstack(pooled)), np.vstack(by_network)


def _one_batch(features, network, shared: int, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from rakuten.features.pretrained import _tensor

    trained = network._network().eval()
    _, device, precision = network._built
    imagenet = features._folded_network(device)
    pictures = features._decoded(paths)  # as the frozen model reads them
    with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.bfloat16,
                                                enabled=precision == "bf16"):
        inputs = _tensor(pictures).to(device).contiguous(memory_format=torch.channels_last)
        views = torch.cat([inputs, inputs.flip(3)]) if network.mirror_at_prediction else inputs
        common = _blocks(imagenet, _stem(imagenet, views), 0, shared)
        frozen_maps = _last(imagenet, _blocks(imagenet, common[:len(paths)], shared))
        trained_maps = _last(trained.backbone, _blocks(trained.backbone, common, shared))
        logits = trained.head(trained_maps.mean((2, 3))).float()
        proba = torch.softmax(logits, -1).reshape(-1, len(paths), logits.shape[-1]).mean(0)
        return features._pooled(frozen_maps).float().cpu().numpy(), proba.cpu().numpy()


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
