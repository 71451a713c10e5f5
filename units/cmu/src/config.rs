use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::CmuError;

/// Configuration of the CMU (`cmu.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the API and platform listener. Default `0.0.0.0:7000`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where `GET /metrics` (Prometheus text format, 6.1.14) is served, plain HTTP; bind it
    /// to loopback or a management network (docs/security.md). Default unset (nowhere).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Network management (6.1.14): fault detection and the operator's webhook.
    #[serde(default)]
    pub faults: crate::faults::FaultsConfig,
    /// CRM interwork (H.626.4 6.2), `[crm]`: the operator's customer system verifies
    /// sign-ups and approvals and is told of account changes. Default unset (no CRM).
    #[serde(default)]
    pub crm: Option<crate::crm::CrmConfig>,
    /// Whether operator accounts must sign in with a TOTP code (RFC 6238); an operator
    /// without one may then only enrol. Default false.
    #[serde(default)]
    pub operator_totp_required: bool,
    /// Accounting and charging (clause 7), statistics (6.2): `[billing]`.
    #[serde(default)]
    pub billing: crate::accounting::BillingConfig,
    /// TLS certificate and key; without it the API is plain HTTP (only for loopback use).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Database URL: `sqlite://PATH` (created if missing) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (the database must exist; the CMU
    /// migrates it). Default `sqlite://peercam-cmu.db`. `database` is the older name.
    #[serde(default = "default_database", alias = "database")]
    pub database_url: String,
    /// Connections the CMU keeps to its database at most (SQLite file or PostgreSQL),
    /// 1 to 1000. Default 8. With several CMUs on one PostgreSQL server, their sum must stay
    /// below the server's `max_connections`.
    #[serde(default = "default_db_connections")]
    pub database_max_connections: u32,
    /// The bus between CMU instances that share the database (issue 19): `auto` (default)
    /// uses the database itself (`LISTEN`/`NOTIFY` on PostgreSQL, a table polled every
    /// 50 ms on a SQLite file, in-process on `sqlite::memory:`); `in_process` for an
    /// instance that runs alone.
    #[serde(default)]
    pub bus: crate::bus::BusKind,
    /// Directory for files the CMU writes (the bootstrap operator password). Default `.`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Secrets that authenticate SCU nodes, at least 16 characters each.
    pub scu_secrets: Vec<String>,
    /// How to send SMS.
    pub sms: SmsConfig,
    /// Lifetime of a login session, seconds. Default 43200 (12 h).
    #[serde(default = "default_session_ttl")]
    pub session_ttl_s: u64,
    /// Lifetime of an SMS sign-up code, seconds. Default 600.
    #[serde(default = "default_code_ttl")]
    pub signup_code_ttl_s: u64,
    /// How long a play URL (H.626.4 8.4 hash token) may wait before it is opened, seconds.
    /// Default 60.
    #[serde(default = "default_play_ttl")]
    pub play_token_ttl_s: u64,
    /// How often a new play-token signing key is made, seconds (60 to 2592000). Default
    /// 86400 (a day). Keys are kept in the database and shared by every CMU instance on it;
    /// an old key still verifies for an hour and a minute after its successor is made.
    #[serde(default = "default_token_key_rotate")]
    pub token_key_rotate_s: u64,
    /// Release public keys (base64url Ed25519) the CMU accepts packages from (H.626.4 8.11.1);
    /// devices check the same signatures again. Default: none (no package can be uploaded).
    #[serde(default)]
    pub release_keys: Vec<String>,
    /// Distinct release keys that must sign a package. Default 1.
    #[serde(default = "default_release_threshold")]
    pub release_threshold: usize,
    /// Days the audit log and the system log keep their rows (6.1.14, issue 18 item 4); a
    /// daily task deletes older ones. 0 keeps them for ever. Default 400 (a year and a
    /// month, the usual minimum for telecom operators' logs).
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    /// The URL devices download packages from (this API's base). Default: `https://` and
    /// the listening address (`localhost` when listening on all interfaces).
    #[serde(default)]
    pub public_url: Option<String>,
    /// The TURN REST secret shared with the MTUs' `[turn]` services (coturn's
    /// `static-auth-secret`): the CMU mints time-limited TURN credentials scoped to one
    /// session's peers (docs/security.md D8). None: no TURN credentials are handed out.
    #[serde(default)]
    pub turn_secret: Option<String>,
    /// How long a minted TURN credential lives, seconds. Default 600.
    #[serde(default = "default_turn_ttl")]
    pub turn_ttl_s: u64,
    /// H.626.4 6.1.12: timed-snapshot SMS per user (the camera's owner) per UTC day; past
    /// it snapshots are still taken and kept, without an SMS. Default 48.
    #[serde(default = "default_snapshot_sms")]
    pub snapshot_sms_per_day: u32,
    /// How long the link in a timed-snapshot SMS opens the picture, seconds. Default 86400.
    #[serde(default = "default_link_ttl")]
    pub snapshot_link_ttl_s: u64,
    /// Timed snapshots older than this many days are dropped. Default 7.
    #[serde(default = "default_retention_days")]
    pub snapshot_retention_days: u32,
    /// How often the snapshot scheduler looks for due times, milliseconds. Default 1000.
    #[serde(default = "default_tick_ms")]
    pub snapshot_tick_ms: u64,
    /// Cloud storage (H.626.4 8.7.1, 6.1.13): `[cloud]`.
    #[serde(default)]
    pub cloud: CloudConfig,
    /// The clock of the timed snapshots (tests move it forward; not configurable).
    #[serde(skip)]
    pub snapshot_clock: SnapshotClock,
}

