"""Deterministic test inputs from numpy's PCG64 streams: the same on every machine and torch version.

Used for the reference-parity data: the reference tracker was run (outside this repo) on exactly
these weights and frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tomp_deploy.model import ToMPNet, preset


def seeded_model(
    preset_name: str = "tiny",
    seed: int = 0,
    score_gain: float = 1.0,
    zero_score_bias: bool = False,
    box_fraction: float | None = None,
) -> ToMPNet:
    """A network whose every tensor comes from `default_rng(seed)`, in state-dict order.

    Weights are normal with std 1/sqrt(fan_in); norms start at weight 1, bias 0; BatchNorm statistics
    are mildly random. `score_gain` scales the classifier projection and `zero_score_bias` removes its
    bias, which centres a random network's scores on 0 so that every localisation branch occurs.
    `box_fraction` makes the box regressor predict boxes of about that fraction of the crop around each
    cell (random regressors otherwise predict boxes that cover the whole image).
    """
    rng = np.random.default_rng(seed)
    model = ToMPNet(preset(preset_name)).eval()
    state = model.state_dict()
    filled = {}
    for name, tensor in state.items():
        if name in filled or name.endswith("query_embed_fg_decoder.weight"):
            continue
        shape = tuple(tensor.shape)
        if name.endswith("num_batches_tracked"):
            value = np.array(0)
        elif name.endswith("running_mean"):
            value = rng.normal(0.0, 0.1, shape)
        elif name.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            value = rng.standard_normal(shape) / math.sqrt(np.prod(shape[1:]))
        elif (
            "norm" in name
            or ".bn" in name
            or "bn1" in name
            or "downsample.1" in name
            or "tower" in name
            or "box_encoding.1" in name
            or "box_encoding.4" in name
        ) and name.endswith("weight"):
            value = 1.0 + rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.05, shape)
        filled[name] = torch.from_numpy(np.asarray(value)).to(tensor.dtype)
    filled["head.filter_predictor.query_embed_fg_decoder.weight"] = filled["head.filter_predictor.query_embed_fg.weight"]
    filled["head.classifier.linear.weight"] = filled["head.classifier.linear.weight"] * score_gain
    if zero_score_bias:
        filled["head.classifier.linear.bias"] = torch.zeros_like(filled["head.classifier.linear.bias"])
    if box_fraction is not None:
        filled["head.bb_regressor.bbreg_layer.weight"] = filled["head.bb_regressor.bbreg_layer.weight"] * 0.1
        filled["head.bb_regressor.bbreg_layer.bias"] = torch.full((4,), math.log(box_fraction / 2))
    model.load_state_dict(filled)
    return model
