//! API errors: stable codes, helpful messages, internals never leaked.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use peercam_signal::cm::ApiError;

/// An error answer of the API.
#[derive(Debug)]
pub(crate) struct ApiErr {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<u64>,
    pub(crate) fields: Vec<peercam_signal::control::FieldError>,
    /// Failed on the database (counted in the metrics, 6.1.14).
    pub(crate) db: bool,
}

impl ApiErr {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            fields: Vec::new(),
            db: false,
        }
    }
    /// Values out of range: 422 with every refused field.
    pub(crate) fn invalid(fields: Vec<peercam_signal::control::FieldError>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_values",
            "some values are out of range; nothing was changed (see fields)",
        );
        e.fields = fields;
        e
    }
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in first: send Authorization: Bearer <token> from POST /api/v1/login",
        )
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// The one answer for "no such device" and "not yours" (docs/security.md D3: indistinguishable).
    pub(crate) fn no_device() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such device")
    }
    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub(crate) fn too_many(retry_after: std::time::Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many attempts; wait and try again",
        );
        e.retry_after = Some(retry_after.as_secs().max(1));
        e
    }
    pub(crate) fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(%context, error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the platform failed to process the request; try again later",
        )
    }
}

impl From<crate::store::StoreError> for ApiErr {
    fn from(e: crate::store::StoreError) -> Self {
        let mut e = Self::from_store(e);
        e.db = true;
        e
    }
}

impl ApiErr {
    fn from_store(e: crate::store::StoreError) -> Self {
        match e {
            // Transient (issue 14): the client may simply try again; never a 500.
            crate::store::StoreError::Busy => {
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the platform is busy; try again in a moment",
                );
                e.retry_after = Some(1);
                e
            }
            // The database server restarts or cannot be reached: in-flight requests fail
            // clearly and succeed when tried again once it is back.
            crate::store::StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the platform's database is unavailable; try again in a moment",
                );
                e.retry_after = Some(1);
                e
            }
            // Fail closed: a database error never grants anything.
            other => Self::internal("database", &other),
        }
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ApiError {
                error: self.code.to_owned(),
                message: self.message,
                fields: self.fields,
            }),
        )
            .into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        if self.db {
            resp.extensions_mut().insert(crate::metrics::DbFailed);
        }
        resp
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiErr>;
