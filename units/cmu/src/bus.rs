//! The bus between CMU instances (issue 19 item 3, docs/design/scale-out.md section 3):
//! publish a message on a subject; every instance (the sender too) receives every message
//! and keeps what is addressed to it.
//!
//! Three implementations behind [`Bus`]:
//! - [`PgBus`]: PostgreSQL's `LISTEN`/`NOTIFY` on the CMU's own database. A payload too large
//!   for a notification (8000 bytes) is written as a `bus_messages` row and the notification
//!   carries its id.
//! - [`TableBus`]: for SQLite, messages are `bus_messages` rows that every instance polls
//!   every [`POLL`].
//! - [`InProcessBus`]: one instance alone (`sqlite::memory:` or `bus = "in_process"`).
//!
//! A receiver that may have missed messages (a reconnect, a poll that failed, a slow
//! receiver) gets [`Delivery::Resync`]: it then reads the shared state again from the rows.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use peercam_net::Shutdown;
use tokio::sync::broadcast;

use crate::store::{self, Backend, Store};
use crate::{CmuError, now_ms};

/// The PostgreSQL channel of the bus.
const CHANNEL: &str = "peercam_bus";
/// Payloads longer than this go as rows (a notification carries at most 8000 bytes).
const NOTIFY_MAX: usize = 7900;
/// How often the SQLite bus polls for new rows.
pub(crate) const POLL: Duration = Duration::from_millis(50);
/// How long bus rows are kept.
const KEEP_MS: u64 = 60_000;
/// Messages a slow receiver may fall behind before it must resync.
const BACKLOG: usize = 4096;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// A message.
    Message { subject: String, payload: String },
    /// Messages may have been lost (the bus reconnected): read the shared state again.
    Resync,
}

/// Why a message could not be published.
#[derive(Debug, thiserror::Error)]
#[error("bus: {0}")]
pub(crate) struct BusError(String);

impl From<store::StoreError> for BusError {
    fn from(e: store::StoreError) -> Self {
        Self(e.to_string())
    }
}

/// A boxed future of a publish.
pub(crate) type Publish<'a> = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send + 'a>>;

/// The bus: publish to a subject, subscribe to everything.
pub(crate) trait Bus: Send + Sync {
    /// Sends `payload` (text, JSON in practice) on `subject` to every instance.
    fn publish<'a>(&'a self, subject: &'a str, payload: String) -> Publish<'a>;
    /// Every message published from now on, by any instance.
    fn subscribe(&self) -> broadcast::Receiver<Delivery>;
    /// Its name, for logs.
    fn name(&self) -> &'static str;
}

/// Which bus `bus` in the configuration asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// The database's: `LISTEN`/`NOTIFY` on PostgreSQL, a polled table on a SQLite file,
    /// in-process on `sqlite::memory:`.
    #[default]
    Auto,
    /// In this process only: for a lone instance.
    InProcess,
}

/// Starts the bus `kind` over `store`; an unreachable bus stops the CMU.
pub(crate) async fn start(
    kind: BusKind,
    store: &Store,
    shutdown: &Shutdown,
) -> Result<Arc<dyn Bus>, CmuError> {
    let url = store.url();
    if kind == BusKind::InProcess || url.starts_with("sqlite::memory:") {
        return Ok(Arc::new(InProcessBus::new()));
    }
    match store.backend() {
        Backend::Postgres => Ok(Arc::new(PgBus::start(url, store, shutdown).await?)),
        Backend::Sqlite => Ok(Arc::new(TableBus::start(store, shutdown).await?)),
    }
}

/// One process: messages go straight to its subscribers.
pub(crate) struct InProcessBus {
    tx: broadcast::Sender<Delivery>,
}

impl InProcessBus {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Bus for InProcessBus {
    fn publish<'a>(&'a self, subject: &'a str, payload: String) -> Publish<'a> {
        let _ = self.tx.send(Delivery::Message {
            subject: subject.to_owned(),
            payload,
        });
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }

    fn name(&self) -> &'static str {
        "in-process"
    }
}

/// SQLite: messages are rows; every instance polls for rows newer than the last it saw.
pub(crate) struct TableBus {
    store: Store,
    tx: broadcast::Sender<Delivery>,
}

