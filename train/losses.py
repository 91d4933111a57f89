"""The two losses of ToMP: DiMP's hinge classification loss and the GIoU loss of the ltrb boxes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_classification_loss(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """Squared error against the label where it is >= threshold; below it only positive scores cost
    (the prediction passes through a ReLU and the target is 0). Mean over all cells."""
    negative = (labels < threshold).to(scores.dtype)
    prediction = negative * F.relu(scores) + (1 - negative) * scores
    return F.mse_loss(prediction, (1 - negative) * labels)


def giou_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, counted_cells: torch.Tensor | None = None
):
    """1 - GIoU of ltrb distance boxes sharing each cell as origin, averaged over cells with weight > 0.

    pred, target: [..., 4, H, W] (left, top, right, bottom); weights: [..., 1, H, W] or None.
    counted_cells: what the summed loss of the counted cells is divided by (default: their number); without
    a counted cell (a batch of test frames without the target) the loss is 0, gradients included. Under
    DistributedDataParallel, which averages the ranks' gradients, the mean count over ranks makes that
    average the gradient of the global batch's mean (as DETR normalises its box losses).
    Returns (loss, IoUs of the counted cells).
    """
    pred = pred.movedim(-3, -1).reshape(-1, 4)
    target = target.movedim(-3, -1).reshape(-1, 4)
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    target_area = (tl + tr) * (tt + tb)
    pred_area = (pl + pr) * (pt + pb)
    w_intersect = torch.min(pl, tl) + torch.min(pr, tr)
    h_intersect = torch.min(pb, tb) + torch.min(pt, tt)
    w_enclosing = torch.max(pl, tl) + torch.max(pr, tr)
    h_enclosing = torch.max(pb, tb) + torch.max(pt, tt)
    enclosing = w_enclosing * h_enclosing + 1e-7
    intersection = w_intersect * h_intersect
    union = target_area + pred_area - intersection + 1e-7
    ious = intersection / union
    losses = 1 - (ious - (enclosing - union) / enclosing)
    if weights is None:
        return losses.mean(), ious
    counted = weights.reshape(-1) > 0
    divisor = counted.sum() if counted_cells is None else counted_cells
    if divisor > 0:
        return losses[counted].sum() / divisor, ious[counted]
    return losses[counted].sum(), ious[counted]
