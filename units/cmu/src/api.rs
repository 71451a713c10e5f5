//! The route table: every route is declared here once, with its access rule, and both the
//! router and the OpenAPI document are built from this one table (docs/security.md D7: deny by
//! default; a test walks [`routes`] and proves no protected route answers without login).

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use peercam_signal::cm::{self, Role};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    ResponseBuilder,
};

use crate::error::ApiErr;
use crate::{Shared, accounts, admin, devices, platform, sharing};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (sign-up, login, the API description).
    Public,
    /// Any logged-in account.
    Account,
    /// A customer: an owner or a sub-account.
    Customer,
    /// An owner account only.
    Owner,
    /// The operator only.
    Operator,
    /// An SCU node, authenticated by its node secret in the first message.
    Node,
}

/// One declared route.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, `{param}` style.
    pub path: &'static str,
    /// Access rule.
    pub access: Access,
    /// What it does.
    pub summary: &'static str,
    /// Request body schema name.
    pub request: Option<&'static str>,
    /// Success response schema name.
    pub response: Option<&'static str>,
}

/// One [`RouteInfo`]: method, path, access, summary, request and response schema names.
/// The clause modules that declare their own routes (alarms, snapshots) use it as `route!`.
macro_rules! r {
    ($m:literal, $p:literal, $a:ident, $s:literal, $req:expr, $resp:expr) => {
        $crate::api::RouteInfo {
            method: $m,
            path: $p,
            access: $crate::api::Access::$a,
            summary: $s,
            request: $req,
            response: $resp,
        }
    };
}
pub(crate) use r as route;

/// Every route of the CMU, in one table (kept in this order).
pub fn routes() -> Vec<RouteInfo> {
    let mut all = Vec::new();
    all.extend(account_routes());
    all.extend(device_routes());
    all.extend(recording_routes());
    all.extend(media_routes());
    all.extend(sharing_and_operator_routes());
    all.extend(crate::alarms::route_table());
    all.extend(crate::snapshots::route_table());
    all.extend(crate::cloud::plans::route_table());
    all.extend(crate::clips::route_table());
    all.extend(crate::faults::route_table());
    all.extend(crate::equipment::route_table());
    all.extend(crate::users::route_table());
    all.extend(crate::campaigns::route_table());
    all.extend(crate::logs::route_table());
    all.extend(crate::accounting::routes::route_table());
    all
}

/// The API description, accounts (6.1.1) and the CMU parameters (8.9.2).
fn account_routes() -> Vec<RouteInfo> {
    vec![
        r!(
            "GET",
            "/api/v1/health",
            Public,
            "Liveness check",
            None,
            None
        ),
        r!(
            "GET",
            "/api/v1/openapi.json",
            Public,
            "This API description",
            None,
            None
        ),
        r!(
            "POST",
            "/api/v1/signup",
            Public,
            "Start sign-up with a phone number; sends an SMS code (6.1.1)",
            Some("SignupRequest"),
            Some("SignupState")
        ),
        r!(
            "POST",
            "/api/v1/signup/confirm",
            Public,
            "Confirm the SMS code; the account then waits for approval",
            Some("SignupConfirm"),
            Some("SignupState")
        ),
        r!(
            "POST",
            "/api/v1/login",
            Public,
            "Log in with phone or username and password",
            Some("LoginRequest"),
            Some("LoginResponse")
        ),
        r!(
            "POST",
            "/api/v1/logout",
            Account,
            "End this session",
            None,
            None
        ),
        r!(
            "GET",
            "/api/v1/me",
            Account,
            "The logged-in account",
            None,
            Some("UserInfo")
        ),
        r!(
            "POST",
            "/api/v1/me/password",
            Account,
            "Change password (ends other sessions)",
            Some("PasswordChange"),
            None
        ),
        r!(
            "GET",
            "/api/v1/me/params",
            Account,
            "Your own settings (8.9.2)",
            None,
            Some("UserParamsState")
        ),
        r!(
            "POST",
            "/api/v1/me/params/permit",
            Account,
            "Permission to change your settings (8.9.2)",
            None,
            Some("ConfigPermit")
        ),
        r!(
            "PUT",
            "/api/v1/me/params",
            Account,
            "Change your settings, all or nothing, with a permit (8.9.2)",
            Some("SetUserParams"),
            Some("UserParamsState")
        ),
        r!(
            "GET",
            "/api/v1/admin/params",
            Operator,
            "Platform settings (8.9.2)",
            None,
            Some("PlatformParamsState")
        ),
        r!(
            "POST",
            "/api/v1/admin/params/permit",
            Operator,
            "Permission to change the platform settings (8.9.2)",
            None,
            Some("ConfigPermit")
        ),
        r!(
            "PUT",
            "/api/v1/admin/params",
            Operator,
            "Change the platform settings, all or nothing, with a permit (8.9.2)",
            Some("SetPlatformParams"),
            Some("PlatformParamsState")
        ),
    ]
}

