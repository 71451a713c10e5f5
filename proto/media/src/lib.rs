//! peercam-media: work in progress.
