//! peercam-rtsp: work in progress.
