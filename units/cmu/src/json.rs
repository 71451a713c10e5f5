//! JSON bodies with the API's error shape (docs/protocol.md, [`crate::error`]).
//!
//! [`Json`] extracts like `axum::Json` but refuses in the documented shape: malformed JSON is
//! 400 `bad_json`, a missing or wrong content type 415 `unsupported_media_type`, an
//! over-size body 413 `body_too_large`, and a well-formed body of the wrong shape (a wrong
//! type, a missing or an unknown field) 422 `invalid_body` naming the field in `fields`.
//! [`json_errors`] gives every other error answer of the router (axum's own rejections of
//! paths and queries, 405) the same shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use peercam_signal::control::FieldError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiErr;

/// A JSON request or response body.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiErr> {
        match <axum::Json<T> as FromRequest<S>>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(r) => Err(rejection(&r)),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiErr;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiErr> {
        match <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(v) => Ok(v.map(|axum::Json(v)| Self(v))),
            Err(r) => Err(rejection(&r)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The field a serde data error is about, if it names one, and why: axum reports
/// `...target type: PATH: CAUSE` (no path at the top level).
fn field_of(text: &str) -> Option<(String, String)> {
    let msg = text.split_once("target type: ").map_or(text, |(_, m)| m);
    let (path, cause) = match msg.split_once(": ") {
        Some((p, c)) if !p.contains(' ') => (p.trim_matches('.'), c),
        _ => ("", msg),
    };
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = cause.split(marker).nth(1) {
            let name = rest.split('`').next().unwrap_or_default();
            let field = if path.is_empty() || path.ends_with(name) {
                if path.is_empty() {
                    name.to_owned()
                } else {
                    path.to_owned()
                }
            } else {
                format!("{path}.{name}")
            };
            return Some((field, cause.to_owned()));
        }
    }
    (!path.is_empty()).then(|| (path.to_owned(), cause.to_owned()))
}

/// The API's answer to an `axum::Json` rejection.
pub(crate) fn rejection(r: &JsonRejection) -> ApiErr {
    match r {
        JsonRejection::JsonDataError(e) => {
            let text = e.body_text();
            let mut err = ApiErr::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("the request body does not have the expected shape: {text}"),
            );
            if let Some((field, why)) = field_of(&text) {
                err.message = format!("field `{field}`: {why}");
                err.fields = vec![FieldError::new(field, why)];
            }
            err
        }
        JsonRejection::JsonSyntaxError(e) => ApiErr::bad_request(
            "bad_json",
            format!("the request body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiErr::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        other => by_status(other.status(), &other.body_text()),
    }
}

/// An error answer in the API's shape for a status and axum's text.
fn by_status(status: StatusCode, text: &str) -> ApiErr {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.trim().to_owned()
    };
    ApiErr::new(status, code, message)
}

/// Middleware: an error answer that is not JSON yet (axum's rejections of paths, queries and
/// bodies outside [`Json`], 405) is rewritten in the API's error shape, with its status.
pub(crate) async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut out = by_status(status, &text).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