/// Devices and binding (8.2), control (8.5, 8.9.1) and upgrades (8.11.1).
fn device_routes() -> Vec<RouteInfo> {
    vec![
        r!(
            "GET",
            "/api/v1/devices",
            Customer,
            "Devices the caller owns or that were shared with it",
            None,
            Some("DeviceView")
        ),
        r!(
            "POST",
            "/api/v1/devices/bind",
            Owner,
            "Bind a device by id and bind code (8.2)",
            Some("BindRequest"),
            Some("DeviceView")
        ),
        r!(
            "GET",
            "/api/v1/devices/{id}",
            Customer,
            "One device",
            None,
            Some("DeviceView")
        ),
        r!(
            "PATCH",
            "/api/v1/devices/{id}",
            Owner,
            "Rename a device",
            Some("DeviceRename"),
            Some("DeviceView")
        ),
        r!(
            "DELETE",
            "/api/v1/devices/{id}",
            Owner,
            "Unbind a device (removes every share)",
            None,
            None
        ),
        r!(
            "GET",
            "/api/v1/devices/{id}/status",
            Customer,
            "Ask the device itself, through its SCU (needs `config`)",
            None,
            Some("DeviceStatus")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/ptz",
            Customer,
            "Turn or zoom the camera, or use its presets (8.5, needs `ptz`)",
            Some("PtzCommand"),
            Some("PtzState")
        ),
        r!(
            "GET",
            "/api/v1/devices/{id}/params",
            Customer,
            "Read the camera's parameters (8.9.1, needs `config`)",
            None,
            Some("ParamsState")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/params/permit",
            Customer,
            "Ask permission to configure the camera (8.9.1 steps 7-8, needs `config`)",
            None,
            Some("ConfigPermit")
        ),
        r!(
            "PUT",
            "/api/v1/devices/{id}/params",
            Customer,
            "Replace the camera's parameters, all or nothing, with a permit (8.9.1)",
            Some("SetParamsRequest"),
            Some("ParamsState")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/upgrade",
            Owner,
            "Install a newer release on the device (8.11.1)",
            Some("UpgradeOrder"),
            Some("UpgradeStatus")
        ),
        r!(
            "GET",
            "/api/v1/devices/{id}/upgrade",
            Customer,
            "Progress and result of the device's upgrade (8.11.1, needs `config`)",
            None,
            Some("UpgradeStatus")
        ),
    ]
}

