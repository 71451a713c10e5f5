//! The billing webhook (clause 7 accounting): when a period closes, its invoices are posted
//! to the operator's billing system, signed with HMAC-SHA256, retried with a doubling pause,
//! every attempt recorded (docs/protocol.md, "Billing webhook").

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use peercam_signal::cm_billing::Invoice;
use sha2::Sha256;

use crate::store::usage::{self, Delivery};
use crate::{Shared, now_s};

/// The webhook's body.
#[derive(serde::Serialize)]
struct Body<'a> {
    event: &'static str,
    period: &'a str,
    invoices: &'a [Invoice],
}

/// `X-Peercam-Signature`: `sha256=` and the lower-case hex HMAC-SHA256 under `secret` of
/// the timestamp (`X-Peercam-Timestamp`, Unix seconds), a dot and the body.
pub(crate) fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts a closed period's invoices until the billing system takes them (2xx) or the
/// attempts run out; each attempt is stored in `billing_deliveries`.
pub(crate) async fn deliver(st: &Shared, period: &str, invoices: Vec<Invoice>) {
    let cfg = &st.config.billing;
    let (Some(url), Some(secret)) = (&cfg.webhook_url, &cfg.webhook_secret) else {
        return;
    };
    let body = match serde_json::to_vec(&Body {
        event: "period.closed",
        period,
        invoices: &invoices,
    }) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "billing webhook body");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "billing webhook client");
            return;
        }
    };
    let mut delay = Duration::from_millis(cfg.webhook_backoff_ms.max(1));
    let attempts = cfg.webhook_attempts.max(1);
    for attempt in 1..=attempts {
        let ts = now_s();
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-peercam-timestamp", ts.to_string())
            .header(
                "x-peercam-signature",
                signature(secret.as_bytes(), ts, &body),
            )
            .header("x-peercam-delivery", format!("{period}/{attempt}"))
            .body(body.clone())
            .send()
            .await;
        let (status, error, ok) = match sent {
            Ok(r) => (Some(r.status().as_u16()), None, r.status().is_success()),
            Err(e) => (None, Some(e.to_string()), false),
        };
        let d = Delivery {
            period: period.to_owned(),
            at: ts,
            attempt,
            status,
            error,
            ok,
        };
        if let Err(e) = usage::delivered(&st.store, &d).await {
            tracing::warn!(error = %e, "billing delivery not recorded");
        }
        if ok {
            tracing::info!(period, attempt, "billing webhook delivered");
            return;
        }
        tracing::warn!(period, attempt, status = ?d.status, error = ?d.error, "billing webhook failed");
        if attempt < attempts {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = st.shutdown.wait() => return,
            }
            delay = delay.saturating_mul(2).min(Duration::from_secs(300));
        }
    }
    tracing::error!(period, "billing webhook given up");
}

#[cfg(test)]
mod tests {
    #[test]
    fn h626_7_accounting_webhook_signature_is_hmac_sha256() {
        // RFC 4231 test case 2 with the timestamp prefix folded into the data.
        let s = super::signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert_ne!(
            s,
            super::signature(b"Jefe", 1, b"what do ya want for nothing?")
        );
    }
}
