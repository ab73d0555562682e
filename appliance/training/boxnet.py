"""The box model: EfficientNet-Lite0 with an anchor-free failure-box head (FCOS / YOLOv8 style).

Two levels of the backbone feed the head: the stride-16 map (end of block 10, 112 channels) and the
stride-32 map (block 15, 320 channels); the stem and blocks 0-10 stay frozen (ImageNet), so training
caches their output once per view of a photo. At every cell of both maps the head predicts an objectness logit
and the distances (left, top, right, bottom) from the cell centre to the box edges, in units of the
level's stride (softplus keeps them positive).

:class:`YoloExport` is the graph that gets exported: it takes what an Ultralytics YOLOv8 export takes
(``images``, float32 RGB NCHW in 0..1, letterboxed to a square ``size``) and returns what it returns
(``output0`` (1, 4 + classes, N): box centre x, centre y, width, height in input pixels, then one sigmoid
score per class), so :mod:`appliance.detector.yolo_detector` runs it like any YOLOv8 export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from appliance.training.backbone import MEAN, STD, load_backbone

STRIDES = (16, 32)
LEVEL_BLOCKS = (10, 15)  # last block of the stride-16 and stride-32 stages of EfficientNet-Lite0
LEVEL_CHANNELS = (112, 320)
FROZEN_BLOCKS = 11  # stem and blocks 0-10 (up to the stride-16 level) keep their ImageNet weights


class _Head(nn.Module):
    """One level: 3x3 conv + ReLU6, then 1x1 conv to (objectness, l, t, r, b)."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 3, padding=1)
        self.out = nn.Conv2d(width, 5, 1)
        nn.init.constant_(self.out.bias, 0.0)
        with torch.no_grad():
            self.out.bias[0] = -4.0  # prior objectness ~ 0.018: most cells hold no failure

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu6(self.conv(x)))