/// Cloud storage settings (`[cloud]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// The free plan's storage per account, bytes (6.1.13). Default 1 GiB.
    #[serde(default = "default_free_quota")]
    pub free_quota_bytes: u64,
    /// The CS (device id) new cameras are stored on; default: the first CS online.
    #[serde(default)]
    pub cs: Option<String>,
    /// A file holding the key-encryption key (32 random bytes) that wraps the cameras' data
    /// keys; default: a key made on first start and kept in the database.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// Lifetime of a camera's device grant, seconds (the camera refreshes it at two
    /// thirds). Default 900.
    #[serde(default = "default_grant_ttl")]
    pub grant_ttl_s: u64,
    /// The free plan's age limit, days (recordings older than this are deleted). Default 7.
    #[serde(default = "default_free_max_age")]
    pub free_max_age_days: u32,
    /// After a downgrade, days before bytes beyond the new quota are deleted, oldest
    /// first (new writes meet the new quota at once). Default 7.
    #[serde(default = "default_grace_days")]
    pub downgrade_grace_days: u32,
    /// The plan catalogue (6.1.13), `[[cloud.plans]]`. A `free` plan is always there: the
    /// one configured here, else one made of `free_quota_bytes` and `free_max_age_days`.
    #[serde(default)]
    pub plans: Vec<PlanConfig>,
    /// The ISO 4217 currency of every plan's prices (clause 7 accounting). Default `EUR`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Shared clips (issue 17 item 9): how long the owner's client may take to upload a
    /// clip after making its link, seconds. Default 1800.
    #[serde(default = "default_clip_upload_ttl")]
    pub clip_upload_ttl_s: u64,
    /// Shared clips: how long the media URL of one page view (or one download) works,
    /// seconds; a revocation still ends it at once (the clip object is deleted). Default
    /// 3600.
    #[serde(default = "default_clip_view_ttl")]
    pub clip_view_ttl_s: u64,
    /// Shared clips: page views and downloads one client address may make per minute
    /// (rate limit of the public `/s/` routes). Default 30.
    #[serde(default = "default_clip_uses_per_minute")]
    pub clip_uses_per_minute: u32,
    /// Shared clips: links an owner may make per hour. Default 60.
    #[serde(default = "default_clips_per_hour")]
    pub clips_per_hour: u32,
}

fn default_clip_upload_ttl() -> u64 {
    1800
}
fn default_clip_view_ttl() -> u64 {
    3600
}
fn default_clip_uses_per_minute() -> u32 {
    30
}
fn default_clips_per_hour() -> u32 {
    60
}

fn default_currency() -> String {
    "EUR".into()
}

/// One plan of the catalogue (`[[cloud.plans]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Its id: 1 to 32 characters of a-z, 0-9, `-`, `_`.
    pub id: String,
    /// Its name, for people.
    pub name: String,
    /// Bytes an account's cameras may store together.
    pub quota_bytes: u64,
    /// Recordings older than this many days are deleted; default: none (kept until the
    /// pool is full).
    #[serde(default)]
    pub max_age_days: Option<u32>,
    /// The price as billing names it (`EUR 2.99/month`), shown to users; default none.
    #[serde(default)]
    pub price: Option<String>,
    /// Whether owners may choose it; a plan that is not public is listed to nobody and
    /// kept by those who hold it. Default true.
    #[serde(default = "yes")]
    pub public: bool,
    /// Clause 7 accounting: the plan's price per billing period (a calendar month), minor
    /// currency units of `cloud.currency` (cents). Default 0.
    #[serde(default)]
    pub price_minor: u64,
    /// Clause 7 accounting: per usage kind (`live_s_direct`, `live_s_punched`,
    /// `live_s_relay`, `relay_bytes`, `cloud_kb_h`, `sms`, `snapshots`), the amount included
    /// per period and the price of each block of `per` units beyond it:
    /// `[cloud.plans.usage.relay_bytes] included = 10000000000, per = 1000000000, minor = 50`.
    /// A kind not listed is free.
    #[serde(default)]
    pub usage: std::collections::BTreeMap<String, peercam_signal::cm_billing::KindPrice>,
}

