#!/usr/bin/python3
"""A stand-in for a third-party ONVIF camera with an audio back channel (GStreamer's ONVIF
RTSP server, gst-rtsp-server's RTSPOnvifServer): live H.264 test video on
rtsp://127.0.0.1:PORT/cam, and, for a client that DESCRIBEs with
`Require: www.onvif.org/ver20/backchannel`, an `a=sendonly` PCMU track whose sound is
decoded and appended to OUT as raw 16-bit little-endian PCM at 8 kHz (the camera's speaker).

Usage: gst_onvif_camera.py PORT OUT
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, out = sys.argv[1], sys.argv[2]
Gst.init(None)
srv = GstRtspServer.RTSPOnvifServer.new()
srv.set_address("127.0.0.1")
srv.set_service(port)
f = GstRtspServer.RTSPOnvifMediaFactory.new()
f.set_launch(
    "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1,format=I420 "
    "! openh264enc gop-size=15 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
f.set_backchannel_launch(
    '( capsfilter caps="application/x-rtp, media=audio, payload=0, clock-rate=8000, '
    'encoding-name=PCMU" name=depay_backchannel ! rtppcmudepay ! mulawdec '
    "! filesink location=%s append=true buffer-mode=unbuffered async=false sync=false )" % out
)
f.set_shared(False)
f.set_media_gtype(GstRtspServer.RTSPOnvifMedia)
srv.get_mount_points().add_factory("/cam", f)
srv.attach(None)
print("listening", flush=True)
GLib.MainLoop().run()
