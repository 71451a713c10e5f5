//! `peercam cu totp status|enable|confirm|disable`: two-factor sign-in with an
//! authenticator app (TOTP, RFC 6238; issue 18 item 2).

use anyhow::Context as _;
use clap::Subcommand;

use super::cu::{Conn, print};

/// Two-factor sign-in commands.
#[derive(Subcommand)]
pub(crate) enum TotpCmd {
    /// Whether sign-in asks for a code, whether the platform requires it, recovery codes left.
    Status,
    /// Start: prints a new secret and its otpauth:// URI to add to an authenticator app;
    /// then `peercam cu totp confirm CODE` with the code the app shows.
    Enable,
    /// Turn two-factor sign-in on with the app's current code; prints the recovery codes,
    /// once: keep them somewhere safe.
    Confirm { code: String },
    /// Turn it off: needs --password and a current code (or a recovery code).
    Disable {
        /// The app's current code or a recovery code.
        #[arg(long)]
        code: String,
    },
}

pub(crate) async fn run(conn: &Conn, cmd: TotpCmd) -> anyhow::Result<()> {
    let json = conn.json;
    let c = conn.client().await?;
    match cmd {
        TotpCmd::Status => {
            let s = c.totp_state().await?;
            print(json, &s, |s| {
                println!(
                    "two-factor sign-in: {}{}; {} recovery codes left",
                    if s.enabled { "on" } else { "off" },
                    if s.required { " (required)" } else { "" },
                    s.recovery_codes_left
                );
            })?;
        }
        TotpCmd::Enable => {
            let e = c.totp_enroll().await?;
            print(json, &e, |e| {
                println!("add this to your authenticator app:\n  {}", e.uri);
                println!("or type the secret: {}", e.secret);
                println!("then run: peercam cu totp confirm CODE");
            })?;
        }
        TotpCmd::Confirm { code } => {
            let r = c.totp_confirm(&code).await?;
            print(json, &r, |r| {
                println!(
                    "two-factor sign-in is on. Recovery codes (each works once; shown only now):"
                );
                for code in &r.recovery_codes {
                    println!("  {code}");
                }
            })?;
        }
        TotpCmd::Disable { code } => {
            let password = conn
                .password
                .as_deref()
                .context("pass --password (the account's password)")?;
            c.totp_disable(password, &code).await?;
            print(json, &serde_json::json!({"enabled": false}), |_| {
                println!("two-factor sign-in is off");
            })?;
        }
    }
    Ok(())
}
