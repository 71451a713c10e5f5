//! `GET /s/{token}` (H.626.4 6.1.12): the JPEG behind the link of a timed-snapshot SMS. No
//! login: the signed token is the capability, bound to one snapshot and an expiry. A
//! token not signed here is 404 (as if absent); an expired one, or one whose snapshot is
//! no longer kept, 410. Rate-limited per source address.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use crate::Shared;
use crate::error::{ApiErr, ApiResult};
use crate::store::snapshots as stored;
use peercam_signal::snapshot_link::{self as link, LinkRefusal};

/// Link openings per source address per minute.
const OPENS_PER_MINUTE: u32 = 30;

fn gone(code: &'static str, message: &str) -> ApiErr {
    ApiErr::new(StatusCode::GONE, code, message)
}

/// Serves the snapshot a valid link names (`image/jpeg`, `Cache-Control: private`).
pub(crate) async fn open(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    st.limits
        .hit(
            &format!("snapshot-link:{}", peer.ip()),
            OPENS_PER_MINUTE,
            Duration::from_secs(60),
        )
        .await
        .map_err(ApiErr::too_many)?;
    let now_s = st.config.snapshot_clock.now_ms() / 1000;
    let id = match link::verify(&st.link_key, &token, now_s) {
        Ok(id) => id,
        Err(LinkRefusal::Expired) => {
            return Err(gone("link_expired", "this link has expired"));
        }
        Err(_) => {
            return Err(ApiErr::not_found("no_link", "no such link"));
        }
    };
    let jpeg = stored::jpeg(&st.store, id)
        .await?
        .ok_or_else(|| gone("snapshot_gone", "this snapshot is no longer kept"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        jpeg,
    )
        .into_response())
}
