"""Layerwatch image: a stand-in for pykms (kms++), which picamera2 imports for its DRM screen preview.

Neither Debian 13 nor PyPI has kms++'s Python binding (PyPI's "kms" is an unrelated package), and
picamera2 imports it at ``import picamera2``. The appliance is headless and never starts a preview:
the pixel format names exist, and opening a display raises.
"""


class _Formats:
    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return name


PixelFormat = _Formats()


class Card:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("no DRM preview in the Layerwatch image (pykms is a stand-in)")


ResourceManager = Card
