//! `peercam`: one binary, one subcommand per H.626.4 unit.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program prints for its user"
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// peercam: a point-to-point visual surveillance system (ITU-T H.626.4).
///
/// Cameras (PU) behind home NAT register with the platform (CMU + SCU); users (CU) watch them
/// directly. Start with `peercam demo`, which runs every unit on loopback.
#[derive(Parser)]
#[command(
    name = "peercam",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every unit on loopback with embedded defaults and two synthetic cameras.
    Demo(cmd::demo::Args),
    /// Run the centre management unit (accounts, devices, authorisation, API).
    Cmu(cmd::cmu::Args),
    /// Run a service control unit node (device registration, presence, command routing).
    Scu(cmd::scu::Args),
    /// Run the CMU and one SCU node in one process (small sites).
    Platform(cmd::platform::Args),
    /// Run the camera agent (premises unit).
    Pu(cmd::pu::Args),
    /// Run the network video recorder (records cameras; playback and export).
    Nvr(cmd::nvr::Args),
    /// Run the media transmission unit (relay when no direct path exists; STUN/TURN).
    Mtu(cmd::mtu::Args),
    /// Run the cloud storage unit (stores cameras' recordings, encrypted; 8.7.1).
    ///
    /// The CS serves Cp, the upload protocol of cameras (`/cp/v1/...`, HTTPS with the
    /// configured certificate), stores each object encrypted and enforces each account's
    /// quota. With a `[platform]` section in cs.toml it registers with an SCU as a device of
    /// kind `cs` (provision one with `peercam admin devices provision --kind cs`) and takes
    /// its grant keys, accounts and cameras from the CMU (Su).
    Cs(cmd::cs::Args),
    /// Customer unit: the command-line client of the platform.
    Cu(cmd::cu::Args),
    /// Operator tasks: provision devices, approve accounts, release packages.
    Admin(cmd::admin::Args),
    /// Make release keys and sign releases, offline (H.626.4 8.11.1).
    Release(cmd::release::Args),
    /// Load a whole cluster: simulated cameras and users; rates, latencies, server CPU and memory.
    Loadgen(cmd::loadgen::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Demo(a) => cmd::demo::run(a).await,
            Command::Cmu(a) => cmd::cmu::run(a).await,
            Command::Scu(a) => cmd::scu::run(a).await,
            Command::Platform(a) => cmd::platform::run(a).await,
            Command::Pu(a) => cmd::pu::run(a).await,
            Command::Nvr(a) => cmd::nvr::run(a).await,
            Command::Mtu(a) => cmd::mtu::run(a).await,
            Command::Cs(a) => cmd::cs::run(a).await,
            Command::Cu(a) => cmd::cu::run(a).await,
            Command::Admin(a) => cmd::admin::run(a).await,
            Command::Release(a) => cmd::release::run(a).await,
            Command::Loadgen(a) => cmd::loadgen::run(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
