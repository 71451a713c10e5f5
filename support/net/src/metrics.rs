//! Metrics of one unit in the Prometheus text format (H.626.4 6.1.14, network management).
//!
//! Each unit owns one [`Registry`]; nothing is global, so several units in one process (the
//! demo, `peercam platform`, the tests) never mix their figures. Counters and gauges are
//! atomics (a relaxed add on the hot path, no allocation); figures a unit already keeps are
//! read at scrape time through closures ([`Registry::counter_fn`], [`Registry::gauge_fn`]).
//! Labels are fixed when a series is registered and take values from small closed sets
//! (route classes, status classes): never device ids, user names or addresses.
//!
//! [`serve`] answers `GET /metrics` on a listen address of its own (`metrics_listen` in each
//! unit's configuration, off by default; docs/security.md says who may read it).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::{NetError, Shutdown};

/// The content type of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The count now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Takes one away.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The value now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram of durations with fixed buckets (cumulative at render time).
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistInner>);

#[derive(Debug)]
struct HistInner {
    bounds: &'static [f64],
    /// One count per bound, plus the overflow (`+Inf`) last; not cumulative.
    counts: Vec<AtomicU64>,
    /// Sum of the observations in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self(Arc::new(HistInner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }))
    }

    /// Records one observation of `secs` seconds.
    pub fn observe(&self, secs: f64) {
        let i = self
            .0
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.0.bounds.len());
        if let Some(c) = self.0.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        // Saturating float-to-int conversion; negative durations count as zero.
        let us = (secs * 1e6).max(0.0) as u64;
        self.0.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// How many observations were made.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

type ReadFn = Box<dyn Fn() -> f64 + Send + Sync>;
type TextFn = Box<dyn Fn() -> String + Send + Sync>;

enum Value {
    Counter(Counter),
    Gauge(Gauge),
    Fn(ReadFn),
    Histogram(Histogram),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

struct Series {
    labels: String,
    value: Value,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    series: Vec<Series>,
}

/// The metrics of one unit.
pub struct Registry {
    families: Mutex<Vec<Family>>,
    extra: Mutex<Vec<TextFn>>,
    started: Instant,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry for `unit` (`cmu`, `scu`, ...) with the build information and uptime every
    /// unit exports.
    pub fn new(unit: &'static str) -> Arc<Self> {
        let r = Arc::new(Self {
            families: Mutex::new(Vec::new()),
            extra: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let build = r.gauge(
            "peercam_build_info",
            "Always 1; the unit and the peercam version as labels.",
            &[("unit", unit), ("version", env!("CARGO_PKG_VERSION"))],
        );
        build.set(1);
        let started = r.started;
        r.gauge_fn(
            "peercam_uptime_seconds",
            "Seconds since the unit started.",
            &[("unit", unit)],
            move || started.elapsed().as_secs_f64(),
        );
        r
    }

    fn add(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&str, &str)],
        value: Value,
    ) {
        let labels = render_labels(labels);
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = fams.iter_mut().find(|f| f.name == name) {
            debug_assert!(f.kind == kind, "metric {name} registered with two types");
            f.series.push(Series { labels, value });
        } else {
            fams.push(Family {
                name,
                help,
                kind,
                series: vec![Series { labels, value }],
            });
        }
    }

    /// A counter series.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        let c = Counter::default();
        self.add(name, help, Kind::Counter, labels, Value::Counter(c.clone()));
        c
    }

    /// A gauge series.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        let g = Gauge::default();
        self.add(name, help, Kind::Gauge, labels, Value::Gauge(g.clone()));
        g
    }

    /// A counter series read from a figure the unit already keeps.
    pub fn counter_fn(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.add(name, help, Kind::Counter, labels, Value::Fn(Box::new(read)));
    }

    /// A gauge series read at scrape time.
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.add(name, help, Kind::Gauge, labels, Value::Fn(Box::new(read)));
    }

    /// A histogram series of durations in seconds.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        bounds: &'static [f64],
    ) -> Histogram {
        let h = Histogram::new(bounds);
        self.add(
            name,
            help,
            Kind::Histogram,
            labels,
            Value::Histogram(h.clone()),
        );
        h
    }

    /// Families a part of the unit renders itself (already in the text format, names of
    /// their own), appended to every scrape.
    pub fn text_fn(&self, render: impl Fn() -> String + Send + Sync + 'static) {
        self.extra
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(render));
    }

    /// The text exposition of every series.
    pub fn render(&self) -> String {
        let fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(4096);
        for f in fams.iter() {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for s in &f.series {
                match &s.value {
                    Value::Counter(c) => line(&mut out, f.name, "", &s.labels, c.get() as f64),
                    Value::Gauge(g) => line(&mut out, f.name, "", &s.labels, g.get() as f64),
                    Value::Fn(read) => line(&mut out, f.name, "", &s.labels, read()),
                    Value::Histogram(h) => {
                        let mut cum = 0u64;
                        for (i, c) in h.0.counts.iter().enumerate() {
                            cum += c.load(Ordering::Relaxed);
                            let le =
                                h.0.bounds
                                    .get(i)
                                    .map_or_else(|| "+Inf".to_owned(), |b| format!("{b}"));
                            let labels = join_labels(&s.labels, &format!("le=\"{le}\""));
                            line(&mut out, f.name, "_bucket", &labels, cum as f64);
                        }
                        let sum = h.0.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
                        line(&mut out, f.name, "_sum", &s.labels, sum);
                        line(&mut out, f.name, "_count", &s.labels, cum as f64);
                    }
                }
            }
        }
        drop(fams);
        for f in self.extra.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            out.push_str(&f());
        }
        out
    }
}