fn yes() -> bool {
    true
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            free_quota_bytes: default_free_quota(),
            cs: None,
            kek_file: None,
            grant_ttl_s: default_grant_ttl(),
            free_max_age_days: default_free_max_age(),
            downgrade_grace_days: default_grace_days(),
            plans: Vec::new(),
            currency: default_currency(),
            clip_upload_ttl_s: default_clip_upload_ttl(),
            clip_view_ttl_s: default_clip_view_ttl(),
            clip_uses_per_minute: default_clip_uses_per_minute(),
            clips_per_hour: default_clips_per_hour(),
        }
    }
}

/// The id of the plan every account holds until it chooses another.
pub(crate) const FREE_PLAN: &str = "free";

impl CloudConfig {
    /// The catalogue: `plans`, with the `free` plan first (made of `free_quota_bytes` and
    /// `free_max_age_days` unless configured).
    pub fn catalogue(&self) -> Vec<PlanConfig> {
        let mut all = Vec::with_capacity(self.plans.len() + 1);
        if !self.plans.iter().any(|p| p.id == FREE_PLAN) {
            all.push(PlanConfig {
                id: FREE_PLAN.into(),
                name: "Free".into(),
                quota_bytes: self.free_quota_bytes,
                max_age_days: Some(self.free_max_age_days),
                price: None,
                public: true,
                price_minor: 0,
                usage: std::collections::BTreeMap::new(),
            });
        }
        all.extend(self.plans.iter().cloned());
        all
    }

    /// The plan `id` of the catalogue.
    pub fn plan(&self, id: &str) -> Option<PlanConfig> {
        self.catalogue().into_iter().find(|p| p.id == id)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if !(10..=86_400).contains(&self.grant_ttl_s) {
            return Err("cloud.grant_ttl_s must be 10 to 86400".into());
        }
        if !(1..=3650).contains(&self.free_max_age_days) || self.downgrade_grace_days > 365 {
            return Err(
                "cloud.free_max_age_days must be 1 to 3650, cloud.downgrade_grace_days 0 to 365"
                    .into(),
            );
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("cloud.currency must be an ISO 4217 code such as EUR".into());
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.plans {
            let id_ok = (1..=32).contains(&p.id.len())
                && p.id
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'));
            if !id_ok {
                return Err(format!(
                    "cloud.plans: id {:?} must be 1 to 32 characters of a-z 0-9 - _",
                    p.id
                ));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(format!("cloud.plans: id {:?} appears twice", p.id));
            }
            if p.name.trim().is_empty() || p.name.len() > 64 {
                return Err(format!("cloud.plans.{}: name of 1 to 64 bytes", p.id));
            }
            if p.max_age_days.is_some_and(|d| !(1..=3650).contains(&d)) {
                return Err(format!("cloud.plans.{}: max_age_days 1 to 3650", p.id));
            }
            if p.price.as_ref().is_some_and(|x| x.len() > 64) {
                return Err(format!("cloud.plans.{}: price of at most 64 bytes", p.id));
            }
            if let Some(k) = p
                .usage
                .keys()
                .find(|k| !peercam_signal::cm_billing::is_usage_kind(k))
            {
                return Err(format!("cloud.plans.{}.usage: unknown kind {k:?}", p.id));
            }
            if p.id == FREE_PLAN && !p.public {
                return Err("cloud.plans.free must be public".into());
            }
        }
        Ok(())
    }
}

fn default_free_max_age() -> u32 {
    7
}

fn default_grace_days() -> u32 {
    7
}

fn default_free_quota() -> u64 {
    1 << 30
}

fn default_grant_ttl() -> u64 {
    900
}

/// The wall clock of the timed snapshots (H.626.4 6.1.12), plus an offset that only tests
/// move: the scheduler, the links' expiry and the SMS quota's day all read it, so a test
/// can live through hours in seconds. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct SnapshotClock(Arc<AtomicU64>);

impl SnapshotClock {
    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::Relaxed);
    }

    /// Now on this clock, Unix ms.
    pub fn now_ms(&self) -> u64 {
        crate::now_ms().saturating_add(self.0.load(Ordering::Relaxed))
    }
}

