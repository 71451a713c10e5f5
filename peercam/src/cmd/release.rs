//! Release signing (H.626.4 8.11.1, docs/security.md D9), offline: release keys never need to be on
//! a server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use ed25519_dalek::SigningKey;
use peercam_signal::upgrade::{Manifest, SignedManifest};
use sha2::{Digest as _, Sha256};

/// Make release keys and sign release manifests (offline).
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a release key: the secret goes to OUT (mode 0600), the public key is printed for
    /// `release_keys` in cmu.toml and pu.toml.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a payload's manifest; add signatures from more keys with `--add-to` for a
    /// threshold above 1.
    Sign {
        /// The secret key file.
        #[arg(long)]
        key: PathBuf,
        /// Release version, MAJOR.MINOR.PATCH.
        #[arg(
            long = "release-version",
            id = "release_version",
            value_name = "VERSION"
        )]
        version: String,
        /// Hardware model it is for.
        #[arg(long)]
        model: String,
        /// Days until devices refuse it.
        #[arg(long, default_value_t = 30)]
        expires_days: u64,
        /// Add this key's signature to an existing signed manifest instead.
        #[arg(long)]
        add_to: Option<PathBuf>,
        /// Where to write the signed manifest (JSON).
        #[arg(long)]
        out: PathBuf,
        /// The payload (the `peercam` executable for the device).
        payload: Option<PathBuf>,
    },
}

fn read_key(path: &PathBuf) -> anyhow::Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .context("the key file is not base64url")?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the key file does not hold 32 bytes"))?;
    Ok(SigningKey::from_bytes(&arr))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Keygen { out } => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random: {e}"))?;
            let key = SigningKey::from_bytes(&seed);
            peercam_net::pki::write_file(&out, &URL_SAFE_NO_PAD.encode(seed), true)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{}", URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()));
        }
        Cmd::Sign {
            key,
            version,
            model,
            expires_days,
            add_to,
            out,
            payload,
        } => {
            let key = read_key(&key)?;
            let mut signed = match (add_to, payload) {
                (Some(existing), _) => {
                    let text = std::fs::read(&existing)
                        .with_context(|| format!("reading {}", existing.display()))?;
                    serde_json::from_slice::<SignedManifest>(&text)
                        .context("not a signed manifest")?
                }
                (None, Some(payload)) => {
                    let mut f = std::fs::File::open(&payload)
                        .with_context(|| format!("reading {}", payload.display()))?;
                    let mut h = Sha256::new();
                    let size = std::io::copy(&mut f, &mut h)?;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs();
                    let manifest = Manifest {
                        version,
                        model,
                        sha256: hex::encode(h.finalize()),
                        size,
                        expires_at: now + expires_days * 86_400,
                    };
                    manifest.check_shape()?;
                    SignedManifest {
                        manifest,
                        signatures: Vec::new(),
                    }
                }
                (None, None) => anyhow::bail!("give the payload to sign, or --add-to MANIFEST"),
            };
            let sig = signed.manifest.sign(&key);
            signed.signatures.retain(|s| s.key != sig.key);
            signed.signatures.push(sig);
            std::fs::write(&out, serde_json::to_vec_pretty(&signed)?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "signed {} {} ({} bytes, sha256 {}) with {} signature(s) -> {}",
                signed.manifest.model,
                signed.manifest.version,
                signed.manifest.size,
                signed.manifest.sha256,
                signed.signatures.len(),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