fn line(out: &mut String, name: &str, suffix: &str, labels: &str, v: f64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name}{suffix} {}", fmt_value(v));
    } else {
        let _ = writeln!(out, "{name}{suffix}{{{labels}}} {}", fmt_value(v));
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn join_labels(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a},{b}")
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"");
        for ch in v.chars() {
            match ch {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s
}

fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Status classes of [`HttpMetrics`].
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// HTTP requests of a unit counted by route class and status class, with a latency
/// histogram per route class. Route classes are a small fixed list the unit chooses; a
/// request's path is mapped to one by the unit's `classify`.
pub struct HttpMetrics {
    classes: Vec<(&'static str, [Counter; 5], Histogram)>,
    classify: fn(&str) -> &'static str,
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}

impl HttpMetrics {
    /// Registers `<prefix>_http_requests_total{class,status}` and
    /// `<prefix>_http_request_duration_seconds{class}` for each of `classes` (`classify`
    /// must answer one of them).
    pub fn new(
        registry: &Registry,
        requests: &'static str,
        duration: &'static str,
        classes: &[&'static str],
        classify: fn(&str) -> &'static str,
    ) -> Arc<Self> {
        let classes = classes
            .iter()
            .map(|c| {
                let counters = STATUS_CLASSES.map(|st| {
                    registry.counter(
                        requests,
                        "HTTP requests answered, by route class and status class.",
                        &[("class", c), ("status", st)],
                    )
                });
                let h = registry.histogram(
                    duration,
                    "Time to answer an HTTP request (to the response head), by route class.",
                    &[("class", c)],
                    LATENCY_BUCKETS,
                );
                (*c, counters, h)
            })
            .collect();
        Arc::new(Self { classes, classify })
    }

    /// Counts one request.
    pub fn record(&self, path: &str, status: u16, secs: f64) {
        self.record_class((self.classify)(path), status, secs);
    }

    fn record_class(&self, class: &str, status: u16, secs: f64) {
        let Some((_, counters, h)) = self
            .classes
            .iter()
            .find(|(c, _, _)| *c == class)
            .or_else(|| self.classes.last())
        else {
            return;
        };
        let i = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(c) = counters.get(i) {
            c.inc();
        }
        h.observe(secs);
    }

    /// Requests of route class `class` answered with a server error (5xx) so far.
    pub fn server_errors(&self, class: &str) -> u64 {
        self.classes
            .iter()
            .find(|(c, _, _)| *c == class)
            .and_then(|(_, counters, _)| counters.get(4))
            .map_or(0, Counter::get)
    }

    /// `router` with every request counted.
    pub fn layer(self: &Arc<Self>, router: axum::Router) -> axum::Router {
        let m = self.clone();
        router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let m = m.clone();
                async move {
                    let class = (m.classify)(req.uri().path());
                    let t = Instant::now();
                    let resp = next.run(req).await;
                    m.record_class(class, resp.status().as_u16(), t.elapsed().as_secs_f64());
                    resp
                }
            },
        ))
    }
}

/// The axum route `GET /metrics` for `registry`, to merge into a unit's own router.
pub fn route(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let r = registry.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    r.render(),
                )
            }
        }),
    )
}

/// Serves `GET /metrics` (plain HTTP) on `listen` until `shutdown`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    registry: Arc<Registry>,
    shutdown: Shutdown,
) -> Result<SocketAddr, NetError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| NetError::io(format!("binding metrics {listen}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| NetError::io("metrics local address", e))?;
    tracing::info!(%addr, "metrics listening");
    tokio::spawn(crate::http::serve(
        listener,
        None,
        route(registry),
        shutdown,
    ));
    Ok(addr)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_once_with_labels_and_histograms() {
        let r = Registry::new("test");
        let a = r.counter("x_total", "X.", &[("class", "api")]);
        let b = r.counter("x_total", "X.", &[("class", "web")]);
        a.add(3);
        b.inc();
        let h = r.histogram("lat_seconds", "Latency.", &[], LATENCY_BUCKETS);
        h.observe(0.003);
        h.observe(10.0);
        let text = r.render();
        assert_eq!(text.matches("# TYPE x_total counter").count(), 1);
        assert!(text.contains("x_total{class=\"api\"} 3\n"));
        assert!(text.contains("x_total{class=\"web\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("lat_seconds_count 2\n"));
        assert!(text.contains("peercam_build_info{unit=\"test\""));
        assert_eq!(h.count(), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(render_labels(&[("a", "x\"y\\z")]), "a=\"x\\\"y\\\\z\"");
    }
}