impl TableBus {
    pub(crate) async fn start(store: &Store, shutdown: &Shutdown) -> Result<Self, CmuError> {
        let last = store::presence::bus_last_id(store)
            .await
            .map_err(|e| CmuError::Bus(format!("cannot read the bus table: {e}")))?;
        let tx = broadcast::channel(BACKLOG).0;
        tokio::spawn(poll(store.clone(), tx.clone(), last, shutdown.clone()));
        Ok(Self {
            store: store.clone(),
            tx,
        })
    }
}

/// Delivers new rows every [`POLL`]; prunes old ones now and then.
async fn poll(store: Store, tx: broadcast::Sender<Delivery>, mut last: i64, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut polls: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.wait() => return,
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(200) {
            let _ = store::presence::bus_prune(&store, now_ms().saturating_sub(KEEP_MS)).await;
        }
        match store::presence::bus_since(&store, last, 1000).await {
            Ok(rows) => {
                if failing {
                    failing = false;
                    let _ = tx.send(Delivery::Resync);
                }
                for (id, subject, payload) in rows {
                    last = id;
                    let _ = tx.send(Delivery::Message { subject, payload });
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "bus: cannot poll the bus table");
                }
                failing = true;
            }
        }
    }
}

impl Bus for TableBus {
    fn publish<'a>(&'a self, subject: &'a str, payload: String) -> Publish<'a> {
        Box::pin(async move {
            store::presence::bus_append(&self.store, subject, &payload, now_ms()).await?;
            Ok(())
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }

    fn name(&self) -> &'static str {
        "table"
    }
}

/// PostgreSQL: `NOTIFY peercam_bus, 'SUBJECT PAYLOAD'`, or `'@ID'` for a payload kept as a
/// `bus_messages` row; one `LISTEN` connection per instance, reconnected when lost.
pub(crate) struct PgBus {
    store: Store,
    tx: broadcast::Sender<Delivery>,
}

impl PgBus {
    pub(crate) async fn start(
        url: &str,
        store: &Store,
        shutdown: &Shutdown,
    ) -> Result<Self, CmuError> {
        let listener = listen(url).await.map_err(|e| {
            CmuError::Bus(format!(
                "cannot LISTEN on the PostgreSQL database (the bus between CMU instances; a \
                 pooler in transaction mode does not pass LISTEN): {e}"
            ))
        })?;
        let tx = broadcast::channel(BACKLOG).0;
        tokio::spawn(listen_loop(
            url.to_owned(),
            listener,
            store.clone(),
            tx.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            store: store.clone(),
            tx,
        })
    }
}

/// One `LISTEN` connection, or the reason there is none. One plain connection first: the
/// listener's own pool would try again for 30 s and hide the reason.
async fn listen(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    use sqlx::Connection as _;
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::postgres::PgConnection::connect(url),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    let _ = probe.close().await;
    let mut l = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::postgres::PgListener::connect(url),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    l.listen(CHANNEL).await?;
    Ok(l)
}

/// Receives notifications; after a lost connection, connects again (pausing up to 1 s
/// between tries) and tells subscribers to resync.
async fn listen_loop(
    url: String,
    mut listener: sqlx::postgres::PgListener,
    store: Store,
    tx: broadcast::Sender<Delivery>,
    shutdown: Shutdown,
) {
    loop {
        let got = tokio::select! {
            got = listener.try_recv() => got,
            () = shutdown.wait() => return,
        };
        match got {
            Ok(Some(n)) => {
                if let Some(d) = decode(&store, n.payload()).await {
                    let _ = tx.send(d);
                }
            }
            // Lost and reconnected already (eager reconnect): messages may be lost.
            Ok(None) => {
                tracing::warn!("bus: the LISTEN connection was lost and is back");
                let _ = tx.send(Delivery::Resync);
            }
            Err(e) => {
                tracing::warn!(error = %e, "bus: the LISTEN connection is lost; reconnecting");
                let mut pause = Duration::from_millis(100);
                listener = loop {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.wait() => return,
                    }
                    match listen(&url).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::debug!(error = %e, "bus: cannot LISTEN yet");
                            pause = (pause * 2).min(Duration::from_secs(1));
                        }
                    }
                };
                tracing::info!("bus: listening again");
                let _ = tx.send(Delivery::Resync);
            }
        }
    }
}