fn default_token_key_rotate() -> u64 {
    86_400
}

fn default_snapshot_sms() -> u32 {
    48
}

fn default_link_ttl() -> u64 {
    86_400
}

fn default_retention_days() -> u32 {
    7
}

fn default_tick_ms() -> u64 {
    1000
}

fn default_turn_ttl() -> u64 {
    600
}

fn default_release_threshold() -> usize {
    1
}

fn default_audit_retention_days() -> u32 {
    400
}

/// TLS material.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// Which SMS gateway adapter to use.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsConfig {
    /// Write messages as JSON files into `dir` (demo, tests).
    Outbox {
        /// The directory.
        dir: PathBuf,
        /// Play a gateway that sends MMS: timed snapshots (H.626.4 6.1.12) go as MMS, the
        /// JPEG written beside the message. Default false (SMS with a link).
        #[serde(default)]
        mms: bool,
    },
    /// POST JSON `{to, text, at}` to `url` with `Authorization: Bearer api_key`.
    Http {
        /// Gateway URL.
        url: String,
        /// API key.
        api_key: String,
    },
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7000))
}
fn default_database() -> String {
    "sqlite://peercam-cmu.db".into()
}
fn default_db_connections() -> u32 {
    8
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(".")
}
fn default_session_ttl() -> u64 {
    43_200
}
fn default_code_ttl() -> u64 {
    600
}
fn default_play_ttl() -> u64 {
    60
}

impl Config {
    /// A configuration with defaults for everything that has one.
    pub fn new(
        database_url: String,
        data_dir: PathBuf,
        scu_secrets: Vec<String>,
        sms: SmsConfig,
    ) -> Self {
        Self {
            listen: default_listen(),
            metrics_listen: None,
            faults: crate::faults::FaultsConfig::default(),
            crm: None,
            operator_totp_required: false,
            billing: crate::accounting::BillingConfig::default(),
            tls: None,
            database_url,
            database_max_connections: default_db_connections(),
            bus: crate::bus::BusKind::default(),
            data_dir,
            scu_secrets,
            sms,
            session_ttl_s: default_session_ttl(),
            signup_code_ttl_s: default_code_ttl(),
            play_token_ttl_s: default_play_ttl(),
            token_key_rotate_s: default_token_key_rotate(),
            release_keys: Vec::new(),
            release_threshold: default_release_threshold(),
            audit_retention_days: default_audit_retention_days(),
            public_url: None,
            turn_secret: None,
            turn_ttl_s: default_turn_ttl(),
            snapshot_sms_per_day: default_snapshot_sms(),
            snapshot_link_ttl_s: default_link_ttl(),
            snapshot_retention_days: default_retention_days(),
            snapshot_tick_ms: default_tick_ms(),
            cloud: CloudConfig::default(),
            snapshot_clock: SnapshotClock::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), CmuError> {
        if self.scu_secrets.iter().any(|s| s.len() < 16) {
            return Err(CmuError::Config(
                "every scu_secrets entry must be at least 16 characters".into(),
            ));
        }
        for k in &self.release_keys {
            peercam_signal::upgrade::parse_key(k)
                .map_err(|e| CmuError::Config(format!("release_keys: {e}")))?;
        }
        if !(1..=1000).contains(&self.database_max_connections) {
            return Err(CmuError::Config(
                "database_max_connections must be 1 to 1000".into(),
            ));
        }
        if !(1..=3600).contains(&self.play_token_ttl_s) {
            return Err(CmuError::Config(
                "play_token_ttl_s must be 1 to 3600".into(),
            ));
        }
        if !(60..=30 * 86_400).contains(&self.token_key_rotate_s) {
            return Err(CmuError::Config(
                "token_key_rotate_s must be 60 to 2592000".into(),
            ));
        }
        if self.session_ttl_s < 60 || self.signup_code_ttl_s < 60 {
            return Err(CmuError::Config(
                "session_ttl_s and signup_code_ttl_s must be at least 60".into(),
            ));
        }
        self.cloud.check().map_err(CmuError::Config)?;
        if let Some(crm) = &self.crm {
            crm.validate().map_err(CmuError::Config)?;
        }
        self.billing.check().map_err(CmuError::Config)?;
        if !(60..=30 * 86_400).contains(&self.snapshot_link_ttl_s)
            || !(1..=365).contains(&self.snapshot_retention_days)
            || !(10..=60_000).contains(&self.snapshot_tick_ms)
        {
            return Err(CmuError::Config(
                "snapshot_link_ttl_s must be 60 to 2592000, snapshot_retention_days 1 to 365, snapshot_tick_ms 10 to 60000".into(),
            ));
        }
        Ok(())
    }
}
