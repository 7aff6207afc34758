"""Pairwise DUSt3R inference over a scene graph of views.

Each view is encoded once; pairs are decoded in batches of equal shapes. The numbers equal
the official `inference(make_pairs(...), model, device, batch_size)` up to float rounding.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .model import Dust3rModel


@dataclass
class PairPrediction:
    """Outputs for edge (i, j): view i's points in its own frame, view j's in view i's frame.

    pts_i: [Hi x Wi x 3], conf_i: [Hi x Wi], pts_j: [Hj x Wj x 3], conf_j: [Hj x Wj]
    (float32, CPU).
    """

    i: int
    j: int
    pts_i: torch.Tensor
    conf_i: torch.Tensor
    pts_j: torch.Tensor
    conf_j: torch.Tensor


def view_confidence(predictions: Sequence[PairPrediction], num_views: int) -> list[torch.Tensor]:
    """Per view [H x W]: the best confidence any edge gives each pixel (as the official
    `BasePCOptimizer.im_conf`). Every view 0..num_views-1 must appear in some edge."""
    best: list[torch.Tensor | None] = [None] * num_views
    for pred in predictions:
        for view, conf in ((pred.i, pred.conf_i), (pred.j, pred.conf_j)):
            best[view] = conf if best[view] is None else torch.maximum(best[view], conf)
    missing = [view for view, conf in enumerate(best) if conf is None]
    if missing:
        raise ValueError(f"views {missing} appear in no edge")
    return best


def complete_symmetric_pairs(num_views: int) -> list[tuple[int, int]]:
    """Official `make_pairs(scene_graph='complete', symmetrize=True)` order.

    (1,0), (2,0), (2,1), (3,0), ... then the same pairs swapped.
    """
    pairs = [(i, j) for i in range(num_views) for j in range(i)]
    return pairs + [(j, i) for i, j in pairs]


@torch.no_grad()
def infer_pairs(
    model: Dust3rModel,
    images: Sequence[torch.Tensor],
    pairs: Sequence[tuple[int, int]],
    batch_size: int = 1,
    check: Callable[[], None] | None = None,
) -> list[PairPrediction]:
    """images: per view [1 x 3 x H x W] in [-1, 1]; returns one PairPrediction per pair, in order.

    check: called between batches (cancellation / deadline).
    """
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    encoded: list[tuple[torch.Tensor, torch.Tensor]] = []
    for image in images:
        if check:
            check()
        encoded.append(model.encode(image.to(device=device, dtype=dtype)))

    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, (i, j) in enumerate(pairs):
        groups[(tuple(images[i].shape[-2:]), tuple(images[j].shape[-2:]))].append(index)
    results: list[PairPrediction | None] = [None] * len(pairs)
    for (hw_i, hw_j), members in groups.items():
        for start in range(0, len(members), max(1, batch_size)):
            if check:
                check()
            batch = members[start : start + max(1, batch_size)]
            feat_i = torch.cat([encoded[pairs[k][0]][0] for k in batch])
            pos_i = torch.cat([encoded[pairs[k][0]][1] for k in batch])
            feat_j = torch.cat([encoded[pairs[k][1]][0] for k in batch])
            pos_j = torch.cat([encoded[pairs[k][1]][1] for k in batch])
            layers_i, layers_j = model.decode(feat_i, pos_i, feat_j, pos_j)
            pred_i, pred_j = model.heads(layers_i, layers_j, hw_i, hw_j)
            for row, k in enumerate(batch):
                i, j = pairs[k]
                results[k] = PairPrediction(
                    i,
                    j,
                    pred_i["pts3d"][row].float().cpu(),
                    pred_i["conf"][row].float().cpu(),
                    pred_j["pts3d_in_other_view"][row].float().cpu(),
                    pred_j["conf"][row].float().cpu(),
                )
    return [r for r in results if r is not None]
