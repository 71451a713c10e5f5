//! CRM interwork (H.626.4 6.2): the bodies the CMU exchanges with the operator's customer
//! relationship management system, and a strict parser of the CRM's verdicts.
//!
//! The CMU is the client: it asks `POST {url}/v1/subscribers/verify` whether a subscriber
//! may sign up or be approved ([`VerifyRequest`], answered by a [`Verdict`]) and tells
//! `POST {url}/v1/events` of account changes ([`AccountEvent`]). docs/protocol.md ("CRM
//! interwork") describes the exchange; this module only makes and reads bytes.
//!
//! A CRM is a third party: its answers are read by [`parse_verdict`], which refuses more
//! than [`MAX_ANSWER_BYTES`], unknown fields, unknown verdicts, a refusal without a reason
//! and text that is too long or holds control characters.

use serde::{Deserialize, Serialize};

/// The largest verdict the CMU reads, bytes.
pub const MAX_ANSWER_BYTES: usize = 4096;
/// The longest reason of a refusal, characters.
pub const MAX_REASON_CHARS: usize = 300;
/// The longest customer id, bytes.
pub const MAX_CUSTOMER_ID: usize = 64;

/// When the CRM is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The subscriber confirmed the SMS code (6.1.1 sign-up).
    Signup,
    /// The operator approves the account.
    Approval,
}

/// `POST {url}/v1/subscribers/verify`: may this subscriber have an account?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Sign-up or approval.
    pub stage: Stage,
    /// The subscriber's mobile number, E.164.
    pub phone: String,
    /// The name the subscriber gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The contract id the subscriber gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    /// The account id, once the account exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
}

/// The CRM's verdict on a [`VerifyRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The subscriber is known and may proceed.
    Ok {
        /// The CRM's own id of the customer, kept for the operator.
        customer_id: Option<String>,
    },
    /// The CRM refuses; the reason is shown to the subscriber or the operator.
    Refused {
        /// Why, in words.
        reason: String,
    },
}

/// What is wrong with a CRM answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// Larger than [`MAX_ANSWER_BYTES`].
    #[error("answer larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    /// Not JSON of the verdict's schema.
    #[error("not a verdict: {0}")]
    Schema(String),
    /// A verdict other than `ok` and `refused`.
    #[error("unknown verdict {0:?}")]
    UnknownVerdict(String),
    /// `refused` without a reason, or a field that breaks its limits.
    #[error("{0}")]
    Field(&'static str),
}

/// The verdict as it travels.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireVerdict {
    verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_id: Option<String>,
}

fn clean_text(s: &str) -> bool {
    !s.trim().is_empty()
        && s.chars().count() <= MAX_REASON_CHARS
        && !s.chars().any(char::is_control)
}

fn clean_customer_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CUSTOMER_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Reads a CRM verdict, strictly (see the module documentation).
///
/// # Errors
/// [`AnswerError`] for anything but a well-formed verdict.
pub fn parse_verdict(bytes: &[u8]) -> Result<Verdict, AnswerError> {
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(AnswerError::TooLarge);
    }
    let w: WireVerdict =
        serde_json::from_slice(bytes).map_err(|e| AnswerError::Schema(e.to_string()))?;
    match w.verdict.as_str() {
        "ok" => {
            if w.reason.is_some() {
                return Err(AnswerError::Field("an ok verdict has no reason"));
            }
            if let Some(c) = &w.customer_id
                && !clean_customer_id(c)
            {
                return Err(AnswerError::Field(
                    "customer_id: 1 to 64 of A-Z a-z 0-9 - _ . :",
                ));
            }
            Ok(Verdict::Ok {
                customer_id: w.customer_id,
            })
        }
        "refused" => {
            let reason = w
                .reason
                .ok_or(AnswerError::Field("a refusal needs a reason"))?;
            if !clean_text(&reason) || w.customer_id.is_some() {
                return Err(AnswerError::Field(
                    "reason: 1 to 300 characters, no control characters; no customer_id",
                ));
            }
            Ok(Verdict::Refused { reason })
        }
        _ => Err(AnswerError::UnknownVerdict(
            w.verdict.chars().take(32).collect(),
        )),
    }
}

/// A verdict as a CRM sends it (the test CRMs and the round-trip test use it).
#[must_use]
pub fn encode_verdict(v: &Verdict) -> Vec<u8> {
    let w = match v {
        Verdict::Ok { customer_id } => WireVerdict {
            verdict: "ok".into(),
            reason: None,
            customer_id: customer_id.clone(),
        },
        Verdict::Refused { reason } => WireVerdict {
            verdict: "refused".into(),
            reason: Some(reason.clone()),
            customer_id: None,
        },
    };
    serde_json::to_vec(&w).unwrap_or_default()
}

/// An account change, `POST {url}/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEvent {
    /// Unique and increasing per CMU database: the CRM drops an id it has seen (a delivery
    /// may be repeated when the answer is lost).
    pub id: i64,
    /// `account.created`, `account.approved`, `account.disabled`, `account.enabled`,
    /// `account.deleted`, `account.refused` or `account.plan_changed`.
    pub event: String,
    /// The account.
    pub account_id: i64,
    /// Its login (phone number of an owner, username of a sub-account).
    pub login: String,
    /// When it changed, Unix seconds.
    pub at: u64,
    /// More about the change (the plan's id, the reason of a refusal), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn h626_6_2_crm_verdicts_are_read_strictly() {
        assert_eq!(
            parse_verdict(br#"{"verdict":"ok"}"#),
            Ok(Verdict::Ok { customer_id: None })
        );
        assert_eq!(
            parse_verdict(br#"{"verdict":"refused","reason":"contract ended"}"#),
            Ok(Verdict::Refused {
                reason: "contract ended".into()
            })
        );
        for bad in [
            &br#"{"verdict":"refused"}"#[..],
            br#"{"verdict":"maybe"}"#,
            br#"{"verdict":"ok","extra":1}"#,
            br#"{"verdict":"refused","reason":"a\u0007b"}"#,
            br#"{"verdict":"ok","customer_id":"has space"}"#,
            br#"<html>502</html>"#,
            b"",
        ] {
            assert!(
                parse_verdict(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!(r#"{{"verdict":"ok","customer_id":"{}"}}"#, "a".repeat(5000));
        assert_eq!(parse_verdict(big.as_bytes()), Err(AnswerError::TooLarge));
    }

    fn verdicts() -> impl Strategy<Value = Verdict> {
        prop_oneof![
            proptest::option::of("[A-Za-z0-9._:-]{1,64}")
                .prop_map(|customer_id| Verdict::Ok { customer_id }),
            "[a-zA-Z0-9 ,.'é-]{0,299}[a-z]".prop_map(|reason| Verdict::Refused { reason }),
        ]
    }

    proptest! {
        #[test]
        fn h626_6_2_crm_verdict_round_trip(v in verdicts()) {
            prop_assert_eq!(parse_verdict(&encode_verdict(&v)), Ok(v));
        }

        #[test]
        fn h626_6_2_crm_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_verdict(&bytes);
        }
    }
}