class BoxNet(nn.Module):
    """Normalised float NCHW (size x size) -> raw predictions (N, 5, A) over all cells of both levels.

    Channel 0 is the objectness logit, 1-4 the softplus-to-be (l, t, r, b) distances; ``points`` (A, 2)
    holds the cell centres in input pixels and ``strides`` (A,) each cell's stride."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.backbone = load_backbone((size, size))
        self.heads = nn.ModuleList(_Head(c) for c in LEVEL_CHANNELS)
        points, strides = [], []
        for stride in STRIDES:
            n = -(-size // stride)
            ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            points.append(torch.stack([xs.flatten(), ys.flatten()], 1).float() * stride + stride / 2)
            strides.append(torch.full((n * n,), float(stride)))
        self.register_buffer("points", torch.cat(points), persistent=False)
        self.register_buffer("strides", torch.cat(strides), persistent=False)

    def trainable(self) -> list[nn.Parameter]:
        """The parameters training moves: blocks after the frozen trunk up to the last level, the heads."""
        tail = [self.backbone._blocks[i] for i in range(FROZEN_BLOCKS, LEVEL_BLOCKS[-1] + 1)]
        return [p for module in [*tail, self.heads] for p in module.parameters()]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen part (stem and blocks up to the stride-16 level): normalised NCHW -> block-10 map."""
        bb = self.backbone
        with torch.no_grad():
            x = bb._swish(bb._bn0(bb._conv_stem(x)))
            for block in bb._blocks[:FROZEN_BLOCKS]:
                x = block(x)
        return x

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """Block-10 map -> raw predictions (N, 5, A)."""
        levels = [x]
        for idx in range(FROZEN_BLOCKS, LEVEL_BLOCKS[-1] + 1):
            x = self.backbone._blocks[idx](x)
        levels.append(x)
        outs = [head(level).flatten(2) for head, level in zip(self.heads, levels, strict=True)]
        return torch.cat(outs, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(x))

    def decode(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """raw (N, 5, A) -> (objectness logits (N, A), boxes (N, A, 4) as x0, y0, x1, y1 in input pixels)."""
        dist = F.softplus(raw[:, 1:5]) * self.strides  # (N, 4, A)
        px, py = self.points[:, 0], self.points[:, 1]
        boxes = torch.stack([px - dist[:, 0], py - dist[:, 1], px + dist[:, 2], py + dist[:, 3]], 2)
        return raw[:, 0], boxes


class YoloExport(nn.Module):
    """``images`` float32 (1, 3, S, S) RGB in 0..1 -> ``output0`` (1, 5, A): cx, cy, w, h (pixels), score."""

    def __init__(self, net: BoxNet):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images * 255.0 - MEAN) / STD
        logits, boxes = self.net.decode(self.net(x))
        xy = (boxes[..., :2] + boxes[..., 2:]) / 2
        wh = boxes[..., 2:] - boxes[..., :2]
        return torch.cat([xy, wh, torch.sigmoid(logits)[..., None]], 2).transpose(1, 2)


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - generalised IoU of matched (M, 4) x0, y0, x1, y1 boxes, per pair."""
    ix0, iy0 = torch.maximum(pred[:, 0], target[:, 0]), torch.maximum(pred[:, 1], target[:, 1])
    ix1, iy1 = torch.minimum(pred[:, 2], target[:, 2]), torch.minimum(pred[:, 3], target[:, 3])
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = area_p + area_t - inter + 1e-6
    iou = inter / union
    cx0, cy0 = torch.minimum(pred[:, 0], target[:, 0]), torch.minimum(pred[:, 1], target[:, 1])
    cx1, cy1 = torch.maximum(pred[:, 2], target[:, 2]), torch.maximum(pred[:, 3], target[:, 3])
    hull = (cx1 - cx0) * (cy1 - cy0) + 1e-6
    return 1 - (iou - (hull - union) / hull), iou.detach()


def assign(
    points: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor, radius: float = 2.5
) -> torch.Tensor:
    """For one image: the index of the box each cell learns ((A,), -1: background). A cell is positive
    for a box when its centre is inside the box and within ``radius`` strides of the box centre (FCOS
    centre sampling); of several, the smallest box wins."""
    if len(boxes) == 0:
        return torch.full((len(points),), -1, dtype=torch.long)
    px, py = points[:, None, 0], points[:, None, 1]
    inside = (px > boxes[:, 0]) & (px < boxes[:, 2]) & (py > boxes[:, 1]) & (py < boxes[:, 3])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    r = radius * strides[:, None]
    near = ((px - cx).abs() < r) & ((py - cy).abs() < r)
    # a box smaller than the centre region still gets its nearest cell of each level
    ok = inside & near
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand_as(ok)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(1)
    for s in strides.unique():
        level = (strides == s).nonzero().flatten()
        d = (points[level, None, 0] - cx).abs() + (points[level, None, 1] - cy).abs()
        nearest = level[d.argmin(0)]
        for b, cell in enumerate(nearest.tolist()):
            if not torch.isfinite(best_area[cell]):
                best[cell], best_area[cell] = b, 0.0
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def box_loss(net: BoxNet, raw: torch.Tensor, targets: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Focal objectness loss (target: the IoU of the cell's box, at least 0.5, for positives) plus
    2 x GIoU over the positives; normalised by the number of positives."""
    logits, boxes = net.decode(raw)
    obj_target = torch.zeros_like(logits)
    giou_terms = []
    for i, gt in enumerate(targets):
        idx = assign(net.points, net.strides, gt)
        pos = (idx >= 0).nonzero().flatten()
        if len(pos):
            loss, iou = giou_loss(boxes[i, pos], gt[idx[pos]])
            giou_terms.append(loss)
            obj_target[i, pos] = iou.clamp(min=0.5)
    n_pos = max(sum(len(t) for t in giou_terms), 1)
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, obj_target, reduction="none")
    focal = (bce * (obj_target - p).abs().pow(2.0)).sum() / n_pos
    giou = torch.cat(giou_terms).sum() / n_pos if giou_terms else logits.sum() * 0
    parts = {"obj": round(float(focal.detach()), 4), "giou": round(float(giou.detach()), 4), "pos": n_pos}
    return focal + 2.0 * giou, parts