/// Recorders (8.7.2, 8.7.3) and release packages (8.11).
fn recording_routes() -> Vec<RouteInfo> {
    vec![
        r!(
            "POST",
            "/api/v1/devices/{id}/cameras",
            Owner,
            "Attach one of your cameras to this NVR (8.7.2.1 steps 1-8)",
            Some("AttachCamera"),
            Some("AttachedCamera")
        ),
        r!(
            "DELETE",
            "/api/v1/devices/{id}/cameras/{camera}",
            Owner,
            "Detach a camera from this NVR (`?wipe=true` deletes its recordings)",
            None,
            None
        ),
        r!(
            "PUT",
            "/api/v1/devices/{id}/recording",
            Customer,
            "Set the camera's record strategy on its NVR or SD card (8.7.2.1, 8.7.3, needs `config`)",
            Some("SetRecordingRequest"),
            Some("RecordingState")
        ),
        r!(
            "GET",
            "/api/v1/devices/{id}/recording",
            Customer,
            "The camera's recording state on a recorder (`?recorder=`, needs `playback`)",
            None,
            Some("RecordingState")
        ),
        r!(
            "GET",
            "/api/v1/devices/{id}/recordings",
            Customer,
            "Record list: recorded spans and events in `?from=&to=` of `?recorder=` (8.7.2.2, needs `playback`); without `recorder`, the merged timeline of every recorder of the camera, each span naming its sources nearest first (6.3.2; a RecordingList superset)",
            None,
            Some("Timeline")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/recordings/play",
            Customer,
            "An RTSP playback URL on the recorder (8.7.2.2, needs `playback`)",
            Some("PlaybackRequest"),
            Some("PlaybackResponse")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/recordings/export",
            Customer,
            "An MP4 download URL on the recorder for a time range (8.7.2.2 steps 7-10, needs `playback`)",
            Some("ExportRequest"),
            Some("ExportResponse")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/events",
            Customer,
            "Mark an alarm or manual event; alarm strategies record around it (needs `config`)",
            Some("EventRequest"),
            Some("EventAccepted")
        ),
        r!(
            "GET",
            "/api/v1/packages/{sha256}",
            Public,
            "Download a release payload by its hash (devices; resumable with Range)",
            None,
            None
        ),
        r!(
            "GET",
            "/api/v1/client/update",
            Public,
            "The newest client release for a platform, if newer than `version` (8.11.2)",
            None,
            Some("ClientUpdate")
        ),
        r!(
            "POST",
            "/api/v1/client/update/report",
            Account,
            "Report that this client updated (8.11.2)",
            Some("ClientUpdateReport"),
            None
        ),
        r!(
            "GET",
            "/api/v1/admin/packages",
            Operator,
            "Release packages",
            None,
            Some("PackageView")
        ),
        r!(
            "POST",
            "/api/v1/admin/packages",
            Operator,
            "Register a signed release manifest (8.11.1)",
            Some("SignedManifest"),
            Some("PackageView")
        ),
        r!(
            "PUT",
            "/api/v1/admin/packages/{sha256}/payload",
            Operator,
            "Upload a release payload (checked against its manifest)",
            None,
            Some("PackageView")
        ),
    ]
}

/// WLAN (6.1.11), reset (8.10) and media: live view, paths and sessions (8.4, 8.3).
fn media_routes() -> Vec<RouteInfo> {
    vec![
        r!(
            "GET",
            "/api/v1/devices/{id}/wlan",
            Customer,
            "Networks the camera sees and the one it is on (6.1.11, needs `config`)",
            None,
            Some("WlanState")
        ),
        r!(
            "PUT",
            "/api/v1/devices/{id}/wlan",
            Customer,
            "Move the camera to another WLAN; it returns by itself if the platform is unreachable there (6.1.11, needs `config`)",
            Some("WlanConfig"),
            Some("WlanState")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/reset",
            Owner,
            "Factory-reset the camera; it is unbound and every share and session ends (8.10)",
            Some("ResetRequest"),
            None
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/play",
            Customer,
            "Get an RTSP URL with a one-time token to watch live (8.4, needs `live`)",
            Some("PlayRequest"),
            Some("PlayResponse")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/ice",
            Customer,
            "STUN/TURN servers with credentials for one session with the camera, scoped to its addresses (needs `live`); with `?recorder=`, for a WebRTC playback from that recorder, scoped to the recorder's addresses (needs `playback`, 8.3)",
            None,
            Some("IceConfig")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/punch",
            Customer,
            "UDP hole punching (8.3): send the viewer's ICE description, get the camera's (needs `live`); with `?recorder=`, the recorder's, for a playback (needs `playback`)",
            Some("PunchDescription"),
            Some("PunchDescription")
        ),
        r!(
            "GET",
            "/api/v1/devices/{id}/snapshot",
            Customer,
            "A JPEG of what the camera sees now, `?max_width=320` (16-1280): the device list's thumbnail (needs `live`)",
            None,
            None
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/recordings/webrtc",
            Customer,
            "Play recordings in a browser (8.7.2.2, 8.7.3): a WebRTC offer with a data channel for speed, direction, seeks and frame steps; the recorder judges a fresh playback token (needs `playback`)",
            Some("PlaybackWebRtcRequest"),
            Some("WebRtcAnswer")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/webrtc",
            Customer,
            "Live view for browsers (6.3.1, 8.4): send a WebRTC offer, get the camera's answer; the camera has the platform judge a fresh play token before answering (needs `live`)",
            Some("WebRtcOffer"),
            Some("WebRtcAnswer")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/webrtc/{session}/candidates",
            Customer,
            "Trickle ICE for a live view (RFC 8838): more of the browser's candidates for the view `session` (from its answer), or `end`; the camera adds them to that session's ICE agent, if it is the caller's (needs `live`)",
            Some("Trickle"),
            None
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/sessions",
            Customer,
            "Report how a live view went: the path it took, time to connect, bytes (needs `live`)",
            Some("SessionReport"),
            None
        ),
    ]
}

