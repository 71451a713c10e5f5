# A stand-in for a third-party RTSP camera (GStreamer's RTSP server): live H.264 test video and
# a sine tone of a given frequency as G.711 mu-law, A-law, G.722 or AAC-LC (RTP mpeg4-generic,
# RFC 3640), on rtsp://127.0.0.1:PORT/cam
# usage: /usr/bin/python3 gst_camera.py PORT CODEC FREQ     (CODEC: pcmu, pcma, g722 or aac)
import sys, gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
port, codec, freq = sys.argv[1], sys.argv[2], sys.argv[3]
audio = {
    'pcmu': 'audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0',
    'pcma': 'audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8',
    'g722': 'audio/x-raw,rate=16000,channels=1 ! avenc_g722 ! rtpg722pay name=pay1 pt=9',
    'aac': 'audio/x-raw,rate=16000,channels=1 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97',
}[codec]
srv = GstRtspServer.RTSPServer()
srv.set_address('127.0.0.1')
srv.set_service(port)
f = GstRtspServer.RTSPMediaFactory()
f.set_launch(
    '( videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=25/1,format=I420 '
    '! openh264enc gop-size=25 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 '
    'audiotestsrc is-live=true wave=sine freq=%s volume=0.5 ! audioconvert ! audioresample '
    '! %s )' % (freq, audio))
f.set_shared(True)
srv.get_mount_points().add_factory('/cam', f)
srv.attach(None)
GLib.MainLoop().run()
