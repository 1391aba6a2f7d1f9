"""EfficientNet-Lite as the project runs it at inference: the pictures as the network's input, and the
network with its batch norms folded into its convolutions (the frozen features, a fitted network,
a picture blend's pass)."""

from __future__ import annotations

import numpy as np


def batch_norms_folded(network):
    """The frozen network with each batch norm folded into the convolution before it: the same
    function in fewer passes over memory. At inference a batch norm is a per-channel scale and
    shift, which the convolution's weights and bias can carry; its own pass over every feature map
    goes (features equal in fp32 up to rounding)."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    pairs = [(network, "_conv_stem", "_bn0"), (network, "_conv_head", "_bn1")] + [
        (block, conv, norm) for block in network._blocks
        for conv, norm in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))
        if hasattr(block, conv)]
    for module, conv, norm in pairs:
        setattr(module, conv, fuse_conv_bn_eval(getattr(module, conv), getattr(module, norm)))
        setattr(module, norm, torch.nn.Identity())
    return network


def network_input(pictures: np.ndarray):
    """uint8 pictures (N, H, W, 3) as the network's input: (N, 3, H, W), (x - 127) / 128."""
    import torch

    return torch.from_numpy((pictures.astype(np.float32) - 127.0) / 128.0).permute(0, 3, 1, 2)