/// Sharing (8.6), the audit log, the operator, and the SCU link.
fn sharing_and_operator_routes() -> Vec<RouteInfo> {
    vec![
        r!(
            "GET",
            "/api/v1/devices/{id}/shares",
            Owner,
            "Who the device is shared with",
            None,
            Some("ShareView")
        ),
        r!(
            "POST",
            "/api/v1/devices/{id}/shares",
            Owner,
            "Share with a sub-account, or change its scopes (8.6)",
            Some("ShareRequest"),
            Some("ShareView")
        ),
        r!(
            "DELETE",
            "/api/v1/devices/{id}/shares/{username}",
            Owner,
            "Stop sharing with a sub-account",
            None,
            None
        ),
        r!(
            "GET",
            "/api/v1/subaccounts",
            Owner,
            "The caller's sub-accounts",
            None,
            Some("SubaccountView")
        ),
        r!(
            "POST",
            "/api/v1/subaccounts",
            Owner,
            "Create a sub-account (6.1.10)",
            Some("SubaccountCreate"),
            Some("SubaccountView")
        ),
        r!(
            "DELETE",
            "/api/v1/subaccounts/{username}",
            Owner,
            "Delete a sub-account and its shares",
            None,
            None
        ),
        r!(
            "GET",
            "/api/v1/audit",
            Customer,
            "Audit log of the caller and its devices",
            None,
            Some("AuditEntry")
        ),
        r!(
            "POST",
            "/api/v1/admin/devices",
            Operator,
            "Provision devices: public keys and bind code digests",
            Some("ProvisionRequest"),
            Some("ProvisionResult")
        ),
        r!(
            "GET",
            "/api/v1/admin/devices",
            Operator,
            "Every device; with any of `q`, `vendor`, `model`, `online`, `owner`, `state`, `limit`, `cursor`, one page of the search (AdminDevicePage, 6.1.1, 6.2)",
            None,
            Some("AdminDevicePage")
        ),
        r!(
            "GET",
            "/api/v1/admin/sessions",
            Operator,
            "Live-view sessions by path (direct or relayed) and the most recent ones",
            None,
            Some("SessionsView")
        ),
        r!(
            "GET",
            "/api/v1/admin/users",
            Operator,
            "Accounts by id: `?q=` (in login, name or contract id), `?status=`, `?limit=` (default 100, at most 1000), `?cursor=` (the `x-next-cursor` header of the previous page)",
            None,
            Some("AdminUserView")
        ),
        r!(
            "POST",
            "/api/v1/admin/users/{id}/approve",
            Operator,
            "Approve a confirmed sign-up (6.1.1)",
            None,
            Some("UserInfo")
        ),
        r!(
            "POST",
            "/api/v1/admin/users/{id}/disable",
            Operator,
            "Disable an account; ends its sessions",
            None,
            Some("UserInfo")
        ),
        r!(
            "GET",
            "/platform/v1/scu",
            Node,
            "WebSocket for SCU nodes (Sc/Sm, see docs/protocol.md)",
            None,
            None
        ),
    ]
}

