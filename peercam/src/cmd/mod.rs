//! Subcommands. Each loads its configuration, builds the unit and runs it until Ctrl-C.

pub(crate) mod admin;
pub(crate) mod alarms;
pub(crate) mod billing;
pub(crate) mod cmu;
pub(crate) mod cs;
pub(crate) mod cu;
pub(crate) mod demo;
pub(crate) mod equipment;
pub(crate) mod fleet;
pub(crate) mod loadgen;
pub(crate) mod mtu;
pub(crate) mod nvr;
pub(crate) mod plan;
pub(crate) mod platform;
pub(crate) mod pu;
pub(crate) mod rec;
pub(crate) mod release;
pub(crate) mod scu;
pub(crate) mod share;
pub(crate) mod snapshots;
pub(crate) mod totp;

use std::path::Path;

use anyhow::Context as _;
use peercam_net::Shutdown;
use serde::de::DeserializeOwned;

/// Logs go to stderr; `PEERCAM_LOG` filters (default `info`, without the AAC decoder's own
/// per-frame messages: the pull reports dropped AAC frames itself, rate-limited).
/// `PEERCAM_LOG_FORMAT=json` writes one JSON object per line instead of text, for log
/// collectors (docs/deployment.md); any other value, or none, is text.
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEERCAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,symphonia_codec_aac=off"));
    let json = std::env::var("PEERCAM_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Reads a TOML configuration file into a unit's typed config; unknown keys are errors.
pub(crate) fn load_config<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A shutdown signal triggered by Ctrl-C or SIGTERM.
pub(crate) fn shutdown_on_signal() -> Shutdown {
    let s = Shutdown::new();
    let t = s.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        t.trigger();
    });
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn sample(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config")
            .join(name)
    }

    #[test]
    fn sample_configs_parse() {
        let _: peercam_cmu::Config = super::load_config(&sample("cmu.toml")).unwrap();
        let _: peercam_scu::Config = super::load_config(&sample("scu.toml")).unwrap();
        let _: peercam_pu::Config = super::load_config(&sample("pu.toml")).unwrap();
        let _: peercam_nvr::Config = super::load_config(&sample("nvr.toml")).unwrap();
        let _: super::platform::PlatformConfig =
            super::load_config(&sample("platform.toml")).unwrap();
    }

    #[test]
    fn cmu_database_url_and_its_older_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cmu.toml");
        let rest = "scu_secrets = [\"0123456789abcdef\"]\n[sms]\nkind = \"outbox\"\ndir = \"o\"\n";
        for key in ["database_url", "database"] {
            std::fs::write(&p, format!("{key} = \"postgres://u@h/db\"\n{rest}")).unwrap();
            let c: peercam_cmu::Config = super::load_config(&p).unwrap();
            assert_eq!(c.database_url, "postgres://u@h/db", "{key}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pu.toml");
        std::fs::write(
            &p,
            "identity = \"x\"\nscu_url = \"wss://a/\"\nplatform_ca = \"c\"\nreconect_max_ms = 5\n",
        )
        .unwrap();
        let err = super::load_config::<peercam_pu::Config>(&p).unwrap_err();
        assert!(format!("{err:#}").contains("reconect_max_ms"), "{err:#}");
    }
}
