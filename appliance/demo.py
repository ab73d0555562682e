"""The embedded default: the bundled replay clip, the shipped model, no broker, no cloud.

Timings are shortened so the whole story (watching -> suspect -> verification burst -> failure ->
cooldown) plays out in the clip's few seconds; a real printer uses the defaults of the config tree.
The clip's web photos are not from a calibrated camera and there is no cloud judge, so frames the
model is unsure of count as failure votes (``uncertain_counts_as_failure``), the cautious setting.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from appliance.config.model import (
    CameraConfig,
    DecisionConfig,
    LayerwatchConfig,
    ServiceConfig,
)
from appliance.config.sources import ReplaySourceConfig

DEMO_CLIP = Path(__file__).resolve().parent / "defaults" / "demo.mp4"


def demo_config(rate_fps: float = 10.0) -> LayerwatchConfig:
    state_dir = Path(tempfile.gettempdir()) / "layerwatch-demo"
    return LayerwatchConfig(
        service=ServiceConfig(state_dir=state_dir, analysis_interval_s=0.0, log_level="warning"),
        cameras=[
            CameraConfig(
                name="demo",
                source=ReplaySourceConfig(path=DEMO_CLIP, rate_fps=rate_fps),
                # no cloud judge and no calibration here: unsure frames count as failure votes
                decision=DecisionConfig(
                    verify_interval_s=0.0, cooldown_s=30.0, uncertain_counts_as_failure=True
                ),
            )
        ],
    )