fn handler(method: &str, path: &str) -> Option<MethodRouter<Shared>> {
    use axum::routing::{delete, patch, post, put};
    Some(match (method, path) {
        ("GET", "/api/v1/health") => get(admin::health),
        ("GET", "/api/v1/openapi.json") => get(|| async { Json(openapi()) }),
        ("POST", "/api/v1/signup") => post(accounts::signup),
        ("POST", "/api/v1/signup/confirm") => post(accounts::signup_confirm),
        ("POST", "/api/v1/login") => post(accounts::login),
        ("POST", "/api/v1/logout") => post(accounts::logout),
        ("GET", "/api/v1/me") => get(accounts::me),
        ("POST", "/api/v1/me/password") => post(accounts::change_password),
        ("GET", "/api/v1/devices") => get(devices::list),
        ("GET", "/api/v1/me/params") => get(crate::settings::get_user),
        ("POST", "/api/v1/me/params/permit") => post(crate::settings::permit_user),
        ("PUT", "/api/v1/me/params") => put(crate::settings::set_user),
        ("GET", "/api/v1/admin/params") => get(crate::settings::get_platform),
        ("POST", "/api/v1/admin/params/permit") => post(crate::settings::permit_platform),
        ("PUT", "/api/v1/admin/params") => put(crate::settings::set_platform),
        ("POST", "/api/v1/devices/bind") => post(devices::bind),
        ("GET", "/api/v1/devices/{id}") => get(devices::get),
        ("PATCH", "/api/v1/devices/{id}") => patch(devices::rename),
        ("DELETE", "/api/v1/devices/{id}") => delete(devices::unbind),
        ("GET", "/api/v1/devices/{id}/status") => get(devices::status),
        ("POST", "/api/v1/devices/{id}/play") => post(crate::play::play),
        ("POST", "/api/v1/devices/{id}/sessions") => post(crate::relay::report_session),
        ("POST", "/api/v1/devices/{id}/ice") => post(crate::relay::ice),
        ("POST", "/api/v1/devices/{id}/punch") => post(crate::relay::punch),
        ("POST", "/api/v1/devices/{id}/webrtc") => post(crate::play::webrtc),
        ("POST", "/api/v1/devices/{id}/webrtc/{session}/candidates") => {
            post(crate::play::webrtc_candidates)
        }
        ("GET", "/api/v1/devices/{id}/snapshot") => get(crate::control::snapshot),
        ("POST", "/api/v1/devices/{id}/recordings/webrtc") => {
            post(crate::recording::playback_webrtc)
        }
        ("GET", "/api/v1/admin/sessions") => get(crate::relay::admin_sessions),
        ("POST", "/api/v1/devices/{id}/ptz") => post(crate::control::ptz),
        ("GET", "/api/v1/devices/{id}/params") => get(crate::control::get_params),
        ("POST", "/api/v1/devices/{id}/params/permit") => post(crate::control::params_permit),
        ("PUT", "/api/v1/devices/{id}/params") => put(crate::control::set_params),
        ("POST", "/api/v1/devices/{id}/reset") => post(crate::control::reset),
        ("GET", "/api/v1/devices/{id}/wlan") => get(crate::control::get_wlan),
        ("POST", "/api/v1/devices/{id}/upgrade") => post(crate::packages::order),
        ("GET", "/api/v1/devices/{id}/upgrade") => get(crate::packages::status),
        ("GET", "/api/v1/packages/{sha256}") => get(crate::packages::download),
        ("POST", "/api/v1/devices/{id}/cameras") => post(crate::recording::attach),
        ("DELETE", "/api/v1/devices/{id}/cameras/{camera}") => delete(crate::recording::detach),
        ("PUT", "/api/v1/devices/{id}/recording") => put(crate::recording::set_strategy),
        ("GET", "/api/v1/devices/{id}/recording") => get(crate::recording::get_strategy),
        ("GET", "/api/v1/devices/{id}/recordings") => get(crate::recording::list),
        ("POST", "/api/v1/devices/{id}/recordings/play") => post(crate::recording::playback),
        ("POST", "/api/v1/devices/{id}/recordings/export") => post(crate::recording::export),
        ("POST", "/api/v1/devices/{id}/events") => post(crate::recording::event),
        ("GET", "/api/v1/admin/packages") => get(crate::packages::list),
        ("GET", "/api/v1/client/update") => get(crate::packages::client_update),
        ("POST", "/api/v1/client/update/report") => post(crate::packages::client_report),
        ("POST", "/api/v1/admin/packages") => post(crate::packages::upload_manifest),
        ("PUT", "/api/v1/admin/packages/{sha256}/payload") => put(crate::packages::upload_payload)
            .layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(peercam_signal::upgrade::MAX_PAYLOAD_BYTES).unwrap_or(usize::MAX),
            )),
        ("PUT", "/api/v1/devices/{id}/wlan") => put(crate::control::set_wlan),
        ("GET", "/api/v1/devices/{id}/shares") => get(sharing::list_shares),
        ("POST", "/api/v1/devices/{id}/shares") => post(sharing::share),
        ("DELETE", "/api/v1/devices/{id}/shares/{username}") => delete(sharing::unshare),
        ("GET", "/api/v1/subaccounts") => get(sharing::list_subaccounts),
        ("POST", "/api/v1/subaccounts") => post(sharing::create_subaccount),
        ("DELETE", "/api/v1/subaccounts/{username}") => delete(sharing::delete_subaccount),
        ("GET", "/api/v1/audit") => get(admin::my_audit),
        ("POST", "/api/v1/admin/devices") => {
            post(admin::provision).layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024))
        }
        ("GET", "/api/v1/admin/devices") => get(crate::equipment::list_devices),
        ("GET", "/api/v1/admin/users") => get(crate::users::list_users),
        ("POST", "/api/v1/admin/users/{id}/approve") => post(admin::approve_user),
        ("POST", "/api/v1/admin/users/{id}/disable") => post(admin::disable_user),
        ("GET", "/platform/v1/scu") => get(platform::ws_handler),
        _ => {
            return crate::alarms::handler(method, path)
                .or_else(|| crate::snapshots::handler(method, path))
                .or_else(|| crate::cloud::plans::handler(method, path))
                .or_else(|| crate::clips::handler(method, path))
                .or_else(|| crate::faults::handler(method, path))
                .or_else(|| crate::equipment::handler(method, path))
                .or_else(|| crate::users::handler(method, path))
                .or_else(|| crate::campaigns::handler(method, path))
                .or_else(|| crate::logs::handler(method, path))
                .or_else(|| crate::accounting::routes::handler(method, path));
        }
    })
}

