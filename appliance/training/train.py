"""Episodic prototypical fine-tuning of the EfficientNet-Lite0 embedding net.

Every step draws two episodes:

* a **camera episode**: frames of the fixed bed camera (bedcam_p1, normal printing before any failure:
  the hard negatives) and the same camera's frames with a failure region pasted in (crops of the YOLO
  failure boxes and of failure photos). Both the global embeddings (frame prototypes) and the patch
  embeddings (cells inside the pasted box vs the rest) get a prototypical loss;
* a **web episode**: ok and failure photos from the web sources.

Support half -> class prototypes (mean, L2-normalised), query half classified by scaled cosine. All
images go through augmentation that mimics fixed printer cameras: crops, lighting, colour cast,
grey-scale (IR cameras), blur, noise and JPEG.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from appliance.training.backbone import EmbeddingNet
from appliance.training.data import Sample, box_cells, failure_crops, load_rgb, paste_failure

logger = logging.getLogger(__name__)

FROZEN_BLOCKS = 8  # stem and the first blocks keep their ImageNet weights (and run without gradients)


def augment(rgb: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One camera-like view of ``rgb`` at ``size`` (width, height)."""
    h, w = rgb.shape[:2]
    s = rng.uniform(0.8, 1.0)
    cw, ch = int(w * s), int(h * s)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = cv2.resize(rgb[y0 : y0 + ch, x0 : x0 + cw], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    img = img * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)  # exposure
    img = img * rng.uniform(0.85, 1.15, size=3)  # white balance
    if rng.random() < 0.15:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)  # IR / grey cameras
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(2, 8), img.shape)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


class EpisodeSampler:
    """Holds the training images in memory (long side <= 320 px) and draws episodes."""

    def __init__(self, samples: list[Sample], size: tuple[int, int], seed: int):
        self.size = size
        self.rng = np.random.default_rng(seed)

        def small(s: Sample) -> np.ndarray:
            rgb = load_rgb(s.path)
            f = 320 / max(rgb.shape[:2])
            return cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else rgb

        self.camera = [small(s) for s in samples if s.source == "bedcam_p1" and s.label == "ok"]
        self.web_ok = [small(s) for s in samples if s.source.startswith("web_") and s.label == "ok"]
        self.web_fail = [small(s) for s in samples if s.source.startswith("web_") and s.label == "failure"]
        self.crops = [
            cv2.resize(
                c, None, fx=160 / max(c.shape[:2]), fy=160 / max(c.shape[:2]), interpolation=cv2.INTER_AREA
            )
            for c in failure_crops(samples)
        ]
        logger.info(
            "episodes from %d camera frames, %d web ok, %d web failures, %d failure crops",
            len(self.camera), len(self.web_ok), len(self.web_fail), len(self.crops),
        )  # fmt: skip

    def _pick(self, pool: list[np.ndarray], n: int) -> list[np.ndarray]:
        return [pool[i] for i in self.rng.integers(0, len(pool), n)]

    def camera_episode(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n normal + n pasted-failure frames -> images (2n, H, W, 3), labels (2n,), cell masks (2n, P)."""
        rows, cols = -(-self.size[1] // 32), -(-self.size[0] // 32)
        images, labels, masks = [], [], []
        for frame in self._pick(self.camera, 2 * n):
            label = len(images) >= n
            view = augment(frame, self.size, self.rng)
            mask = np.zeros(rows * cols, np.float32)
            if label:
                crop = augment(self._pick(self.crops, 1)[0], (96, 96), self.rng)
                view, box = paste_failure(view, crop, self.rng)
                mask = box_cells(box, (rows, cols))
            images.append(view)
            labels.append(int(label))
            masks.append(mask)
        return np.stack(images), np.array(labels), np.stack(masks)

    def web_episode(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        ok = [augment(i, self.size, self.rng) for i in self._pick(self.web_ok + self.camera, n)]
        fail = [augment(i, self.size, self.rng) for i in self._pick(self.web_fail, n)]
        return np.stack(ok + fail), np.array([0] * n + [1] * n)


def proto_loss(emb: torch.Tensor, labels: torch.Tensor, scale: float = 16.0) -> torch.Tensor:
    """Prototypical loss: even indices of each class are support, odd ones query."""
    idx = torch.arange(len(labels))
    support, query = idx % 2 == 0, idx % 2 == 1
    protos = torch.stack([F.normalize(emb[support & (labels == c)].mean(0), dim=0) for c in (0, 1)])
    logits = scale * emb[query] @ protos.T
    return F.cross_entropy(logits, labels[query])


def patch_loss(patches: torch.Tensor, masks: torch.Tensor, scale: float = 16.0) -> torch.Tensor:
    """Cells inside pasted failures vs all other cells, prototypes from the even frames."""
    frames = torch.arange(len(patches))
    sup = (frames % 2 == 0)[:, None].expand_as(masks)
    flat, m, s = patches.reshape(-1, patches.shape[-1]), masks.reshape(-1) > 0.5, sup.reshape(-1)
    if not (m & s).any() or not (m & ~s).any():
        return patches.sum() * 0.0
    protos = torch.stack([F.normalize(flat[s & ~m].mean(0), dim=0), F.normalize(flat[s & m].mean(0), dim=0)])
    logits = scale * flat[~s] @ protos.T
    target = m[~s].long()
    weight = torch.tensor([1.0, float((~m[~s]).sum() / max(int(m[~s].sum()), 1))]).clamp(max=10.0)
    return F.cross_entropy(logits, target, weight=weight)


def train(
    net: EmbeddingNet, samples: list[Sample], seed: int, steps: int, n: int = 8, lr: float = 3e-4
) -> None:
    """Fine-tune ``net`` in place for ``steps`` steps (each a camera and a web episode of 2n frames)."""
    sampler = EpisodeSampler(samples, net.input_size, seed)
    bb = net.backbone
    for module in [bb._conv_stem, bb._bn0, *bb._blocks[:FROZEN_BLOCKS]]:
        for p in module.parameters():
            p.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    net.train()
    # BatchNorm statistics stay as trained on ImageNet (small episodes would make them noisy)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    start = time.monotonic()
    for step in range(steps):
        cam_x, cam_y, cam_m = sampler.camera_episode(n)
        web_x, web_y = sampler.web_episode(n)
        x = torch.from_numpy(np.concatenate([cam_x, web_x]))
        with torch.no_grad():
            h = bb._swish(bb._bn0(bb._conv_stem(net.normalise(x))))
            for block in bb._blocks[:FROZEN_BLOCKS]:
                h = block(h)
        for block in bb._blocks[FROZEN_BLOCKS:]:
            h = block(h)
        fmap = net.proj(bb._swish(bb._bn1(bb._conv_head(h))))
        emb, patches = net.pooled(fmap)
        k = len(cam_x)
        loss = (
            proto_loss(emb[:k], torch.from_numpy(cam_y))
            + proto_loss(emb[k:], torch.from_numpy(web_y))
            + patch_loss(patches[:k], torch.from_numpy(cam_m))
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0 or step == steps - 1:
            logger.info("step %d/%d loss %.3f (%.0f s)", step, steps, loss.item(), time.monotonic() - start)
    net.eval()
