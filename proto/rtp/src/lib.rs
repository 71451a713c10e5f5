//! peercam-rtp: work in progress.
