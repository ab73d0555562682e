"""Frame sources: where frames come from. ``build_source`` picks the plugin by config ``type``."""

from __future__ import annotations

from appliance.config.sources import (
    CsiSourceConfig,
    HttpSnapshotSourceConfig,
    RtspSourceConfig,
    SourceConfig,
    UsbSourceConfig,
)
from appliance.sources.base import Frame, FrameSource, SourceState, SourceStatus


def build_source(
    name: str,
    config: SourceConfig,
    analysis_size: tuple[int, int] | None = None,
) -> FrameSource:
    """Create (but do not open) the source for a camera's ``source`` table.

    ``analysis_size`` is the model's input size (width, height): the CSI camera asks its ``lores``
    stream for it so the ISP does the resize.
    """
    if isinstance(config, RtspSourceConfig):
        from appliance.sources.rtsp import RtspSource

        return RtspSource(name, config)
    if isinstance(config, UsbSourceConfig):
        from appliance.sources.usb import UsbSource

        return UsbSource(name, config)
    if isinstance(config, HttpSnapshotSourceConfig):
        from appliance.sources.http_snapshot import HttpSnapshotSource

        return HttpSnapshotSource(name, config)
    if isinstance(config, CsiSourceConfig):
        from appliance.sources.csi import CsiSource

        return CsiSource(name, config, analysis_size)
    from appliance.sources.replay import ReplaySource

    return ReplaySource(name, config)


__all__ = ["Frame", "FrameSource", "SourceState", "SourceStatus", "build_source"]