/// Builds the router from [`routes`]; every route gets the guard for its access rule.
pub(crate) fn router(state: Shared) -> Router {
    let mut router: Router<Shared> = Router::new();
    for info in routes() {
        let Some(mr) = handler(info.method, info.path) else {
            // A declared route without a handler is a programming error caught by tests.
            tracing::error!(path = info.path, "declared route has no handler");
            continue;
        };
        let guarded = mr.route_layer(middleware::from_fn_with_state(
            (state.clone(), info.access),
            guard,
        ));
        router = router.route(info.path, guarded);
    }
    router
        .fallback(|| async {
            ApiErr::new(
                axum::http::StatusCode::NOT_FOUND,
                "no_route",
                "no such API route; see /api/v1/openapi.json",
            )
            .into_response()
        })
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::map_response(crate::json::json_errors))
        .with_state(state)
}

async fn guard(
    State((state, access)): State<(Shared, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let allowed = |role: Role| match access {
        Access::Public | Access::Node | Access::Account => true,
        Access::Customer => matches!(role, Role::Owner | Role::Sub),
        Access::Owner => role == Role::Owner,
        Access::Operator => role == Role::Operator,
    };
    if matches!(access, Access::Public | Access::Node) {
        // Node routes authenticate inside the WebSocket (first message), see platform.rs.
        return next.run(req).await;
    }
    match crate::auth::principal(&state, req.headers()).await {
        // Issue 18 item 2: where operators must use TOTP, one without it may only enrol.
        Ok(p) if access == Access::Operator
            && allowed(p.role)
            && crate::totp::required(&state, p.role)
            && !p.totp =>
        {
            ApiErr::forbidden(
                "this platform requires two-factor sign-in of operators: enrol at /api/v1/me/totp/enroll first",
            )
            .with_code("totp_enrolment_required")
            .into_response()
        }
        Ok(p) if allowed(p.role) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Ok(_) => ApiErr::forbidden("this account's role may not use this route").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The OpenAPI 3.1 document, generated from [`routes`].
pub fn openapi() -> OpenApi {
    let mut paths = Paths::new();
    for info in routes() {
        let method = match info.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PATCH" => HttpMethod::Patch,
            "PUT" => HttpMethod::Put,
            _ => HttpMethod::Delete,
        };
        let mut op = OperationBuilder::new()
            .summary(Some(info.summary))
            .operation_id(Some(format!(
                "{}_{}",
                info.method.to_lowercase(),
                info.path
                    .trim_start_matches('/')
                    .replace(['/', '{', '}', '.'], "_")
            )));
        if let Some(req) = info.request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(req)))
                            .build(),
                    )
                    .build(),
            ));
        }
        let ok = match info.response {
            Some(name) => ResponseBuilder::new().description("Success").content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(name)))
                    .build(),
            ),
            None => ResponseBuilder::new().description("Success"),
        };
        op = op.response("200", ok.build());
        op = op.response(
            "default",
            ResponseBuilder::new()
                .description("Error")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiError")))
                        .build(),
                )
                .build(),
        );
        if !matches!(info.access, Access::Public | Access::Node) {
            op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        paths.add_path_operation(info.path, vec![method], op.build());
    }
    let _ = PathItem::default;
    let components = components();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("peercam CMU API (Cm)")
                .version("1.0.0")
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// The schemas of every request and answer, and the bearer scheme.
fn components() -> utoipa::openapi::Components {
    crate::accounting::routes::components(crate::logs::components(crate::campaigns::components(
        crate::users::components(crate::equipment::components(crate::faults::components(
            crate::clips::components(crate::cloud::plans::components(
                crate::snapshots::components(crate::alarms::components(ComponentsBuilder::new())),
            )),
        ))),
    )))
    .schema_from::<cm::ApiError>()
    .schema_from::<cm::AttachCamera>()
    .schema_from::<cm::AttachedCamera>()
    .schema_from::<cm::SetRecordingRequest>()
    .schema_from::<cm::PlaybackRequest>()
    .schema_from::<cm::PlaybackResponse>()
    .schema_from::<cm::ExportRequest>()
    .schema_from::<cm::ExportResponse>()
    .schema_from::<cm::EventRequest>()
    .schema_from::<cm::EventAccepted>()
    .schema_from::<peercam_signal::record::RecordingState>()
    .schema_from::<peercam_signal::record::RecordingList>()
    .schema_from::<peercam_signal::record::RecordedSpan>()
    .schema_from::<peercam_signal::record::RecordedEvent>()
    .schema_from::<peercam_signal::record::Timeline>()
    .schema_from::<peercam_signal::record::TimelineSpan>()
    .schema_from::<peercam_signal::record::RecorderAnswer>()
    .schema_from::<peercam_signal::record::Strategy>()
    .schema_from::<peercam_signal::record::Mode>()
    .schema_from::<peercam_signal::record::Window>()
    .schema_from::<peercam_signal::record::Retention>()
    .schema_from::<cm::SignupRequest>()
    .schema_from::<cm::SignupConfirm>()
    .schema_from::<cm::SignupState>()
    .schema_from::<cm::AccountStatus>()
    .schema_from::<cm::LoginRequest>()
    .schema_from::<cm::LoginResponse>()
    .schema_from::<cm::UserInfo>()
    .schema_from::<Role>()
    .schema_from::<cm::PasswordChange>()
    .schema_from::<cm::DeviceView>()
    .schema_from::<cm::Relation>()
    .schema_from::<cm::BindRequest>()
    .schema_from::<cm::DeviceRename>()
    .schema_from::<cm::DeviceStatus>()
    .schema_from::<peercam_signal::cmd::DeviceDescription>()
    .schema_from::<peercam_signal::ps::DeviceKind>()
    .schema_from::<cm::SubaccountCreate>()
    .schema_from::<cm::SubaccountView>()
    .schema_from::<cm::ShareRequest>()
    .schema_from::<cm::ShareView>()
    .schema_from::<cm::ProvisionDevice>()
    .schema_from::<cm::ProvisionRequest>()
    .schema_from::<cm::ProvisionResult>()
    .schema_from::<cm::AdminDeviceView>()
    .schema_from::<cm::AuditEntry>()
    .schema_from::<cm::PlayRequest>()
    .schema_from::<cm::PlayResponse>()
    .schema_from::<peercam_signal::relay::PathKind>()
    .schema_from::<peercam_signal::relay::MediaPath>()
    .schema_from::<cm::SessionReport>()
    .schema_from::<cm::IceServer>()
    .schema_from::<peercam_signal::relay::PunchDescription>()
    .schema_from::<cm::WebRtcOffer>()
    .schema_from::<cm::PlaybackWebRtcRequest>()
    .schema_from::<cm::WebRtcAnswer>()
    .schema_from::<peercam_signal::trickle::Trickle>()
    .schema_from::<peercam_signal::relay::PunchCredentials>()
    .schema_from::<cm::IceConfig>()
    .schema_from::<cm::SessionView>()
    .schema_from::<cm::SessionsView>()
    .schema_from::<peercam_signal::play::Caps>()
    .schema_from::<peercam_signal::play::AudioCodec>()
    .schema_from::<cm::ConfigPermit>()
    .schema_from::<cm::SetParamsRequest>()
    .schema_from::<cm::ResetRequest>()
    .schema_from::<peercam_signal::control::PtzCommand>()
    .schema_from::<peercam_signal::control::PtzState>()
    .schema_from::<peercam_signal::control::Preset>()
    .schema_from::<peercam_signal::control::ParamsState>()
    .schema_from::<peercam_signal::control::DeviceParams>()
    .schema_from::<peercam_signal::control::VideoParams>()
    .schema_from::<peercam_signal::control::Resolution>()
    .schema_from::<peercam_signal::control::OsdParams>()
    .schema_from::<peercam_signal::control::NightParams>()
    .schema_from::<peercam_signal::control::NightMode>()
    .schema_from::<peercam_signal::control::AudioParams>()
    .schema_from::<peercam_signal::control::AlarmInput>()
    .schema_from::<peercam_signal::control::FieldError>()
    .schema_from::<cm::PackageView>()
    .schema_from::<cm::UpgradeOrder>()
    .schema_from::<cm::ClientUpdate>()
    .schema_from::<peercam_signal::control::UserParams>()
    .schema_from::<peercam_signal::control::UserParamsState>()
    .schema_from::<peercam_signal::control::SetUserParams>()
    .schema_from::<peercam_signal::control::PlatformParams>()
    .schema_from::<peercam_signal::control::PlatformParamsState>()
    .schema_from::<peercam_signal::control::SetPlatformParams>()
    .schema_from::<cm::ClientUpdateReport>()
    .schema_from::<peercam_signal::upgrade::SignedManifest>()
    .schema_from::<peercam_signal::upgrade::Manifest>()
    .schema_from::<peercam_signal::upgrade::ManifestSignature>()
    .schema_from::<peercam_signal::upgrade::UpgradeStatus>()
    .schema_from::<peercam_signal::control::WlanConfig>()
    .schema_from::<peercam_signal::control::WlanSecurity>()
    .schema_from::<peercam_signal::control::WlanState>()
    .schema_from::<peercam_signal::control::WlanNetwork>()
    .schema_from::<peercam_signal::control::WlanSwitch>()
    .security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    )
    .build()
}