/// A notification's text: `SUBJECT PAYLOAD`, or `@ID` of a row.
async fn decode(store: &Store, text: &str) -> Option<Delivery> {
    if let Some(id) = text.strip_prefix('@') {
        let id: i64 = id.parse().ok()?;
        return match store::presence::bus_since(store, id - 1, 1).await {
            Ok(rows) => rows
                .into_iter()
                .find(|(i, _, _)| *i == id)
                .map(|(_, subject, payload)| Delivery::Message { subject, payload }),
            Err(e) => {
                tracing::warn!(error = %e, id, "bus: cannot read a large message; resyncing");
                Some(Delivery::Resync)
            }
        };
    }
    let (subject, payload) = text.split_once(' ')?;
    Some(Delivery::Message {
        subject: subject.to_owned(),
        payload: payload.to_owned(),
    })
}

impl Bus for PgBus {
    fn publish<'a>(&'a self, subject: &'a str, payload: String) -> Publish<'a> {
        Box::pin(async move {
            let text = format!("{subject} {payload}");
            if text.len() <= NOTIFY_MAX {
                store::presence::notify(&self.store, CHANNEL, &text).await?;
                return Ok(());
            }
            let now = now_ms();
            let id = store::presence::bus_append(&self.store, subject, &payload, now).await?;
            store::presence::notify(&self.store, CHANNEL, &format!("@{id}")).await?;
            let _ = store::presence::bus_prune(&self.store, now.saturating_sub(KEEP_MS)).await;
            Ok(())
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }

    fn name(&self) -> &'static str {
        "postgres-notify"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;

    async fn next_message(rx: &mut broadcast::Receiver<Delivery>) -> (String, String) {
        loop {
            let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no bus message in 5 s"))
                .unwrap_or_else(|e| panic!("bus: {e}"));
            if let Delivery::Message { subject, payload } = d {
                return (subject, payload);
            }
        }
    }

    /// The database's bus of this store, as a CMU would start it.
    async fn database_bus(db: &Store, shutdown: &Shutdown) -> Arc<dyn Bus> {
        start(BusKind::Auto, db, shutdown)
            .await
            .unwrap_or_else(|e| panic!("bus: {e}"))
    }

    on_both_backends! {
    /// Issue 19: two instances' buses on one database see each other's messages, small and
    /// larger than a notification can carry, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn h626_7_bus_delivers_between_instances(db) {
        let shutdown = Shutdown::new();
        let a = database_bus(&db, &shutdown).await;
        let b = database_bus(&db, &shutdown).await;
        let mut on_b = b.subscribe();
        let mut on_a = a.subscribe();
        a.publish("presence", "{\"n\":1}".into()).await.unwrap();
        let big = format!("\"{}\"", "y".repeat(20_000));
        a.publish("answer.x", big.clone()).await.unwrap();
        assert_eq!(next_message(&mut on_b).await, ("presence".into(), "{\"n\":1}".into()));
        assert_eq!(next_message(&mut on_b).await, ("answer.x".into(), big));
        // The sender hears itself too.
        assert_eq!(next_message(&mut on_a).await.0, "presence");
        shutdown.trigger();
    }
    }

    #[tokio::test]
    async fn h626_7_in_process_bus_delivers_to_itself() {
        let bus = InProcessBus::new();
        let mut rx = bus.subscribe();
        bus.publish("s", "p".into()).await.unwrap();
        assert_eq!(next_message(&mut rx).await, ("s".into(), "p".into()));
    }

    #[test]
    fn bus_setting_names() {
        let kind = |s: &str| serde_json::from_str::<BusKind>(s).map_err(|e| e.to_string());
        assert_eq!(kind("\"auto\""), Ok(BusKind::Auto));
        assert_eq!(kind("\"in_process\""), Ok(BusKind::InProcess));
        assert!(kind("\"nats\"").is_err());
        assert_eq!(BusKind::default(), BusKind::Auto);
    }

    /// An unreachable bus stops the CMU at start with a clear message.
    #[tokio::test]
    async fn an_unreachable_bus_is_a_clear_start_error() {
        let Some((db, _keep)) =
            store::testing::postgres("bus::tests::an_unreachable_bus_is_a_clear_start_error").await
        else {
            return;
        };
        let e = PgBus::start("postgres://peercam@127.0.0.1:1/cmu", &db, &Shutdown::new())
            .await
            .err()
            .unwrap_or_else(|| panic!("a bus on a closed port started"));
        let msg = e.to_string();
        assert!(
            msg.contains("cannot LISTEN") && msg.contains("refused"),
            "{msg}"
        );
    }
}
