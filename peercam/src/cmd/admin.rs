use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_cu::Client;
use peercam_signal::cm::ProvisionDevice;
use peercam_signal::identity::{BindCode, DeviceIdentity};
use peercam_signal::ps::DeviceKind;

use super::cu::{Conn, print};

/// Operator tasks. Log in as the operator (`--user admin --password ...`; the password of
/// the bootstrap account is in the CMU's `data_dir/admin.password`).
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Devices.
    #[command(subcommand)]
    Devices(DevCmd),
    /// Accounts.
    #[command(subcommand)]
    Users(UserCmd),
    /// Release packages (H.626.4 8.11.1).
    #[command(subcommand)]
    Packages(PkgCmd),
    /// The vendor catalogue (H.626.4 6.2 vendor management): `vendors list`, `vendors add
    /// NAME`, `vendors set ID --name NAME`, `vendors remove ID`.
    #[command(subcommand)]
    Vendors(VendorCmd),
    /// The model catalogue with capabilities (6.2): `models list`, `models add --vendor V
    /// --name M --ptz`, `models set ID ...`, `models remove ID`. Imported devices must name
    /// a model of the catalogue.
    #[command(subcommand)]
    Models(ModelCmd),
    /// Platform settings (H.626.4 8.9.2): `settings get`, or `settings set signup_open=false
    /// play_token_ttl_s=30`.
    #[command(subcommand)]
    Settings(super::cu::SettingsCmd),
    /// Live-view sessions: how many went direct (LAN, public, mapped, punched) and how many
    /// through an MTU's relay, and the latest ones with their path, connect time and bytes.
    Sessions {
        /// How many recent sessions to list.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// The fault list of network management (H.626.4 6.1.14): the active faults (`--all`:
    /// cleared and resolved ones too), or `faults ack ID`, `faults resolve ID`.
    Faults {
        /// Also the faults that cleared or were resolved.
        #[arg(long)]
        all: bool,
        #[command(subcommand)]
        action: Option<FaultCmd>,
    },
    /// Fleet upgrade campaigns (H.626.4 8.11.1): a canary, then waves; paused by itself when
    /// too many fail.
    #[command(subcommand)]
    Campaigns(super::fleet::CampaignCmd),
    /// The audit log and the system log (6.1.14): search by time, actor, device, action,
    /// outcome; export as CSV or JSON lines.
    #[command(subcommand)]
    Audit(super::fleet::AuditCmd),
    /// Usage per account and kind in a billing period (clause 7 accounting): live seconds
    /// by path, relay bytes, cloud kilobyte-hours, SMS, snapshots.
    Usage {
        /// The period, YYYY-MM; default the current month.
        #[arg(long)]
        period: Option<String>,
    },
    /// The invoice of every account for a period (amounts in minor currency units), or
    /// `--csv`; `--close` closes a finished period and posts it to the billing webhook.
    Invoices {
        /// The period, YYYY-MM; default the current month.
        #[arg(long)]
        period: Option<String>,
        /// Print the CSV form.
        #[arg(long)]
        csv: bool,
        /// Close the period (it must be over) and show the webhook's delivery attempts.
        #[arg(long)]
        close: bool,
    },
    /// A daily or monthly report as CSV (6.2): usage per account and kind.
    Reports {
        #[arg(value_enum)]
        which: super::billing::Report,
        /// YYYY-MM-DD for daily, YYYY-MM for monthly; default yesterday / this month.
        #[arg(long)]
        period: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Announcements shown in the user portal (6.2 advertising): list, add, delete.
    #[command(subcommand)]
    Announcements(super::billing::AnnCmd),
}

#[derive(Subcommand)]
enum FaultCmd {
    /// Acknowledge a fault: an operator is on it.
    Ack { id: i64 },
    /// Resolve a fault: it leaves the active list (a new occurrence raises a new one).
    Resolve { id: i64 },
}

#[derive(Subcommand)]
enum PkgCmd {
    /// Upload a signed release: its manifest (from `peercam release sign`), then its payload.
    Upload { manifest: PathBuf, payload: PathBuf },
    /// List the packages.
    List,
}

#[derive(Subcommand)]
pub(super) enum DevCmd {
    /// Make identities for new devices: one key pair and bind code each, written to
    /// `DIR/ID.identity.toml` (keep them secret; install one per device); the public keys
    /// are recorded in the CMU.
    Provision {
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value = "peercam")]
        vendor: String,
        #[arg(long, default_value = "synthetic")]
        model: String,
        #[arg(long, value_enum, default_value = "pu")]
        kind: Kind,
        #[arg(long)]
        out: PathBuf,
    },
    /// List every device.
    List,
    /// Provision devices from a CSV file, all or nothing (H.626.4 6.1.1, 6.2). The header
    /// names the columns: device_id, kind, public_key, bind_code_sha256, vendor, model, name,
    /// account (kind, name, account optional). Any bad row imports nothing and every bad
    /// row is printed with its line and column.
    ///
    /// With `--generate DIR`, the file needs only vendor, model (and optionally name,
    /// account): a key pair and bind code are made for every row as `devices provision`
    /// does, the identities are written to DIR/ID.identity.toml and DIR/credentials.csv
    /// (device_id, bind_code, identity_file) for the factory; only public keys and bind code
    /// digests reach the CMU.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Make the keys: write identities and credentials.csv to this directory.
        #[arg(long)]
        generate: Option<PathBuf>,
    },
    /// Search the devices: one page (`--cursor` from the previous page for the next).
    Search {
        /// Part of the id, name, vendor or model.
        q: Option<String>,
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// Online now (true) or not (false).
        #[arg(long)]
        online: Option<bool>,
        /// The owner account: id or phone number.
        #[arg(long)]
        owner: Option<String>,
        /// unassigned, assigned or decommissioned.
        #[arg(long)]
        state: Option<String>,
        /// Devices per page, 1 to 1000.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Assign an unassigned device to an approved owner account (H.626.4 6.1.1).
    Assign {
        /// The device id.
        id: String,
        /// The account: id or phone number.
        account: String,
        /// The device's name in the owner's list.
        #[arg(long)]
        name: Option<String>,
    },
    /// Move an assigned device to another owner: the old owner's shares and sessions end.
    Move {
        /// The device id.
        id: String,
        /// The new owner: account id or phone number.
        account: String,
        /// The device's name in the new owner's list.
        #[arg(long)]
        name: Option<String>,
    },
    /// Decommission a device: its key no longer admits it, its session ends, its owner and
    /// shares lose it. `--recordings keep` or `delete` (its NVRs and SD card) is required.
    Decommission {
        /// The device id.
        id: String,
        /// What happens to its recordings.
        #[arg(long, value_enum)]
        recordings: Recordings,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum Recordings {
    /// Left where they are.
    Keep,
    /// Its NVRs and its SD card delete them.
    Delete,
}

#[derive(Subcommand)]
pub(super) enum VendorCmd {
    /// List the vendors.
    List,
    /// Add a vendor.
    Add {
        name: String,
        /// Support address or web site.
        #[arg(long, default_value = "")]
        contact: String,
    },
    /// Rename a vendor or change its contact (its devices follow a rename).
    Set {
        id: i64,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        contact: String,
    },
    /// Remove a vendor without models.
    Remove { id: i64 },
}

#[derive(clap::Args)]
pub(super) struct ModelArgs {
    /// The vendor's name.
    #[arg(long)]
    pub(super) vendor: String,
    /// The model's name.
    #[arg(long)]
    pub(super) name: String,
    #[arg(long, value_enum, default_value = "pu")]
    pub(super) kind: Kind,
    /// Pan, tilt and zoom.
    #[arg(long)]
    pub(super) ptz: bool,
    /// Microphone and speaker.
    #[arg(long)]
    pub(super) audio: bool,
    /// SD card slot.
    #[arg(long)]
    pub(super) sd: bool,
}

#[derive(Subcommand)]
pub(super) enum ModelCmd {
    /// List the models with their capabilities and device counts.
    List,
    /// Add a model.
    Add(ModelArgs),
    /// Change a model (its devices follow a rename).
    Set {
        id: i64,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Remove a model no device carries.
    Remove { id: i64 },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum Kind {
    Pu,
    Nvr,
    Mtu,
    /// A cloud storage unit (`peercam cs`).
    Cs,
}

#[derive(Subcommand)]
enum UserCmd {
    /// List accounts (`--pending` for those awaiting approval).
    List {
        #[arg(long)]
        pending: bool,
    },
    /// Search accounts (H.626.4 6.2): by a part of the login, name or contract id, and by
    /// status; one page of `--limit` unless `--all`.
    ///
    /// Example: `peercam admin users search 555 --status pending_crm --all --json`
    Search {
        /// Text to find in the login (phone number or username), name or contract id, any
        /// case; empty: every account.
        #[arg(default_value = "")]
        query: String,
        /// Only accounts with this status: pending_crm, pending_approval, active, disabled.
        #[arg(long)]
        status: Option<String>,
        /// Accounts per page (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this cursor (printed after a page when more follow).
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the pages to the end.
        #[arg(long)]
        all: bool,
    },
    /// Approve an account by id or phone number (H.626.4 6.1.1); the CRM is asked first
    /// when one is configured.
    Approve { who: String },
    /// Disable an account by id or phone number: its sessions end at once.
    Disable { who: String },
    /// Enable a disabled account again (also one the CRM refused).
    Enable { who: String },
    /// Send an owner a one-time code by SMS to set a new password with (`peercam cu
    /// reset-password`); its sessions end when it does. At most 3 per account per hour.
    ResetPassword { who: String },
}

/// Generates `count` identities, records their public keys in the CMU, writes the files.
pub(crate) async fn provision(
    client: &Client,
    count: usize,
    vendor: &str,
    model: &str,
    kind: DeviceKind,
    out: &Path,
) -> anyhow::Result<Vec<DeviceIdentity>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ids = new_identities(count, vendor, model, kind)?;
    record(client, &ids).await?;
    for i in &ids {
        let path = out.join(format!("{}.identity.toml", i.device_id));
        peercam_net::pki::write_file(&path, &i.to_toml(), true)?;
    }
    Ok(ids)
}

/// `count` fresh identities: a key pair and a bind code each.
pub(crate) fn new_identities(
    count: usize,
    vendor: &str,
    model: &str,
    kind: DeviceKind,
) -> anyhow::Result<Vec<DeviceIdentity>> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let mut seed = [0u8; 32];
        let mut idb = [0u8; 10];
        let mut code = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        getrandom::fill(&mut idb).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        getrandom::fill(&mut code).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        let key = SigningKey::from_bytes(&seed);
        ids.push(DeviceIdentity::new(
            DeviceId::from_random(idb),
            kind,
            vendor.into(),
            model.into(),
            &key,
            BindCode::from_random(code),
        ));
    }
    Ok(ids)
}

/// Records identities' public keys and bind code digests in the CMU, 5,000 a request.
pub(crate) async fn record(client: &Client, ids: &[DeviceIdentity]) -> anyhow::Result<()> {
    for chunk in ids.chunks(5000) {
        let devices = chunk
            .iter()
            .map(|i| {
                Ok(ProvisionDevice {
                    id: i.device_id.to_string(),
                    kind: i.kind,
                    public_key: peercam_signal::register::encode_public_key(
                        &i.signing_key()?.verifying_key(),
                    ),
                    bind_code_sha256: i.bind_code.digest(&i.device_id),
                    vendor: i.vendor.clone(),
                    model: i.model.clone(),
                })
            })
            .collect::<Result<Vec<_>, peercam_signal::register::KeyError>>()?;
        client
            .provision(devices)
            .await
            .context("recording the devices in the CMU")?;
    }
    Ok(())
}

/// How the operator named an account on the command line.
#[derive(Debug, PartialEq, Eq)]
enum Who {
    /// Its numeric id.
    Id(i64),
    /// Its login: an E.164 phone number (normalised) or a username.
    Login(String),
}

/// An account id is digits only; anything else (`+15550190346`, a username) is a login.
/// (`"+15550190346".parse::<i64>()` succeeds, so a phone number must not be tried as an id.)
fn parse_who(who: &str) -> Who {
    let who = who.trim();
    if !who.is_empty()
        && who.bytes().all(|b| b.is_ascii_digit())
        && let Ok(id) = who.parse()
    {
        return Who::Id(id);
    }
    Who::Login(
        who.parse::<peercam_base::Phone>()
            .map_or_else(|_| who.to_lowercase(), |p| p.to_string()),
    )
}

async fn find_user(c: &Client, who: &str) -> anyhow::Result<i64> {
    let phone = match parse_who(who) {
        Who::Id(id) => return Ok(id),
        Who::Login(login) => login,
    };
    c.admin_users(None)
        .await?
        .into_iter()
        .find(|u| u.login == phone)
        .map(|u| u.id)
        .with_context(|| format!("no account {who}"))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = args.conn.client().await?;
    let json = args.conn.json;
    match args.command {
        Cmd::Devices(DevCmd::Provision {
            count,
            vendor,
            model,
            kind,
            out,
        }) => {
            let kind = match kind {
                Kind::Pu => DeviceKind::Pu,
                Kind::Nvr => DeviceKind::Nvr,
                Kind::Mtu => DeviceKind::Mtu,
                Kind::Cs => DeviceKind::Cs,
            };
            let ids = provision(&c, count, &vendor, &model, kind, &out).await?;
            let rows: Vec<_> = ids
                .iter()
                .map(|i| serde_json::json!({"id": i.device_id, "bind_code": i.bind_code.display()}))
                .collect();
            print(json, &rows, |_| {
                for i in &ids {
                    println!(
                        "{}  bind code {}  -> {}",
                        i.device_id,
                        i.bind_code.display(),
                        out.join(format!("{}.identity.toml", i.device_id)).display()
                    );
                }
            })?;
        }
        Cmd::Packages(PkgCmd::Upload { manifest, payload }) => {
            let text = std::fs::read(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            let release: peercam_signal::upgrade::SignedManifest =
                serde_json::from_slice(&text).context("not a signed manifest")?;
            let view = c.upload_manifest(&release).await?;
            let bar = indicatif::ProgressBar::new(view.size);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("uploading {} {}", view.model, view.version));
            let b2 = bar.clone();
            let view = c
                .upload_payload(&view.sha256, &payload, move |n| b2.set_position(n))
                .await?;
            bar.finish_and_clear();
            print(json, &view, |v| {
                println!(
                    "{} {} stored ({} bytes, sha256 {})",
                    v.model, v.version, v.size, v.sha256
                );
            })?;
        }
        Cmd::Settings(super::cu::SettingsCmd::Get) => {
            let s = c.platform_params().await?;
            print(json, &s, |s| {
                println!("revision {}", s.revision);
                if let Ok(t) = serde_json::to_string_pretty(&s.params) {
                    println!("{t}");
                }
            })?;
        }
        Cmd::Settings(super::cu::SettingsCmd::Set { changes }) => {
            let next = super::cu::edited(&c.platform_params().await?.params, &changes)?;
            let s = c.set_platform_params(move |p| *p = next).await?;
            print(json, &s, |s| println!("applied; revision {}", s.revision))?;
        }
        Cmd::Sessions { last } => {
            let v = c.admin_sessions().await?;
            print(json, &v, |v| {
                let total: u64 = v.by_path.values().sum();
                println!("{total} live-view sessions by path:");
                for (path, n) in &v.by_path {
                    let share = if total == 0 {
                        0.0
                    } else {
                        *n as f64 / total as f64
                    };
                    let bar = "#".repeat((share * 40.0).round() as usize);
                    println!("  {path:<8} {n:>7}  {:>5.1}%  {bar}", share * 100.0);
                }
                println!("\nlatest:");
                println!(
                    "  {:<10} {:<18} {:>6} {:<8} {:>9} {:>7} {:>10}",
                    "at", "camera", "user", "path", "connect", "seconds", "bytes"
                );
                for s in v.recent.iter().take(last) {
                    println!(
                        "  {:<10} {:<18} {:>6} {:<8} {:>6} ms {:>7} {:>10}",
                        s.at,
                        s.device_id,
                        s.user_id,
                        s.report.path.as_str(),
                        s.report.connect_ms,
                        s.report.seconds,
                        s.report.bytes
                    );
                }
            })?;
        }
        Cmd::Packages(PkgCmd::List) => {
            let l = c.packages().await?;
            print(json, &l, |l| {
                for p in l {
                    println!(
                        "{:<12} {:<10} {:>12} bytes  expires {}  {}  {}",
                        p.model,
                        p.version,
                        p.size,
                        p.expires_at,
                        if p.stored {
                            "stored"
                        } else {
                            "payload missing"
                        },
                        p.sha256
                    );
                }
            })?;
        }
        Cmd::Devices(DevCmd::List) => {
            let l = c.admin_devices().await?;
            print(json, &l, |l| {
                for d in l {
                    println!(
                        "{:<20} {:<4} {:<10} {:<10} {:<8} {:<12} owner {}",
                        d.id,
                        d.kind.as_str(),
                        d.vendor,
                        d.model,
                        if d.online { "online" } else { "offline" },
                        d.node.as_deref().unwrap_or("-"),
                        d.owner.map_or_else(|| "-".into(), |o| o.to_string())
                    );
                }
            })?;
        }
        Cmd::Users(cmd) => users(&c, json, cmd).await?,
        Cmd::Devices(cmd) => super::equipment::devices(&c, json, cmd).await?,
        Cmd::Vendors(cmd) => super::equipment::vendors(&c, json, cmd).await?,
        Cmd::Models(cmd) => super::equipment::models(&c, json, cmd).await?,
        Cmd::Faults { all, action } => faults(&c, json, all, action).await?,
        Cmd::Campaigns(cmd) => super::fleet::campaigns(&c, json, cmd).await?,
        Cmd::Audit(cmd) => super::fleet::audit(&c, json, cmd).await?,
        Cmd::Usage { period } => super::billing::usage(&c, json, period.as_deref()).await?,
        Cmd::Invoices { period, csv, close } => {
            super::billing::invoices(&c, json, period.as_deref(), (csv, close)).await?;
        }
        Cmd::Reports { which, period, out } => {
            super::billing::report(&c, json, which, period.as_deref(), out).await?;
        }
        Cmd::Announcements(cmd) => super::billing::announcements(&c, json, cmd).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `peercam admin faults ...` (6.1.14).
async fn faults(c: &Client, json: bool, all: bool, action: Option<FaultCmd>) -> anyhow::Result<()> {
    let line = |f: &peercam_signal::cm::FaultView| {
        println!(
            "{:<6} {:<13} {:<21} {:<22} {}",
            f.id, f.state, f.kind, f.subject, f.detail
        );
    };
    match action {
        None => {
            let l = c.faults(all).await?;
            print(json, &l, |l| {
                if l.is_empty() {
                    println!("no faults");
                }
                for f in l {
                    line(f);
                }
            })?;
        }
        Some(FaultCmd::Ack { id }) => {
            let f = c.fault_ack(id).await?;
            print(json, &f, line)?;
        }
        Some(FaultCmd::Resolve { id }) => {
            let f = c.fault_resolve(id).await?;
            print(json, &f, line)?;
        }
    }
    Ok(())
}

/// `peercam admin users ...`: list, approve (6.1.1) and disable accounts.
async fn users(c: &Client, json: bool, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::List { pending } => {
            let l = c.admin_users(pending.then_some("pending_approval")).await?;
            print(json, &l, |l| {
                l.iter().for_each(|u| {
                    println!("{:<5} {:<18} {:?} {:?}", u.id, u.login, u.role, u.status)
                })
            })?;
        }
        UserCmd::Approve { who } => {
            let id = find_user(c, &who).await?;
            let u = c.approve(id).await?;
            print(json, &u, |u| println!("approved {} (id {})", u.login, u.id))?;
        }
        UserCmd::Disable { who } => {
            let id = find_user(c, &who).await?;
            let u = c.disable(id).await?;
            print(json, &u, |u| println!("disabled {} (id {})", u.login, u.id))?;
        }
        UserCmd::Enable { who } => {
            let id = find_user(c, &who).await?;
            let u = c.enable(id).await?;
            print(json, &u, |u| println!("enabled {} (id {})", u.login, u.id))?;
        }
        UserCmd::ResetPassword { who } => {
            let id = find_user(c, &who).await?;
            c.reset_password(id).await?;
            let done = serde_json::json!({"account": id, "code_sent": true});
            print(json, &done, |_| {
                println!(
                    "a one-time code went to account {id} by SMS; it sets a new password with it"
                );
            })?;
        }
        UserCmd::Search {
            query,
            status,
            limit,
            cursor,
            all,
        } => search_users(c, json, (&query, status.as_deref()), limit, cursor, all).await?,
    }
    Ok(())
}

/// `peercam admin users search`: one page, or every page with a spinner.
async fn search_users(
    c: &Client,
    json: bool,
    (query, status): (&str, Option<&str>),
    limit: u32,
    mut cursor: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    let q = Some(query).filter(|q| !q.is_empty());
    let bar = (all && !json).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_message("searching accounts");
        b
    });
    let mut rows = Vec::new();
    let next = loop {
        let (page, next) = c
            .admin_users_page(q, status, limit, cursor.as_deref())
            .await?;
        rows.extend(page);
        if let Some(b) = &bar {
            b.set_message(format!("{} accounts", rows.len()));
            b.tick();
        }
        match next {
            Some(n) if all => cursor = Some(n),
            other => break other,
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let out = serde_json::json!({"users": rows, "next_cursor": next});
    print(json, &out, |_| {
        for u in &rows {
            println!(
                "{:<6} {:<18} {:<8} {:<17} 2fa:{:<4} {}{}",
                u.id,
                u.login,
                format!("{:?}", u.role).to_lowercase(),
                serde_json::to_value(u.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                if u.totp { "on" } else { "off" },
                u.name.as_deref().unwrap_or(""),
                u.crm_note
                    .as_deref()
                    .map(|n| format!(" (CRM: {n})"))
                    .unwrap_or_default()
            );
        }
        if let Some(n) = &next {
            println!("more: --cursor {n}");
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_1_1_admin_names_accounts_by_id_or_phone() {
        assert_eq!(parse_who("42"), Who::Id(42));
        assert_eq!(parse_who("+15550190346"), Who::Login("+15550190346".into()));
        assert_eq!(parse_who(" Kid.One "), Who::Login("kid.one".into()));
        assert_eq!(parse_who("-3"), Who::Login("-3".into()));
    }
}
