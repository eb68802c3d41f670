"""A real RTSP server for tests: GStreamer's RTSP server streaming a clip, H.264 over RTP.

Run with the system Python (`/usr/bin/python3`, which has `gi`): `rtsp_server.py PORT CLIP`. It
prints "ready" once it listens and serves rtsp://127.0.0.1:PORT/clip until killed. The clip is
re-encoded with x264 (zero latency); `avidemux ! h264parse` without re-encoding fails to preroll on
some files (environment-notes.md).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = ("( filesrc location={clip} ! decodebin ! videoconvert ! "
          "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )")


def main() -> None:
    port, clip = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH.format(clip=clip))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
