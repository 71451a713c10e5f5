#!/usr/bin/python3
"""Talk to an RTSP camera over the ONVIF audio back channel with GStreamer's rtspsrc.

Usage: gst_backchannel.py URL SECONDS FREQ

rtspsrc backchannel=onvif sends `Require: www.onvif.org/ver20/backchannel` and sets up the
camera's `a=sendonly` audio track; gst-launch cannot feed it (it takes buffers through the
`push-backchannel-buffer` action signal), so this script does: a second pipeline makes the
RTP packets (audiotestsrc ! mulawenc ! rtppcmupay ! appsink) and each is pushed into rtspsrc.
Prints `pushed N` and exits 0 when all were accepted. The video may take up to
VIDEO_WITHIN seconds to start (a loaded machine, the camera's encoder starting); the script
says on stderr when it came, or that it did not.
"""
import os
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

url, seconds, freq = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
VIDEO_WITHIN = 30
started = time.monotonic()
Gst.init(None)
print(f"GStreamer ready after {time.monotonic() - started:.1f} s", file=sys.stderr)
loop = GLib.MainLoop()
state = {"keep": [], "bc": None, "pushed": 0, "failed": 0, "video": 0, "sender": None}

play = Gst.Pipeline.new("play")
src = Gst.ElementFactory.make("rtspsrc")
src.set_property("location", url)
src.set_property("backchannel", "onvif")
src.set_property("protocols", "tcp")
src.set_property("latency", 0)
play.add(src)


def select_stream(_src, idx, caps):
    s = caps.get_structure(0)
    if s.has_field("a-sendonly"):
        state["bc"] = idx
        print(f"back channel: stream {idx} {caps.to_string()}", file=sys.stderr)
    return True


def pad_added(_src, pad):
    sink = Gst.ElementFactory.make("fakesink")
    sink.set_property("sync", False)
    sink.set_property("signal-handoffs", True)

    def handoff(*_):
        state["video"] += 1
        if state["video"] == 1:
            print(f"first video after {time.monotonic() - started:.1f} s", file=sys.stderr)
            GLib.timeout_add(300, start_sender)

    sink.connect("handoff", handoff)
    play.add(sink)
    sink.sync_state_with_parent()
    pad.link(sink.get_static_pad("sink"))


def new_sample(sink):
    sample = sink.emit("pull-sample")
    # The action signal takes the sample (the RTP packet and its caps) and unrefs it (transfer
    # full), which PyGObject does not know: keep our wrapper alive and never release it (the
    # script ends with os._exit), or the sample would be freed twice.
    state["keep"].append(sample)
    ret = src.emit("push-backchannel-sample", state["bc"], sample)
    if ret == Gst.FlowReturn.OK:
        state["pushed"] += 1
    else:
        state["failed"] += 1
    return Gst.FlowReturn.OK


def start_sender():
    if state["sender"] is not None or state["bc"] is None:
        if state["bc"] is None:
            print("no back channel offered", file=sys.stderr)
            loop.quit()
        return False
    n = int(seconds * 50)
    sender = Gst.parse_launch(
        f"audiotestsrc is-live=true wave=sine freq={freq} volume=0.5 samplesperbuffer=160 num-buffers={n} "
        "! audio/x-raw,rate=8000,channels=1,format=S16LE ! mulawenc "
        "! rtppcmupay pt=0 min-ptime=20000000 max-ptime=20000000 ! appsink name=out emit-signals=true sync=false"
    )
    out = sender.get_by_name("out")
    out.connect("new-sample", new_sample)
    bus = sender.get_bus()
    bus.add_signal_watch()
    bus.connect("message::eos", lambda *_: GLib.timeout_add(500, loop.quit))
    state["sender"] = sender
    sender.set_state(Gst.State.PLAYING)
    return False


def on_error(_bus, msg):
    err, dbg = msg.parse_error()
    print(f"error: {err} {dbg}", file=sys.stderr)
    loop.quit()


src.connect("select-stream", select_stream)
src.connect("pad-added", pad_added)
bus = play.get_bus()
bus.add_signal_watch()
bus.connect("message::error", on_error)
play.set_state(Gst.State.PLAYING)
def no_video():
    if state["video"] == 0:
        print(f"no video from the camera within {VIDEO_WITHIN} s: nothing was sent", file=sys.stderr)
        loop.quit()
    return False


# Phases: the video within VIDEO_WITHIN s, then the talk; a last guard for the whole.
GLib.timeout_add(VIDEO_WITHIN * 1000, no_video)
GLib.timeout_add(int((VIDEO_WITHIN + seconds + 10) * 1000), loop.quit)
loop.run()
if state["sender"] is not None:
    state["sender"].set_state(Gst.State.NULL)
play.set_state(Gst.State.NULL)
print(f"pushed {state['pushed']} failed {state['failed']} video {state['video']}", flush=True)
sys.stderr.flush()
os._exit(0 if state["pushed"] > 0 and state["failed"] == 0 else 1)
