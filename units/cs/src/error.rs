//! Cp error answers: JSON `{code, message}` (plus fields some codes carry), like the CMU's.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use peercam_cloud::grant::Refusal;
use serde_json::{Map, Value};

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiErr {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) extra: Map<String, Value>,
    pub(crate) retry_after: Option<u64>,
}

impl ApiErr {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(field.to_owned(), value.into());
        self
    }

    pub(crate) fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        e.retry_after = Some(1);
        e
    }

    pub(crate) fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(%context, error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the CS failed to process the request; try again later",
        )
    }

    /// A grant refusal: 401 when a fresh grant may pass (form, key, signature, audience,
    /// time, epoch), 403 when the grant is valid but does not allow this.
    pub(crate) fn refused(r: Refusal) -> Self {
        let (status, code, message) = match r {
            Refusal::Form => (401, "bad_grant", "the grant is malformed"),
            Refusal::UnknownKid => (
                401,
                "unknown_grant_key",
                "the grant is signed with a key this CS does not know",
            ),
            Refusal::Signature => (
                401,
                "bad_signature",
                "the grant's signature does not verify",
            ),
            Refusal::Audience => (401, "wrong_audience", "the grant is for another CS"),
            Refusal::NotYetValid => (
                401,
                "not_yet_valid",
                "the grant is not valid yet (clock skew?)",
            ),
            Refusal::Expired => (
                401,
                "expired",
                "the grant expired; ask the platform for a new one",
            ),
            Refusal::Epoch => (
                401,
                "revoked",
                "the grant belongs to a revoked binding of the camera",
            ),
            Refusal::UnknownPrefix => (
                403,
                "unknown_prefix",
                "this CS holds no storage for the grant's prefix",
            ),
            Refusal::Operation => (
                403,
                "operation_not_granted",
                "the grant does not allow this operation",
            ),
            Refusal::Scope => (
                403,
                "out_of_scope",
                "the target is outside the grant's prefix or range",
            ),
            _ => (401, "bad_grant", "the grant is refused"),
        };
        let status = if status == 401 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        Self::new(status, code, message)
    }
}

impl From<crate::IndexError> for ApiErr {
    fn from(e: crate::IndexError) -> Self {
        match e {
            crate::IndexError::Busy => Self::unavailable("busy", "the index is busy; try again"),
            other => Self::internal("index", &other),
        }
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("code".into(), Value::from(self.code));
        body.insert("message".into(), Value::from(self.message));
        body.extend(self.extra);
        let mut resp = (self.status, Json(Value::Object(body))).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        resp
    }
}
