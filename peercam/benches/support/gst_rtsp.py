# GStreamer's RTSP server with one shared media (the comparison server of docs/benchmarks.md).
# usage: /usr/bin/python3 gst_rtsp.py PORT CLIP.mp4
import sys, gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
srv = GstRtspServer.RTSPServer()
srv.set_address('127.0.0.1')
srv.set_service(sys.argv[1])
f = GstRtspServer.RTSPMediaFactory()
f.set_launch('( filesrc location=%s ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )' % sys.argv[2])
f.set_shared(True)
srv.get_mount_points().add_factory('/test', f)
srv.attach(None)
GLib.MainLoop().run()
