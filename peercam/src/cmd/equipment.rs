//! `peercam admin devices import|search|assign|move|decommission`, `admin vendors ...` and
//! `admin models ...`: the operator's equipment management (H.626.4 6.1.1, 6.2).

use std::path::Path;

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use peercam_base::DeviceId;
use peercam_cu::{Client, CuError};
use peercam_signal::cm_equipment::{
    ImportRow, ModelRequest, ModelView, RecordingsPolicy, VendorRequest, csv_line, parse_records,
    write_import,
};
use peercam_signal::identity::{BindCode, DeviceIdentity};
use peercam_signal::ps::DeviceKind;

use super::admin::{DevCmd, Kind, ModelArgs, ModelCmd, Recordings, VendorCmd};
use super::cu::print;

/// A query string value, percent-encoded (RFC 3986 unreserved characters stay).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn kind(k: Kind) -> DeviceKind {
    match k {
        Kind::Pu => DeviceKind::Pu,
        Kind::Nvr => DeviceKind::Nvr,
        Kind::Mtu => DeviceKind::Mtu,
        Kind::Cs => DeviceKind::Cs,
    }
}

fn bar(len: u64, msg: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// A factory file (vendor, model and optionally device_id, kind, name, account) made into
/// import rows with fresh keys, as `devices provision` makes them.
fn generate(text: &str) -> anyhow::Result<(Vec<ImportRow>, Vec<DeviceIdentity>)> {
    let records = parse_records(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut it = records.into_iter();
    let (_, header) = it
        .next()
        .context("empty file: the first line names the columns")?;
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (vendor, model) = (
        col("vendor").context("no vendor column")?,
        col("model").context("no model column")?,
    );
    let (id, kind_col, name, account) =
        (col("device_id"), col("kind"), col("name"), col("account"));
    let rest: Vec<_> = it.collect();
    let progress = bar(rest.len() as u64, "making keys".into());
    let (mut rows, mut ids) = (Vec::new(), Vec::new());
    for (line, rec) in rest {
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map_or("", |s| s.trim());
        let device_id = match get(id) {
            "" => {
                let mut b = [0u8; 10];
                getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random: {e}"))?;
                DeviceId::from_random(b)
            }
            given => given
                .parse()
                .with_context(|| format!("line {line}, device_id"))?,
        };
        let k = match get(kind_col).to_ascii_lowercase().as_str() {
            "" | "pu" => DeviceKind::Pu,
            "nvr" => DeviceKind::Nvr,
            "mtu" => DeviceKind::Mtu,
            "cs" => DeviceKind::Cs,
            other => anyhow::bail!("line {line}, kind: {other} is not pu, nvr, mtu or cs"),
        };
        let mut seed = [0u8; 32];
        let mut code = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        getrandom::fill(&mut code).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        let key = SigningKey::from_bytes(&seed);
        let identity = DeviceIdentity::new(
            device_id.clone(),
            k,
            get(Some(vendor)).into(),
            get(Some(model)).into(),
            &key,
            BindCode::from_random(code),
        );
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        rows.push(ImportRow {
            line,
            device_id: device_id.to_string(),
            kind: k,
            public_key: peercam_signal::register::encode_public_key(&key.verifying_key()),
            bind_code_sha256: identity.bind_code.digest(&device_id),
            vendor: identity.vendor.clone(),
            model: identity.model.clone(),
            name: opt(get(name)),
            account: opt(get(account)),
        });
        ids.push(identity);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok((rows, ids))
}

/// Writes the identities and the factory's credentials.csv.
fn write_identities(out: &Path, ids: &[DeviceIdentity]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut creds = csv_line(&["device_id", "bind_code", "identity_file"]);
    for i in ids {
        let file = format!("{}.identity.toml", i.device_id);
        peercam_net::pki::write_file(&out.join(&file), &i.to_toml(), true)?;
        creds.push_str(&csv_line(&[
            i.device_id.as_str(),
            i.bind_code.display().as_str(),
            file.as_str(),
        ]));
    }
    peercam_net::pki::write_file(&out.join("credentials.csv"), &creds, true)?;
    Ok(())
}

/// `admin devices import FILE [--generate DIR]`.
async fn import(
    c: &Client,
    json: bool,
    file: &Path,
    generate_to: Option<&Path>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (text, ids) = match generate_to {
        None => (text, Vec::new()),
        Some(_) => {
            let (rows, ids) = generate(&text)?;
            (write_import(&rows), ids)
        }
    };
    let rows = text.lines().count().saturating_sub(1);
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("uploading and checking {rows} rows"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let r = c.import_devices(text).await;
    spinner.finish_and_clear();
    let r = match r {
        Ok(r) => r,
        Err(CuError::Api {
            code,
            fields,
            message,
            ..
        }) if code == "bad_rows" => {
            if json {
                println!("{}", serde_json::to_string_pretty(&fields)?);
            } else {
                for f in &fields {
                    let (line, column) = f.field.split_once('.').unwrap_or((&f.field, ""));
                    println!("line {line}, {column}: {}", f.message);
                }
            }
            anyhow::bail!("{message}");
        }
        Err(e) => return Err(e).context("importing"),
    };
    if let Some(out) = generate_to {
        write_identities(out, &ids)?;
    }
    print(json, &r, |r| {
        println!(
            "{} rows: {} new, {} already provisioned, {} assigned",
            r.rows, r.created, r.unchanged, r.assigned
        );
        if let Some(out) = generate_to {
            println!(
                "identities and credentials.csv for the factory in {}",
                out.display()
            );
        }
    })
}

fn device_line(d: &peercam_signal::cm::AdminDeviceView) {
    println!(
        "{:<20} {:<4} {:<12} {:<14} {:<15} {:<8} owner {:<6} {}",
        d.id,
        d.kind.as_str(),
        d.vendor,
        d.model,
        d.state,
        if d.online { "online" } else { "offline" },
        d.owner.map_or_else(|| "-".into(), |o| o.to_string()),
        d.name.as_deref().unwrap_or("")
    );
}

/// `admin devices ...` (the equipment subcommands).
pub(super) async fn devices(c: &Client, json: bool, cmd: DevCmd) -> anyhow::Result<()> {
    match cmd {
        DevCmd::Import { file, generate } => import(c, json, &file, generate.as_deref()).await,
        DevCmd::Search {
            q,
            vendor,
            model,
            online,
            owner,
            state,
            limit,
            cursor,
        } => {
            let mut query = format!("limit={limit}");
            let online = online.map(|o| o.to_string());
            for (k, v) in [
                ("q", q),
                ("vendor", vendor),
                ("model", model),
                ("online", online),
                ("owner", owner),
                ("state", state),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    query.push_str(&format!("&{k}={}", encode(&v)));
                }
            }
            let page = c.search_devices(&query).await?;
            print(json, &page, |p| {
                for d in &p.devices {
                    device_line(d);
                }
                let plus = if p.total_capped { "+" } else { "" };
                println!("{} of {}{plus} matching devices", p.devices.len(), p.total);
                if let Some(n) = &p.next_cursor {
                    println!("next page: --cursor {n}");
                }
            })
        }
        DevCmd::Assign { id, account, name } => {
            let d = c
                .assign_device(&id, &account, name.as_deref(), false)
                .await?;
            print(json, &d, device_line)
        }
        DevCmd::Move { id, account, name } => {
            let d = c
                .assign_device(&id, &account, name.as_deref(), true)
                .await?;
            print(json, &d, device_line)
        }
        DevCmd::Decommission { id, recordings } => {
            let policy = match recordings {
                Recordings::Keep => RecordingsPolicy::Keep,
                Recordings::Delete => RecordingsPolicy::Delete,
            };
            let r = c.decommission_device(&id, policy).await?;
            print(json, &r, |r| {
                println!(
                    "{} decommissioned (recordings {}; {} recorders told, {} unreachable){}",
                    r.id,
                    r.recordings.as_str(),
                    r.recorders_told,
                    r.recorders_unreachable,
                    if r.disconnected { "; disconnected" } else { "" }
                );
            })
        }
        DevCmd::Provision { .. } | DevCmd::List => Ok(()),
    }
}

/// `admin vendors ...` (6.2).
pub(super) async fn vendors(c: &Client, json: bool, cmd: VendorCmd) -> anyhow::Result<()> {
    let line = |v: &peercam_signal::cm_equipment::VendorView| {
        println!(
            "{:<5} {:<24} {:>4} models  {}",
            v.id, v.name, v.models, v.contact
        );
    };
    match cmd {
        VendorCmd::List => {
            let l = c.vendors().await?;
            print(json, &l, |l| l.iter().for_each(line))
        }
        VendorCmd::Add { name, contact } => {
            let v = c.put_vendor(None, &VendorRequest { name, contact }).await?;
            print(json, &v, line)
        }
        VendorCmd::Set { id, name, contact } => {
            let v = c
                .put_vendor(Some(id), &VendorRequest { name, contact })
                .await?;
            print(json, &v, line)
        }
        VendorCmd::Remove { id } => {
            c.remove_catalogue("vendors", id).await?;
            print(json, &serde_json::json!({"removed": id}), |_| {
                println!("vendor {id} removed");
            })
        }
    }
}

fn model_request(m: ModelArgs) -> ModelRequest {
    ModelRequest {
        vendor: m.vendor,
        name: m.name,
        kind: kind(m.kind),
        ptz: m.ptz,
        audio: m.audio,
        sd: m.sd,
    }
}

/// `admin models ...` (6.2).
pub(super) async fn models(c: &Client, json: bool, cmd: ModelCmd) -> anyhow::Result<()> {
    let line = |m: &ModelView| {
        let caps: Vec<&str> = [("ptz", m.ptz), ("audio", m.audio), ("sd", m.sd)]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        println!(
            "{:<5} {:<16} {:<16} {:<4} {:<14} {:>6} devices",
            m.id,
            m.vendor,
            m.name,
            m.kind.as_str(),
            caps.join(","),
            m.devices
        );
    };
    match cmd {
        ModelCmd::List => {
            let l = c.models().await?;
            print(json, &l, |l| l.iter().for_each(line))
        }
        ModelCmd::Add(m) => {
            let v = c.put_model(None, &model_request(m)).await?;
            print(json, &v, line)
        }
        ModelCmd::Set { id, model } => {
            let v = c.put_model(Some(id), &model_request(model)).await?;
            print(json, &v, line)
        }
        ModelCmd::Remove { id } => {
            c.remove_catalogue("models", id).await?;
            print(json, &serde_json::json!({"removed": id}), |_| {
                println!("model {id} removed");
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_2_query_values_are_encoded() {
        assert_eq!(encode("+1555 a&b"), "%2B1555%20a%26b");
        assert_eq!(encode("pc-abc_1.~"), "pc-abc_1.~");
    }

    #[test]
    fn h626_6_2_generate_makes_importable_rows() {
        let (rows, ids) = generate("vendor,model,name\nAcme,Dome,\"Door, front\"\n").unwrap();
        assert_eq!((rows.len(), ids.len()), (1, 1));
        assert_eq!(rows[0].name.as_deref(), Some("Door, front"));
        let back = peercam_signal::cm_equipment::parse_import(&write_import(&rows)).unwrap();
        assert_eq!(back[0].public_key, rows[0].public_key);
        assert_eq!(
            back[0].bind_code_sha256,
            ids[0].bind_code.digest(&ids[0].device_id)
        );
    }
}
