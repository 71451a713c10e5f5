//! The CMU's metrics (H.626.4 6.1.14, network management; docs/metrics.md), served in the
//! Prometheus text format at `GET /metrics` on `metrics_listen` (plain HTTP, off by default;
//! docs/security.md says who may read it). Counters are atomics bumped where the event
//! happens; presence and node links are read from the platform at scrape time.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use peercam_net::metrics::{Counter, HttpMetrics, Registry};

/// Route classes of `peercam_cmu_http_requests_total` (a fixed list: labels never carry
/// paths, ids or names).
const CLASSES: &[&str] = &[
    "login", "devices", "play", "alarms", "admin", "platform", "web", "other",
];

fn classify(path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return if path.starts_with("/platform/") {
            "platform"
        } else if path.starts_with("/api/") {
            "other"
        } else {
            "web"
        };
    };
    if rest.starts_with("login") || rest.starts_with("logout") || rest.starts_with("signup") {
        "login"
    } else if rest.starts_with("admin/") {
        "admin"
    } else if rest.starts_with("alarms") {
        "alarms"
    } else if rest.starts_with("devices/") && (rest.ends_with("/play") || rest.contains("/play")) {
        "play"
    } else if rest.starts_with("devices") {
        "devices"
    } else {
        "other"
    }
}

/// What the CMU counts.
pub(crate) struct CmuMetrics {
    pub(crate) registry: Arc<Registry>,
    pub(crate) http: Arc<HttpMetrics>,
    pub(crate) logins_ok: Counter,
    pub(crate) logins_failed: Counter,
    pub(crate) tokens_minted: Counter,
    pub(crate) plays_granted: Counter,
    pub(crate) plays_refused: Counter,
    pub(crate) db_errors: Counter,
    pub(crate) faults_raised: Counter,
    pub(crate) webhook_failures: Counter,
    pub(crate) fault_alerts_dropped: Counter,
}

impl CmuMetrics {
    /// The registry with every CMU series; `audit_rows` is the store's count of audit rows
    /// written.
    pub(crate) fn new(audit_rows: Arc<AtomicU64>) -> Self {
        let r = Registry::new("cmu");
        let http = HttpMetrics::new(
            &r,
            "peercam_cmu_http_requests_total",
            "peercam_cmu_http_request_duration_seconds",
            CLASSES,
            classify,
        );
        let logins = "Login attempts, by result.";
        let plays = "8.4 play checks of a token presented to a device, by verdict.";
        r.counter_fn(
            "peercam_cmu_audit_rows_total",
            "Audit log rows written.",
            &[],
            move || audit_rows.load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        Self {
            logins_ok: r.counter("peercam_cmu_logins_total", logins, &[("result", "ok")]),
            logins_failed: r.counter("peercam_cmu_logins_total", logins, &[("result", "failed")]),
            tokens_minted: r.counter(
                "peercam_cmu_play_tokens_minted_total",
                "8.4 one-time play tokens minted (live, playback, services).",
                &[],
            ),
            plays_granted: r.counter(
                "peercam_cmu_play_checks_total",
                plays,
                &[("verdict", "granted")],
            ),
            plays_refused: r.counter(
                "peercam_cmu_play_checks_total",
                plays,
                &[("verdict", "refused")],
            ),
            db_errors: r.counter(
                "peercam_cmu_db_errors_total",
                "Requests answered with a database error (busy, unavailable, failed).",
                &[],
            ),
            faults_raised: r.counter(
                "peercam_cmu_faults_raised_total",
                "6.1.14 faults raised.",
                &[],
            ),
            webhook_failures: r.counter(
                "peercam_cmu_fault_webhook_failures_total",
                "Fault webhook deliveries given up after their retries.",
                &[],
            ),
            fault_alerts_dropped: r.counter(
                "peercam_cmu_fault_alerts_dropped_total",
                "Fault alert SMS to the operator not sent: over the hourly budget or the gateway failed.",
                &[],
            ),
            http,
            registry: r,
        }
    }

    /// Adds the series read from the running CMU at scrape time.
    pub(crate) fn watch(&self, st: &crate::Shared) {
        let weak = Arc::downgrade(st);
        self.registry.gauge_fn(
            "peercam_cmu_devices_online",
            "Devices registered with some SCU node now.",
            &[],
            move || {
                weak.upgrade()
                    .map_or(0.0, |s| s.platform.online_count() as f64)
            },
        );
        let weak = Arc::downgrade(st);
        self.registry.gauge_fn(
            "peercam_cmu_scu_nodes",
            "SCU nodes with a live link (Sc/Sm) to this CMU.",
            &[],
            move || {
                weak.upgrade()
                    .map_or(0.0, |s| s.platform.node_count() as f64)
            },
        );
        let weak = Arc::downgrade(st);
        self.registry.gauge_fn(
            "peercam_cmu_faults_open",
            "6.1.14 faults raised and not yet cleared or resolved.",
            &[],
            move || {
                weak.upgrade().map_or(0.0, |s| {
                    s.faults_open.load(std::sync::atomic::Ordering::Relaxed) as f64
                })
            },
        );
    }
}

/// Marks a response that failed on the database (counted in `peercam_cmu_db_errors_total`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DbFailed;

/// Counts responses marked [`DbFailed`].
pub(crate) fn count_db_errors(router: axum::Router, c: Counter) -> axum::Router {
    router.layer(axum::middleware::map_response(
        move |resp: axum::response::Response| {
            let c = c.clone();
            async move {
                if resp.extensions().get::<DbFailed>().is_some() {
                    c.inc();
                }
                resp
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn route_classes() {
        assert_eq!(classify("/api/v1/login"), "login");
        assert_eq!(classify("/api/v1/devices/PC-1/play"), "play");
        assert_eq!(classify("/api/v1/devices"), "devices");
        assert_eq!(classify("/api/v1/admin/faults"), "admin");
        assert_eq!(classify("/platform/v1/scu"), "platform");
        assert_eq!(classify("/"), "web");
    }
}
