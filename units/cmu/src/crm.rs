//! CRM interwork (H.626.4 6.2, issue 18 item 9): the CMU asks the operator's customer
//! relationship management system whether a subscriber may sign up and be approved, and
//! tells it of account changes. The exchange is in docs/protocol.md ("CRM interwork"), the
//! trust rules in docs/security.md ("CRM").
//!
//! The CRM may be down: a sign-up it cannot judge waits (`pending_crm`) and a verification
//! is queued in the outbox (`store/crm.rs`); account changes are queued there too. One
//! worker per CMU drains the outbox in order, backing off while the CRM fails, so nothing
//! is lost and nothing passes unchecked.

use std::sync::Arc;
use std::time::Duration;

use peercam_signal::crm::{AccountEvent, MAX_ANSWER_BYTES, Stage, Verdict, VerifyRequest};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::audit::{self, Event};
use crate::store::{accounts, crm as outbox};
use crate::{Shared, now_ms, now_s};

/// `[crm]` of the CMU's configuration; absent, the CMU has no CRM (docs/config.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    /// The CRM's base URL (`https://crm.example/api`); the CMU calls
    /// `{url}/v1/subscribers/verify` and `{url}/v1/events`.
    pub url: String,
    /// Sent as `Authorization: Bearer TOKEN`; default none.
    #[serde(default)]
    pub token: Option<String>,
    /// How long one call may take, milliseconds (connecting included). Default 3000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// The first delay before a failed call is tried again, milliseconds; it doubles after
    /// each failure up to `retry_max_ms`. Default 2000.
    #[serde(default = "default_retry_min")]
    pub retry_min_ms: u64,
    /// The longest delay between tries, milliseconds. Default 300000 (5 minutes).
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
}

fn default_timeout() -> u64 {
    3000
}
fn default_retry_min() -> u64 {
    2000
}
fn default_retry_max() -> u64 {
    300_000
}

impl CrmConfig {
    /// A CRM at `url` with the default timings.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            timeout_ms: default_timeout(),
            retry_min_ms: default_retry_min(),
            retry_max_ms: default_retry_max(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let u = url::Url::parse(&self.url).map_err(|e| format!("crm.url: {e}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err("crm.url must be http:// or https://".into());
        }
        if self.timeout_ms == 0 || self.retry_min_ms == 0 || self.retry_max_ms < self.retry_min_ms {
            return Err(
                "crm: timeout_ms and retry_min_ms above 0, retry_max_ms at least retry_min_ms"
                    .into(),
            );
        }
        Ok(())
    }

    /// The delay after `attempts` failures.
    fn backoff(&self, attempts: u32) -> u64 {
        self.retry_min_ms
            .saturating_mul(1u64 << attempts.min(20))
            .min(self.retry_max_ms)
    }
}

/// What the CRM said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Yes (with the CRM's customer id, if it gave one).
    Ok,
    /// No, with its reason.
    Refused(String),
    /// No verdict: down, too slow, or an answer that is not a verdict. Why, for the log.
    Unavailable(String),
}

/// The CMU's CRM client and its worker's wake-up.
pub(crate) struct Crm {
    cfg: CrmConfig,
    http: reqwest::Client,
    wake: Notify,
}

