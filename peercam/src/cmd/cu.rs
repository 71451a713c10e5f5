use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use peercam_base::{Scope, ScopeSet};
use peercam_cu::Client;
use serde::{Deserialize, Serialize};

mod commands;
use commands::*;

/// Connection options shared by `peercam cu` and `peercam admin`.
#[derive(clap::Args, Clone)]
pub(crate) struct Conn {
    /// CMU API base URL, e.g. https://127.0.0.1:7000 (default: the saved login's).
    #[arg(long, env = "PEERCAM_API", global = true)]
    pub(crate) api: Option<String>,
    /// CA certificate (PEM) the CMU's certificate must chain to.
    #[arg(long, env = "PEERCAM_CA", global = true)]
    pub(crate) ca: Option<PathBuf>,
    /// Log in as this phone number or username for this command only.
    #[arg(long, env = "PEERCAM_USER", global = true)]
    pub(crate) user: Option<String>,
    /// Password for --user.
    #[arg(long, env = "PEERCAM_PASSWORD", global = true, hide_env_values = true)]
    pub(crate) password: Option<String>,
    /// The 6-digit code of the authenticator app (or a recovery code), for an account with
    /// two-factor sign-in (`peercam cu totp`).
    #[arg(long, env = "PEERCAM_TOTP", global = true, hide_env_values = true)]
    pub(crate) totp: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// Customer unit: the command-line client of the platform.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Sign up with a mobile number; a code arrives by SMS (H.626.4 6.1.1).
    Signup {
        phone: String,
        #[arg(long, env = "PEERCAM_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
    },
    /// Confirm the SMS code; the account then waits for the operator's approval.
    Confirm { phone: String, code: String },
    /// Log in and save the session (in $PEERCAM_HOME or ~/.config/peercam).
    Login,
    /// End the saved session.
    Logout,
    /// Show the logged-in account.
    Whoami,
    /// Change the password.
    Passwd {
        #[arg(long, hide_env_values = true)]
        old: String,
        #[arg(long, hide_env_values = true)]
        new: String,
    },
    /// List devices you own or that were shared with you, with online status.
    Devices,
    /// Bind a device with the id and bind code on its sticker (H.626.4 8.2).
    Bind {
        device: String,
        bind_code: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Unbind a device you own.
    Unbind { device: String },
    /// Rename a device you own.
    Rename { device: String, name: String },
    /// Ask the device itself, through the platform.
    Status { device: String },
    /// Watch the camera directly for a while and record what arrives into an MP4 file
    /// (RTSP over TCP, H.626.4 8.4 and 6.3.1).
    Play {
        device: String,
        /// How long to record, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The MP4 file to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        caps: CapsArgs,
        /// Take only this path: lan, public, mapped, punched or relay (default: the best
        /// that connects, 8.3).
        #[arg(long)]
        path: Option<String>,
    },
    /// Talk to a camera (intercom, H.626.4 6.1.8): play a WAV file through its speaker over
    /// the ONVIF audio back channel of RTSP.
    ///
    /// The file must be 16-bit PCM, mono, 8000 Hz (convert with e.g. `sox in.wav -c 1 -r 8000
    /// -b 16 out.wav`). It is sent as G.711 (PCMU, else PCMA) in 20 ms RTP packets at real-time
    /// pace over the RTSP connection, then the session is torn down. The device must be yours
    /// or shared with you with the `talk` scope, and the camera must have a speaker; otherwise
    /// the camera answers 551 and nothing is sent.
    Talk {
        device: String,
        /// The WAV file to say.
        #[arg(long)]
        file: PathBuf,
        /// Take only this path: lan, public, mapped, punched or relay (default: the best
        /// that connects, 8.3).
        #[arg(long)]
        path: Option<String>,
    },
    /// Print an rtsp:// URL (with a one-time token, valid for a minute) that ffplay,
    /// ffmpeg or GStreamer open directly (H.626.4 8.4).
    Url {
        device: String,
        #[command(flatten)]
        caps: CapsArgs,
    },
    /// Manage sub-accounts (6.1.10).
    #[command(subcommand)]
    Sub(SubCmd),
    /// Share a device with a sub-account (H.626.4 8.6).
    Share {
        device: String,
        #[arg(long)]
        to: String,
        /// Comma-separated: live,playback,ptz,talk,config (talk: speak through the camera)
        #[arg(long, default_value = "live")]
        scopes: String,
    },
    /// Stop sharing a device with a sub-account.
    Unshare {
        device: String,
        #[arg(long)]
        from: String,
    },
    /// Who a device is shared with.
    Shares { device: String },
    /// Your audit log.
    Audit,
    /// Turn or zoom a camera, or use its presets (H.626.4 8.5). Positions: pan and tilt
    /// -1..1, zoom 1..4.
    Ptz {
        device: String,
        #[command(subcommand)]
        op: PtzOp,
    },
    /// Show the networks a camera sees, or move it to another one (H.626.4 6.1.11). If the
    /// platform cannot be reached through the new network, the camera returns to the old one
    /// by itself.
    Wlan {
        device: String,
        /// Join this network.
        #[arg(long)]
        join: Option<String>,
        /// open, wpa2_psk or wpa3_sae.
        #[arg(long, default_value = "wpa2_psk")]
        security: String,
        /// The passphrase (better from the environment than the command line).
        #[arg(
            long,
            env = "PEERCAM_WLAN_PASSPHRASE",
            hide_env_values = true,
            default_value = ""
        )]
        passphrase: String,
    },
    /// Show a device's upgrade, or order one (H.626.4 8.11.1): the device checks the signed
    /// release, downloads it, restarts into it and keeps it only if it comes back online.
    Upgrade {
        device: String,
        /// The version to install.
        #[arg(long)]
        to: Option<String>,
        /// Follow the progress until the upgrade ends.
        #[arg(long)]
        wait: bool,
    },
    /// Update this program to the platform's current client release (H.626.4 8.11.2): ask
    /// the CMU, check the release's signature, download it, replace this executable and
    /// report completion.
    SelfUpdate {
        /// Only say whether an update is available.
        #[arg(long)]
        check: bool,
        /// Release public key(s) trusted for client releases (base64url).
        #[arg(
            long = "release-key",
            env = "PEERCAM_RELEASE_KEYS",
            value_delimiter = ',',
            required = true
        )]
        release_keys: Vec<String>,
    },
    /// Your own settings on the platform (H.626.4 8.9.2): `settings get`, or `settings set
    /// language=zh-CN utc_offset_min=480`.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Read or change a camera's parameters (H.626.4 8.9.1).
    #[command(subcommand)]
    Params(ParamsCmd),
    #[command(flatten)]
    Rec(super::rec::RecCmd),
    /// Share a clip by link, without an account for who watches it (8.7.1 download): `clip
    /// share DEVICE --from .. --to ..`, `clip list`, `clip revoke ID`.
    #[command(subcommand)]
    Clip(super::share::ShareCmd),
    /// Alarms of your cameras and account, alarm strategies, simulated inputs, message
    /// templates (H.626.4 8.8, 6.1.9).
    #[command(subcommand)]
    Alarms(super::alarms::AlarmsCmd),
    /// A camera's timed snapshots, each sent to a phone as an SMS with a link (H.626.4
    /// 6.1.12): `snapshots get DEVICE`, `snapshots set DEVICE --every-min 30 --phone +...`,
    /// `snapshots off DEVICE`.
    #[command(subcommand)]
    Snapshots(super::snapshots::SnapshotsCmd),
    /// Two-factor sign-in with an authenticator app (TOTP, RFC 6238): `totp status`,
    /// `totp enable` (shows the secret and its otpauth:// URI), `totp confirm CODE` (turns
    /// it on, prints the recovery codes once), `totp disable --code CODE`. Then log in with
    /// `--totp CODE`.
    #[command(subcommand)]
    Totp(super::totp::TotpCmd),
    /// Set a new password with the code the operator's reset sent by SMS; every session of
    /// the account ends.
    ResetPassword {
        phone: String,
        code: String,
        #[arg(long, env = "PEERCAM_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
    },
    /// Factory-reset a camera you own (H.626.4 8.10): it forgets its settings, is unbound,
    /// and every share and live session ends. Binding it again needs its bind code.
    Reset {
        device: String,
        /// Also delete the camera's local recordings.
        #[arg(long)]
        wipe_recordings: bool,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum PtzOp {
    /// Move continuously at these speeds (-1..1) until `stop` or the timeout.
    Move {
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        pan: f32,
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        tilt: f32,
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        zoom: f32,
        /// Stop by itself after this many milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u32,
    },
    /// Stop moving.
    Stop,
    /// Go to an absolute position.
    To {
        #[arg(long, allow_hyphen_values = true)]
        pan: f32,
        #[arg(long, allow_hyphen_values = true)]
        tilt: f32,
        #[arg(long, default_value_t = 1.0)]
        zoom: f32,
    },
    /// Move by an offset.
    By {
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        pan: f32,
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        tilt: f32,
        #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
        zoom: f32,
    },
    /// Remember the current position as preset SLOT (1-32).
    PresetSet {
        slot: u8,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Go to preset SLOT.
    PresetGoto { slot: u8 },
    /// Forget preset SLOT.
    PresetRemove { slot: u8 },
}

#[derive(Subcommand)]
pub(crate) enum SettingsCmd {
    /// Show the settings and their revision.
    Get,
    /// Change settings: FIELD=VALUE pairs; all apply together or none does.
    Set {
        #[arg(required = true, value_name = "FIELD=VALUE")]
        changes: Vec<String>,
    },
}

/// Applies FIELD=VALUE changes to a document and checks it still decodes.
pub(crate) fn edited<T: Serialize + serde::de::DeserializeOwned>(
    current: &T,
    changes: &[String],
) -> anyhow::Result<T> {
    let mut doc = serde_json::to_value(current)?;
    for c in changes {
        apply_change(&mut doc, c)?;
    }
    serde_json::from_value(doc).map_err(|e| anyhow::anyhow!("invalid value: {e}"))
}

#[derive(Subcommand)]
pub(crate) enum ParamsCmd {
    /// Show the parameters, their revision and the night-vision state.
    Get { device: String },
    /// Change parameters: FIELD=VALUE pairs with dotted names, e.g.
    /// `video.max_fps=10 osd.text="GATE" night.mode=auto`. Asks the platform's permission
    /// first (8.9.1); all changes apply together or none does.
    Set {
        device: String,
        #[arg(required = true, value_name = "FIELD=VALUE")]
        changes: Vec<String>,
    },
}

/// Applies `a.b.c=value` to a parameter document (value as JSON, else as a string).
fn apply_change(doc: &mut serde_json::Value, change: &str) -> anyhow::Result<()> {
    let Some((path, value)) = change.split_once('=') else {
        bail!("{change:?}: expected FIELD=VALUE, e.g. video.max_fps=10");
    };
    let value: serde_json::Value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    let mut at = &mut *doc;
    for key in path.split('.') {
        at = at.get_mut(key).ok_or_else(|| {
            anyhow::anyhow!("no parameter {path:?} (see `peercam cu params get`)")
        })?;
    }
    *at = value;
    Ok(())
}

/// The viewer's capabilities (H.626.4 clause 7); the camera adapts its encoding to them.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct CapsArgs {
    /// Widest picture wanted, pixels (1280 gives 720P, 704 D1, 352 CIF).
    #[arg(long)]
    pub(crate) max_width: Option<u16>,
    /// Tallest picture wanted, pixels.
    #[arg(long)]
    pub(crate) max_height: Option<u16>,
    /// Highest frame rate, 1-25.
    #[arg(long)]
    pub(crate) fps: Option<u8>,
    /// Highest video bit rate, kbit/s.
    #[arg(long)]
    pub(crate) kbps: Option<u32>,
    /// Audio codec: pcmu, pcma, g722 or none.
    #[arg(long, value_parser = parse_audio)]
    pub(crate) audio: Option<AudioChoice>,
}

/// `--audio`: a codec, or no audio track.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AudioChoice(Option<peercam_signal::play::AudioCodec>);

fn parse_audio(s: &str) -> anyhow::Result<AudioChoice> {
    use peercam_signal::play::AudioCodec;
    match s {
        "pcmu" => Ok(AudioChoice(Some(AudioCodec::Pcmu))),
        "pcma" => Ok(AudioChoice(Some(AudioCodec::Pcma))),
        "g722" => Ok(AudioChoice(Some(AudioCodec::G722))),
        "none" => Ok(AudioChoice(None)),
        _ => bail!("expected pcmu, pcma, g722 or none"),
    }
}

impl CapsArgs {
    pub(crate) fn request(&self) -> peercam_signal::cm::PlayRequest {
        peercam_signal::cm::PlayRequest {
            max_width: self.max_width,
            max_height: self.max_height,
            max_fps: self.fps,
            max_kbps: self.kbps,
            audio: self.audio.map(|a| a.0),
        }
    }
}

#[derive(Subcommand)]
enum SubCmd {
    /// List sub-accounts.
    List,
    /// Create a sub-account.
    Create {
        username: String,
        #[arg(long, env = "PEERCAM_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
    },
    /// Delete a sub-account and its shares.
    Delete { username: String },
}

#[derive(Serialize, Deserialize)]
struct Saved {
    api: String,
    ca: Option<PathBuf>,
    token: String,
}

fn saved_path() -> PathBuf {
    let home = std::env::var_os("PEERCAM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
                });
            base.join("peercam")
        });
    home.join("session.json")
}

