#!/usr/bin/python3
"""A tiny RTSP server for the source tests, built on GStreamer's RTSP server (Debian packages).

Run it with the *system* interpreter, which is the one that can import ``gi``::

    /usr/bin/python3 tests/rtsp_server.py --file clip.mp4 --port 8554 [--path /test] [--frozen]

It serves an H.264 ``.mp4`` at ``rtsp://127.0.0.1:PORT/PATH`` in real time without re-encoding
(``filesrc ! qtdemux ! h264parse ! valve ! rtph264pay``). Every client gets its own pipeline
(``set_shared(False)``), so a new connection starts at the beginning of the file.

Signals drive the failure modes the tests need:

- ``SIGUSR1`` freezes every stream: the ``valve`` drops all buffers, so clients keep their TCP
  connection but receive no more frames (a camera whose encoder hung). Clients that connect while
  frozen are frozen too.
- ``SIGUSR2`` thaws them again.
- ``SIGTERM``/``SIGINT`` stop the server; ``SIGKILL`` (the "server died" test) needs no help.

It prints ``READY <port>`` on stdout once it listens, so a test can wait for that line.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


class FreezableServer:
    """An RTSP server whose streams can be frozen and thawed through their ``valve``."""

    def __init__(self, path: str, port: int, mount: str, frozen: bool):
        self.frozen = frozen
        self.valves: list[Gst.Element] = []
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(port))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f'( filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 '
            "! valve name=gate drop=false "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory.set_shared(False)
        factory.connect("media-configure", self._on_media_configure)
        self.server.get_mount_points().add_factory(mount, factory)

    def _on_media_configure(self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia):
        valve = media.get_element().get_by_name("gate")
        if valve is not None:
            valve.set_property("drop", self.frozen)
            self.valves.append(valve)

    def set_frozen(self, frozen: bool) -> bool:
        self.frozen = frozen
        for valve in self.valves:
            valve.set_property("drop", frozen)
        print("FROZEN" if frozen else "THAWED", flush=True)
        return GLib.SOURCE_CONTINUE


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", required=True, help="H.264 .mp4 file to serve")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--path", default="/test", help="mount point (default /test)")
    parser.add_argument("--frozen", action="store_true", help="start with every stream frozen")
    args = parser.parse_args()

    Gst.init(None)
    server = FreezableServer(args.file, args.port, args.path, args.frozen)
    if server.server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR1, server.set_frozen, True)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGUSR2, server.set_frozen, False)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, stop_signal, lambda: loop.quit() or GLib.SOURCE_REMOVE)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