impl Crm {
    pub(crate) fn new(cfg: CrmConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("peercam-cmu/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("CRM client: {e}"))?;
        Ok(Self {
            cfg,
            http,
            wake: Notify::new(),
        })
    }

    fn post(&self, path: &str, body: &impl serde::Serialize) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(format!("{}{path}", self.cfg.url.trim_end_matches('/')))
            .json(body);
        if let Some(t) = &self.cfg.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Asks the CRM for a verdict.
    pub(crate) async fn verify(&self, req: &VerifyRequest) -> Outcome {
        let resp = match self.post("/v1/subscribers/verify", req).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Outcome::Unavailable(format!(
                    "no answer within {} ms",
                    self.cfg.timeout_ms
                ));
            }
            Err(e) => return Outcome::Unavailable(format!("unreachable: {e}")),
        };
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Outcome::Unavailable(format!("answered HTTP {status}"));
        }
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(why) => return Outcome::Unavailable(why),
        };
        match peercam_signal::crm::parse_verdict(&body) {
            Ok(Verdict::Ok { .. }) => Outcome::Ok,
            Ok(Verdict::Refused { reason }) => Outcome::Refused(reason),
            Err(e) => Outcome::Unavailable(format!("answered something that is no verdict: {e}")),
        }
    }

    /// Tells the CRM of one change; `Err(why)` unless it took it (2xx).
    async fn tell(&self, body: &str) -> Result<(), String> {
        let event: AccountEvent =
            serde_json::from_str(body).map_err(|e| format!("bad outbox row: {e}"))?;
        match self.post("/v1/events", &event).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered HTTP {}", r.status())),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", self.cfg.timeout_ms)),
            Err(e) => Err(format!("unreachable: {e}")),
        }
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`] (+1 to notice more).
async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("answer cut short: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
        }
    }
    Ok(body)
}

/// The message of a sign-up that waits for the CRM.
pub(crate) const WAITING: &str =
    "your sign-up is waiting for the operator's customer system; it will complete by itself";

/// 6.2: asks the CRM about a subscriber (no CRM configured: yes).
pub(crate) async fn verify(st: &Shared, req: &VerifyRequest) -> Outcome {
    match &st.crm {
        None => Outcome::Ok,
        Some(crm) => crm.verify(req).await,
    }
}

/// 6.2: queues a verification of the account `id`, waiting for the CRM.
pub(crate) async fn queue_verification(st: &Shared, id: i64) {
    if let Err(e) = outbox::push(&st.store, outbox::VERIFY, id, "", now_ms()).await {
        tracing::error!(error = %e, account = id, "cannot queue a CRM verification");
    }
    if let Some(crm) = &st.crm {
        crm.wake.notify_one();
    }
}

/// 6.2: queues an account change for the CRM (nothing without a CRM).
pub(crate) async fn changed(
    st: &Shared,
    event: &str,
    account_id: i64,
    login: &str,
    detail: Option<&str>,
) {
    let Some(crm) = &st.crm else {
        return;
    };
    let mut ev = AccountEvent {
        id: 0,
        event: event.to_owned(),
        account_id,
        login: login.to_owned(),
        at: now_s(),
        detail: detail.map(str::to_owned),
    };
    let queued = async {
        let id = outbox::push(&st.store, outbox::EVENT, account_id, "", now_ms()).await?;
        ev.id = id;
        let body = serde_json::to_string(&ev).unwrap_or_default();
        outbox::set_body(&st.store, id, &body).await
    };
    if let Err(e) = queued.await {
        tracing::error!(error = %e, event, account = account_id, "cannot queue a CRM event");
    }
    crm.wake.notify_one();
}

/// The audit row of a CRM verdict on account `account`.
pub(crate) fn crm_event<'a>(account: i64, outcome: &'a str, detail: &'a str) -> Event<'a> {
    Event::AccountAction {
        by: None,
        action: "account.crm",
        account,
        outcome,
        detail,
    }
}

/// Starts the outbox worker (when a CRM is configured).
pub(crate) fn spawn(st: &Shared) {
    let Some(crm) = st.crm.clone() else {
        return;
    };
    let st = st.clone();
    tokio::spawn(async move {
        let shutdown = st.shutdown.clone();
        let idle = Duration::from_millis(crm.cfg.retry_min_ms.min(1000));
        loop {
            drain(&st, &crm).await;
            tokio::select! {
                () = tokio::time::sleep(idle) => {}
                () = crm.wake.notified() => {}
                () = shutdown.wait() => return,
            }
        }
    });
}

/// One pass over the outbox, in order; stops at the first item not due yet or that the CRM
/// cannot take (it is down: the rest wait their turn, and events keep their order).
async fn drain(st: &Shared, crm: &Arc<Crm>) {
    let items = match outbox::head(&st.store, 50).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "CRM outbox unreadable");
            return;
        }
    };
    for it in items {
        if it.next_ms > now_ms() {
            return;
        }
        // A claim as long as one call may take, twice: another instance waits meanwhile.
        let lease = now_ms() + 2 * crm.cfg.timeout_ms + 1000;
        if !matches!(outbox::claim(&st.store, &it, lease).await, Ok(true)) {
            continue;
        }
        let result = if it.kind == outbox::VERIFY {
            verify_waiting(st, crm, it.account_id).await
        } else {
            crm.tell(&it.body).await
        };
        let stored = match &result {
            Ok(()) => outbox::done(&st.store, it.id).await,
            Err(why) => {
                let next = now_ms() + crm.cfg.backoff(it.attempts);
                tracing::warn!(item = it.id, kind = %it.kind, account = it.account_id,
                    attempts = it.attempts + 1, reason = %why, "CRM unavailable; will retry");
                outbox::failed(&st.store, it.id, next, why).await
            }
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, item = it.id, "CRM outbox update failed");
        }
        if result.is_err() {
            return;
        }
    }
}

/// A queued verification: the account waiting for the CRM passes on to the operator's
/// approval, or is refused with the CRM's reason; `Err(why)` if the CRM still has no verdict.
async fn verify_waiting(st: &Shared, crm: &Crm, id: i64) -> Result<(), String> {
    let account = match accounts::get(&st.store, id).await {
        Ok(Some(a)) => a,
        // Gone meanwhile: nothing to verify.
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("database: {e}")),
    };
    if account.status != peercam_signal::cm::AccountStatus::PendingCrm {
        return Ok(());
    }
    let req = VerifyRequest {
        stage: Stage::Signup,
        phone: account.login.clone(),
        name: account.name.clone(),
        contract_id: account.contract_id.clone(),
        account_id: Some(id),
    };
    match crm.verify(&req).await {
        Outcome::Ok => {
            let _ = accounts::crm_passed(&st.store, id).await;
            tracing::info!(account = id, "CRM accepted a waiting sign-up");
            audit::log(&st.store, crm_event(id, "ok", "")).await;
            Ok(())
        }
        Outcome::Refused(reason) => {
            let _ = accounts::crm_refused(&st.store, id, &reason).await;
            tracing::info!(account = id, %reason, "CRM refused a waiting sign-up");
            audit::log(&st.store, crm_event(id, "crm_refused", &reason)).await;
            changed(st, "account.refused", id, &account.login, Some(&reason)).await;
            Ok(())
        }
        Outcome::Unavailable(why) => {
            let _ = accounts::crm_note(&st.store, id, &why).await;
            Err(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_2_crm_backoff_doubles_up_to_its_cap() {
        let mut c = CrmConfig::new("http://127.0.0.1:9");
        c.retry_min_ms = 100;
        c.retry_max_ms = 1000;
        let waits: Vec<u64> = (0..6).map(|a| c.backoff(a)).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(c.backoff(u32::MAX), 1000);
        assert!(c.validate().is_ok());
        c.url = "ftp://x".into();
        assert!(c.validate().is_err());
    }
}
