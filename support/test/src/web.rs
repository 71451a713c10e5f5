//! Running the browser scenarios of `web-tests/` (node + playwright-core + Debian's
//! Chromium) from Rust tests and benches.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Why the browser tests cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// `node --version` did not run.
    #[error("node is not installed")]
    Node,
    /// The Chromium binary (`PEERCAM_CHROMIUM`, default `/usr/bin/chromium`) is absent.
    #[error("{0} is missing (apt-get install chromium)")]
    Chromium(String),
    /// `npm ci` has not been run in `web-tests/`.
    #[error("web-tests/node_modules is missing (npm ci --prefix web-tests)")]
    NodeModules,
}

/// The `web-tests` directory, or why the browser tests cannot run here (node, Chromium or
/// the npm packages missing; `.ci/run` installs them).
pub fn web_tests() -> Result<PathBuf, Unavailable> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web-tests");
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err(Unavailable::Node);
    }
    let chromium = std::env::var("PEERCAM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(Unavailable::Chromium(chromium));
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(Unavailable::NodeModules);
    }
    Ok(dir)
}

/// The `web-tests` directory for `test`, or `None` after [`crate::skip`] said why the browser
/// cannot run here (a failure under CI).
pub fn web_tests_or_skip(test: &str) -> Option<PathBuf> {
    match web_tests() {
        Ok(d) => Some(d),
        Err(why) => {
            crate::skip(test, &why.to_string());
            None
        }
    }
}

/// Runs `node web-tests/<script>` with `env` (through `wrap`, e.g. `ip netns exec NS`, when
/// given); returns its JSON line. Panics, with its output, if it failed.
pub async fn scenario(
    dir: &Path,
    script: &str,
    env: &[(&str, String)],
    wrap: Option<std::process::Command>,
) -> Value {
    let mut cmd = match wrap {
        Some(w) => tokio::process::Command::from(w),
        None => tokio::process::Command::new("node"),
    };
    cmd.arg(dir.join(script))
        .current_dir(dir)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} took over 300 s"))
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("{script} printed no JSON line\nstdout: {stdout}\nstderr: {stderr}")
        });
    tracing_free_log(script, &json);
    assert!(
        out.status.success() && json["ok"] == true,
        "{script} failed: {}\nsteps: {}\nstderr: {stderr}",
        json["error"].as_str().unwrap_or("?"),
        json["steps"]
    );
    json
}

#[allow(clippy::print_stderr)]
fn tracing_free_log(script: &str, json: &Value) {
    eprintln!("{script}: {json}");
}
