//! Tests that cannot run their real peer.
//!
//! A test that needs a third-party program (Chromium, coturn, miniupnpd), root (network
//! namespaces) or a free well-known port calls [`skip`] and returns when it is missing. On a
//! developer's machine that prints a `SKIPPED` line; under CI (`CI=true`) it panics, because a
//! skipped test is not a pass and `.ci/run` installs every peer. Each skip is also appended to
//! the file named by `PEERCAM_SKIP_LOG`, which `scripts/test` counts and prints.

use std::io::Write as _;

/// Whether this run is CI, where a test must not skip (`CI` is `true` or `1`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// Records that `test` cannot run here because of `why`. Panics under CI.
///
/// # Panics
/// When [`in_ci`] is true: the missing peer is a failure there.
#[allow(clippy::print_stderr)]
pub fn skip(test: &str, why: &str) {
    assert!(
        !in_ci(),
        "{test} cannot run its real peer under CI: {why} (.ci/run installs every peer)"
    );
    eprintln!("SKIPPED {test}: {why}");
    if let Some(path) = std::env::var_os("PEERCAM_SKIP_LOG") {
        let line = format!("{test}: {why}\n");
        // Best effort: a log that cannot be written only loses the count.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
