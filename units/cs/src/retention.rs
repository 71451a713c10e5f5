//! Retention of account pools (H.626.4 6.1.13; design "Quota and full storage"): objects
//! older than the plan's `max_age_days` go, and after a downgrade, once its grace is over,
//! the oldest go until the pool is within its new quota. Row first (design invariant 5):
//! the index commits the removal and the `deletions` rows, then the objects are deleted.
//! Runs every `retention_interval_s` over every account, and at once for an account whose
//! `cs_account` just arrived (so a downgrade without grace applies without waiting).

use std::sync::Arc;
use std::time::Duration;

use peercam_net::Shutdown;

use crate::api::Cs;
use crate::index::IndexError;

/// Applies retention to `account` now; returns how many objects went.
pub(crate) async fn enforce(cs: &Cs, account: &str) -> Result<usize, IndexError> {
    let plan = cs.index.retention(account, crate::now_ms()).await?;
    for k in &plan.delete {
        let key = k.to_string();
        match cs.backend.delete(&key).await {
            Ok(()) => cs.index.finish_deletion(&key).await?,
            // The deletion row stays; the next start finishes it.
            Err(e) => tracing::warn!(%key, error = %e, "object delete failed; left for recovery"),
        }
    }
    if !plan.delete.is_empty() {
        tracing::info!(
            %account,
            objects = plan.delete.len(),
            aged = plan.aged,
            freed = plan.freed,
            "retention deleted the oldest objects (6.1.13)"
        );
    }
    Ok(plan.delete.len())
}

/// Every account, every `every` until `shutdown`.
pub(crate) async fn run(cs: Arc<Cs>, every: Duration, shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
        let accounts = match cs.index.accounts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "retention: accounts not read");
                continue;
            }
        };
        for a in accounts {
            if let Err(e) = enforce(&cs, &a).await {
                tracing::warn!(account = %a, error = %e, "retention not applied");
            }
        }
    }
}