fn load_saved() -> Option<Saved> {
    std::fs::read(saved_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

impl Conn {
    /// A client without a session.
    pub(crate) fn anonymous(&self) -> anyhow::Result<Client> {
        let saved = load_saved();
        let api = self
            .api
            .clone()
            .or_else(|| saved.as_ref().map(|s| s.api.clone()))
            .context("no CMU given: pass --api URL (or log in first)")?;
        let ca = self.ca.clone().or_else(|| saved.and_then(|s| s.ca));
        let pem = ca
            .as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("reading CA {}", p.display())))
            .transpose()?;
        Ok(Client::new(&api, pem.as_deref())?)
    }

    /// A logged-in client: with --user/--password, or from the saved session.
    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        let c = self.anonymous()?;
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            let (c, _) = c.login_totp(u, p, self.totp.as_deref()).await?;
            return Ok(c);
        }
        match load_saved() {
            Some(s) => Ok(c.with_token(s.token)),
            None => bail!(
                "not logged in: run `peercam cu login --api URL --user U --password P`, or pass --user and --password"
            ),
        }
    }
}

pub(crate) fn print<T: Serialize>(
    json: bool,
    value: &T,
    table: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table(value);
    }
    Ok(())
}

fn parse_scopes(s: &str) -> anyhow::Result<ScopeSet> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse::<Scope>().map_err(anyhow::Error::msg))
        .collect()
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let conn = &args.conn;
    let json = conn.json;
    match args.command {
        Cmd::Signup {
            phone,
            new_password,
        } => {
            let s = conn.anonymous()?.signup(&phone, &new_password).await?;
            print(json, &s, |s| println!("{:?}: {}", s.status, s.next))?;
        }
        Cmd::Confirm { phone, code } => {
            let s = conn.anonymous()?.confirm(&phone, &code).await?;
            print(json, &s, |s| println!("{:?}: {}", s.status, s.next))?;
        }
        Cmd::Login => login(conn, json).await?,
        Cmd::Rec(r) => super::rec::run(conn, r).await?,
        Cmd::Clip(s) => super::share::run(conn, s).await?,
        Cmd::Alarms(a) => super::alarms::run(conn, a).await?,
        Cmd::Snapshots(a) => super::snapshots::run(conn, a).await?,
        Cmd::Totp(t) => super::totp::run(conn, t).await?,
        Cmd::ResetPassword {
            phone,
            code,
            new_password,
        } => {
            conn.anonymous()?
                .password_reset(&phone, &code, &new_password)
                .await?;
            print(json, &serde_json::json!({"password_set": true}), |_| {
                println!("new password set; log in with it (every other session ended)");
            })?;
        }
        Cmd::Logout => {
            conn.client().await?.logout().await?;
            let _ = std::fs::remove_file(saved_path());
            println!("logged out");
        }
        Cmd::Whoami => {
            let me = conn.client().await?.me().await?;
            print(json, &me, |u| {
                println!("{} (id {}, {:?}, {:?})", u.login, u.id, u.role, u.status)
            })?;
        }
        Cmd::Passwd { old, new } => {
            conn.client().await?.change_password(&old, &new).await?;
            println!("password changed; other sessions were ended");
        }
        Cmd::Devices => devices(conn, json).await?,
        Cmd::Bind {
            device,
            bind_code,
            name,
        } => {
            let d = conn
                .client()
                .await?
                .bind(&device, &bind_code, name.as_deref())
                .await?;
            print(json, &d, |d| println!("bound {} as {:?}", d.id, d.name))?;
        }
        Cmd::Unbind { device } => {
            conn.client().await?.unbind(&device).await?;
            println!("unbound {device}");
        }
        Cmd::Rename { device, name } => {
            let d = conn.client().await?.rename(&device, &name).await?;
            print(json, &d, |d| println!("{} is now {:?}", d.id, d.name))?;
        }
        Cmd::Status { device } => status(conn, json, &device).await?,
        Cmd::Play {
            device,
            seconds,
            out,
            caps,
            path,
        } => play(conn, json, (device, path), seconds, out, caps).await?,
        Cmd::Talk { device, file, path } => talk(conn, json, (device, path), file).await?,
        Cmd::Url { device, caps } => url(conn, json, &device, &caps).await?,
        Cmd::Sub(cmd) => subaccounts(conn, json, cmd).await?,
        Cmd::Share { device, to, scopes } => share(conn, json, &device, &to, &scopes).await?,
        Cmd::Unshare { device, from } => {
            conn.client().await?.unshare(&device, &from).await?;
            println!("{device} is no longer shared with {from}");
        }
        Cmd::Shares { device } => {
            let l = conn.client().await?.shares(&device).await?;
            print(json, &l, |l| {
                l.iter()
                    .for_each(|s| println!("{} {:?}", s.username, s.scopes))
            })?;
        }
        Cmd::Ptz { device, op } => ptz(conn, json, &device, op).await?,
        Cmd::Wlan {
            device,
            join,
            security,
            passphrase,
        } => wlan(conn, json, &device, join, security, passphrase).await?,
        Cmd::Upgrade { device, to, wait } => return upgrade(conn, json, &device, to, wait).await,
        Cmd::SelfUpdate {
            check,
            release_keys,
        } => {
            return self_update(conn, check, &release_keys).await;
        }
        Cmd::Settings(SettingsCmd::Get) => {
            let s = conn.client().await?.user_params().await?;
            print(json, &s, |s| {
                println!("revision {}", s.revision);
                if let Ok(t) = serde_json::to_string_pretty(&s.params) {
                    println!("{t}");
                }
            })?;
        }
        Cmd::Settings(SettingsCmd::Set { changes }) => {
            let client = conn.client().await?;
            let next = edited(&client.user_params().await?.params, &changes)?;
            let s = client.set_user_params(move |p| *p = next).await?;
            print(json, &s, |s| println!("applied; revision {}", s.revision))?;
        }
        Cmd::Params(ParamsCmd::Get { device }) => params_get(conn, json, &device).await?,
        Cmd::Params(ParamsCmd::Set { device, changes }) => {
            let client = conn.client().await?;
            // Check the edits locally first, so a typo is named before anything is asked.
            let next = edited(&client.params(&device).await?.params, &changes)?;
            let s = client.set_params(&device, move |p| *p = next).await?;
            print(json, &s, |s| println!("applied; revision {}", s.revision))?;
        }
        Cmd::Reset {
            device,
            wipe_recordings,
            yes,
        } => reset(conn, &device, wipe_recordings, yes).await?,
        Cmd::Audit => audit(conn, json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls a device's upgrade with a progress bar until it ends: committed (running the
/// target), rolled back or failed. The device is offline while it restarts.
async fn follow_upgrade(
    client: &Client,
    device: &str,
    mut s: peercam_signal::upgrade::UpgradeStatus,
    target: Option<&str>,
) -> anyhow::Result<peercam_signal::upgrade::UpgradeStatus> {
    let bar = indicatif::ProgressBar::new(s.total.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        bar.set_length(s.total.max(1));
        bar.set_position(s.done);
        bar.set_message(s.state.clone());
        let done = match s.state.as_str() {
            "failed" | "rolled_back" => true,
            "committed" => target.is_none_or(|t| s.running == t),
            _ => false,
        };
        if done || std::time::Instant::now() > deadline {
            bar.finish_and_clear();
            return Ok(s);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        match client.upgrade_status(device).await {
            Ok(next) => s = next,
            // Offline while it restarts into the new release.
            Err(e) if e.code() == Some("device_offline") => bar.set_message("restarting"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// This client's platform name for releases (`cli-linux-x86_64`, ...).
fn client_platform() -> String {
    format!("cli-{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

fn sha256_file(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// H.626.4 8.11.2 for the CLI.
async fn self_update(conn: &Conn, check: bool, keys: &[String]) -> anyhow::Result<ExitCode> {
    use peercam_signal::upgrade::{Policy, SignedManifest, parse_key};
    let keys = keys
        .iter()
        .map(|k| parse_key(k))
        .collect::<Result<Vec<_>, _>>()
        .context("--release-key")?;
    let exe = std::env::current_exe().context("locating this executable")?;
    let sidecar = exe.with_extension("release.json");
    // The version running: the installed release's, if this executable is that release.
    let installed: Option<SignedManifest> = std::fs::read(&sidecar)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|r: &SignedManifest| {
            std::fs::metadata(&exe).is_ok_and(|m| m.len() == r.manifest.size)
                && sha256_file(&exe).is_ok_and(|h| h == r.manifest.sha256)
        });
    let current = installed.as_ref().map_or_else(
        || env!("CARGO_PKG_VERSION").to_owned(),
        |r| r.manifest.version.clone(),
    );
    let platform = client_platform();
    let client = conn.anonymous()?;
    let update = client.client_update(&platform, &current).await?;
    let (Some(release), Some(url)) = (update.release, update.url) else {
        println!("{platform} {current} is up to date");
        return Ok(ExitCode::SUCCESS);
    };
    let version = release
        .verify(&Policy {
            keys: &keys,
            threshold: 1,
            model: &platform,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
            installed: current.parse().unwrap_or_default(),
        })
        .context("the offered release is not acceptable")?;
    if check {
        println!("{platform}: {version} is available (running {current})");
        return Ok(ExitCode::SUCCESS);
    }
    let dir = exe.parent().context("this executable has no directory")?;
    let tmp = dir.join(format!(".peercam-update-{version}"));
    let bar = indicatif::ProgressBar::new(release.manifest.size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "downloading {msg} [{bar:40}] {bytes}/{total_bytes}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(version.to_string());
    let b2 = bar.clone();
    let got = client
        .download(&url, &tmp, move |n| b2.set_position(n))
        .await;
    bar.finish_and_clear();
    let outcome = match got {
        Ok(n) if n == release.manifest.size && sha256_file(&tmp)? == release.manifest.sha256 => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::rename(&tmp, &exe).with_context(|| format!("replacing {}", exe.display()))?;
            std::fs::write(&sidecar, serde_json::to_vec_pretty(&release)?)?;
            Ok(())
        }
        Ok(_) => Err("the download does not match the release's size and SHA-256".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    let _ = std::fs::remove_file(&tmp);
    let report = peercam_signal::cm::ClientUpdateReport {
        platform: platform.clone(),
        version: version.to_string(),
        outcome: if outcome.is_ok() { "updated" } else { "failed" }.into(),
        detail: outcome.clone().err().unwrap_or_default(),
    };
    // Reported when logged in; an anonymous update still succeeds.
    if let Ok(c) = conn.client().await
        && let Err(e) = c.client_update_report(&report).await
    {
        eprintln!("note: could not report the update: {e}");
    }
    match outcome {
        Ok(()) => {
            println!("updated {platform} {current} -> {version}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => anyhow::bail!("update failed: {e}"),
    }
}
