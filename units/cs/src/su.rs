//! Su on the CS side (design "Identities and Su"): the CMU's configuration, carried as
//! [`DeviceCommand`]s over the CS's device link and applied here. Each command is
//! idempotent and replaces what the CS held (the values from `cs.toml` are only the
//! starting point, for tests and a CS run without a platform).

use std::collections::HashMap;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use peercam_cloud::Prefix;
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::control::FieldError;

use crate::api::Cs;
use crate::index::{AccountRules, Camera, IndexError};

/// The CS's Su side: applies the CMU's commands to the running CS.
#[derive(Debug, Clone)]
pub struct Su {
    cs: Arc<Cs>,
}

fn invalid(field: &str, message: &str) -> DeviceReply {
    DeviceReply::Invalid {
        errors: vec![FieldError::new(field, message)],
    }
}

fn failed(e: &IndexError) -> DeviceReply {
    tracing::error!(error = %e, "Su command not applied");
    DeviceReply::Failed {
        code: "storage".into(),
        message: "the CS could not store this; try again".into(),
    }
}

impl Su {
    pub(crate) fn new(cs: Arc<Cs>) -> Self {
        Self { cs }
    }

    /// Whether `command` is a Su command (the others are not for a CS).
    pub fn handles(command: &DeviceCommand) -> bool {
        matches!(
            command,
            DeviceCommand::CsConfig { .. }
                | DeviceCommand::CsCamera { .. }
                | DeviceCommand::CsAccount { .. }
                | DeviceCommand::CsUsage { .. }
                | DeviceCommand::CsClipDelete { .. }
        )
    }

    /// The grant key ids in effect now, sorted.
    pub fn grant_kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self
            .cs
            .grant_keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        kids.sort();
        kids
    }

    /// Checks and applies a Su command: [`DeviceReply::Done`] once applied (stored in the
    /// index where it is kept there), `invalid` or `failed` with nothing changed.
    pub async fn apply(&self, command: &DeviceCommand) -> DeviceReply {
        if let Err(errors) = command.check_su() {
            return DeviceReply::Invalid { errors };
        }
        match command {
            DeviceCommand::CsConfig { grant_keys } => {
                let mut keys = HashMap::new();
                for (i, k) in grant_keys.iter().enumerate() {
                    let Some(key) = crate::decode32(&k.public_key, "grant key")
                        .ok()
                        .and_then(|raw| VerifyingKey::from_bytes(&raw).ok())
                    else {
                        return invalid(
                            &format!("grant_keys.{i}.public_key"),
                            "not an Ed25519 public key",
                        );
                    };
                    keys.insert(k.kid.clone(), key);
                }
                tracing::info!(kids = ?keys.keys().collect::<Vec<_>>(), "grant keys from the CMU");
                *self
                    .cs
                    .grant_keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
                DeviceReply::Done
            }
            DeviceCommand::CsAccount {
                account,
                quota_bytes,
                max_age_days,
                plan,
                plan_epoch,
                prune_excess_after_s,
            } => {
                let rules = AccountRules {
                    account: account.clone(),
                    quota: *quota_bytes,
                    max_age_days: *max_age_days,
                    plan: plan.clone(),
                    plan_epoch: *plan_epoch,
                    prune_after_s: *prune_excess_after_s,
                };
                match self.cs.index.apply_account(&rules).await {
                    Ok(applied) => {
                        if applied {
                            tracing::info!(%account, quota_bytes, ?plan, plan_epoch, "account pool from the CMU");
                            // 6.1.13: a lower quota or age limit applies now, not at the
                            // next retention round.
                            let (cs, account) = (self.cs.clone(), account.clone());
                            tokio::spawn(async move {
                                if let Err(e) = crate::retention::enforce(&cs, &account).await {
                                    tracing::warn!(%account, error = %e, "retention not applied");
                                }
                            });
                        } else {
                            tracing::info!(%account, plan_epoch, "stale cs_account ignored");
                        }
                        DeviceReply::Done
                    }
                    Err(e) => failed(&e),
                }
            }
            DeviceCommand::CsUsage { account } => match self.cs.index.usage(account).await {
                Ok(Some(u)) => DeviceReply::CsUsage {
                    account: account.clone(),
                    quota_bytes: u.account.quota,
                    used_bytes: u.account.used,
                    objects: u.objects,
                    plan_epoch: u.rules.plan_epoch,
                },
                Ok(None) => invalid("account", "no such account here"),
                Err(e) => failed(&e),
            },
            DeviceCommand::CsClipDelete { prefix, share } => {
                match crate::clips::su_delete(&self.cs, prefix, share).await {
                    Ok(gone) => {
                        tracing::info!(
                            share = share.get(..6).unwrap_or(""),
                            gone,
                            "shared clip deleted"
                        );
                        DeviceReply::Done
                    }
                    Err(e) if e == "prefix" || e == "share" => invalid(&e, "not a clip of this CS"),
                    Err(e) => {
                        tracing::error!(error = %e, "clip not deleted");
                        DeviceReply::Failed {
                            code: "storage".into(),
                            message: "the CS could not delete the clip; try again".into(),
                        }
                    }
                }
            }
            DeviceCommand::CsCamera {
                camera,
                prefix,
                account,
                epoch,
                write_kid,
            } => {
                let Ok(prefix) = prefix.parse::<Prefix>() else {
                    return invalid("prefix", "s and 22 base64url characters");
                };
                let row = Camera {
                    prefix,
                    account: account.clone(),
                    epoch: *epoch,
                    write_kid: write_kid.clone(),
                };
                match self.cs.index.set_camera(&row).await {
                    Ok(()) => {}
                    Err(IndexError::NoAccount(_)) => {
                        return invalid("account", "no such account here; send cs_account first");
                    }
                    Err(e) => return failed(&e),
                }
                // The epoch check reads the cache: refresh it from the index (which keeps
                // the higher of two epochs).
                match self.cs.index.cameras().await {
                    Ok(all) => {
                        *self
                            .cs
                            .cameras
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            all.into_iter().map(|c| (c.prefix, c)).collect();
                    }
                    Err(e) => return failed(&e),
                }
                // Playback (Cc) names the camera; the CMU re-sends this at every
                // registration, so the map needs no table.
                self.cs
                    .prefixes
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(camera.to_string(), prefix);
                tracing::info!(%camera, %prefix, "camera configured by the CMU");
                DeviceReply::Done
            }
            _ => DeviceReply::Failed {
                code: "unsupported".into(),
                message: "a CS does not do this".into(),
            },
        }
    }
}
