//! The H.626.4 customer unit (CU) as a library: a typed client of the CMU's Cm interface.
//!
//! Used by the `peercam cu` and `peercam admin` commands, the demo, and the tests (where it
//! plays the user). Every call returns [`CuError::Api`] with the CMU's stable error code when
//! the platform refuses.

mod alarms;
mod billing;
mod clips;
pub use clips::{ShareSpec, ShareStep};
pub mod live;
mod plans;
pub mod playback;
mod snapshots;
pub mod talk;

use peercam_signal::cm::*;
use peercam_signal::cm_campaign::{
    CampaignAction, CampaignCreate, CampaignDetail, CampaignView, SystemLogEntry,
};
use peercam_signal::cmd::DeviceDescription;
use peercam_signal::control::{
    DeviceParams, FieldError, ParamsState, PlatformParams, PlatformParamsState, PtzCommand,
    PtzState, SetPlatformParams, SetUserParams, UserParams, UserParamsState, WlanConfig, WlanState,
};
use peercam_signal::upgrade::{SignedManifest, UpgradeStatus};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CuError {
    /// The CMU answered with an error.
    #[error("{message} ({code}, HTTP {status}){}", field_list(fields))]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Explanation.
        message: String,
        /// Refused fields, when values were out of range.
        fields: Vec<FieldError>,
    },
    /// The CMU could not be reached or answered nonsense.
    #[error("cannot talk to the CMU at {api}: {source}")]
    Transport {
        /// The API URL.
        api: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// Bad client configuration (CA file).
    #[error("{0}")]
    Config(String),
    /// Playing from the camera failed.
    #[error("{0}")]
    Media(String),
}

/// The CMU's error answer, or a readable stand-in when it is not one.
fn api_error(status: StatusCode, bytes: &[u8]) -> CuError {
    let err: ApiError = serde_json::from_slice(bytes).unwrap_or_else(|_| ApiError {
        error: "http_error".into(),
        message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        fields: Vec::new(),
    });
    CuError::Api {
        status: status.as_u16(),
        code: err.error,
        message: err.message,
        fields: err.fields,
    }
}

fn field_list(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("\n  {}: {}", f.field, f.message))
        .collect()
}

impl CuError {
    /// The refused fields, if the CMU refused values.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Self::Api { fields, .. } => fields,
            _ => &[],
        }
    }

    /// The API error code, if the CMU refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, if the CMU answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Times a broken download is resumed with `Range` before it fails.
const MAX_RESUMES: u32 = 3;

/// A client of one CMU, optionally logged in.
#[derive(Clone)]
pub struct Client {
    api: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api)
            .field("logged_in", &self.token.is_some())
            .finish()
    }
}

impl Client {
    /// A client of the CMU at `api` (`https://host:port`), trusting only `ca_pem` if given.
    pub fn new(api: &str, ca_pem: Option<&[u8]>) -> Result<Self, CuError> {
        let mut b = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("peercam-cu/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| CuError::Config(format!("CA certificate: {e}")))?;
            b = b.tls_certs_only([cert]);
        }
        let http = b
            .build()
            .map_err(|e| CuError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            api: api.trim_end_matches('/').to_owned(),
            http,
            token: None,
        })
    }

    /// The same client carrying a session token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The session token, if logged in.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The API base URL.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// Sends a request to a path under the API and decodes the JSON answer (`()` for none).
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CuError> {
        let mut req = self.http.request(method, format!("{}{path}", self.api));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |source| CuError::Transport {
            api: self.api.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            if status == StatusCode::NO_CONTENT {
                return serde_json::from_value(serde_json::Value::Null)
                    .map_err(|e| CuError::Config(e.to_string()));
            }
            return resp.json().await.map_err(transport);
        }
        let bytes = resp.bytes().await.map_err(transport)?;
        Err(api_error(status, &bytes))
    }

    /// A JPEG of what the camera sees now, at most `max_width` wide.
    pub async fn snapshot(&self, id: &str, max_width: u16) -> Result<Vec<u8>, CuError> {
        self.get_raw(&format!(
            "/api/v1/devices/{id}/snapshot?max_width={max_width}"
        ))
        .await
    }

    /// `GET path` whose answer is not JSON (a JPEG, a CSV report): its bytes, or the API's
    /// error.
    async fn get_raw(&self, path: &str) -> Result<Vec<u8>, CuError> {
        let mut req = self.http.get(format!("{}{path}", self.api));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let transport = |source| CuError::Transport {
            api: self.api.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            Err(api_error(status, &bytes))
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CuError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CuError> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Result<(), CuError> {
        self.call::<(), ()>(Method::DELETE, path, None).await
    }

    /// Sign-up step 1 (6.1.1).
    pub async fn signup(&self, phone: &str, password: &str) -> Result<SignupState, CuError> {
        self.post(
            "/api/v1/signup",
            &SignupRequest {
                phone: phone.into(),
                password: password.into(),
                name: None,
                contract_id: None,
            },
        )
        .await
    }

    /// Sign-up step 2.
    pub async fn confirm(&self, phone: &str, code: &str) -> Result<SignupState, CuError> {
        self.post(
            "/api/v1/signup/confirm",
            &SignupConfirm {
                phone: phone.into(),
                code: code.into(),
            },
        )
        .await
    }

    /// Logs in; returns a client carrying the session.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
    ) -> Result<(Self, LoginResponse), CuError> {
        self.login_totp(login, password, None).await
    }

    /// Logs in with a TOTP code (or a recovery code) for an account with two-factor
    /// sign-in; without it such an account is refused with `totp_required`.
    pub async fn login_totp(
        &self,
        login: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<(Self, LoginResponse), CuError> {
        let r: LoginResponse = self
            .post(
                "/api/v1/login",
                &LoginRequest {
                    login: login.into(),
                    password: password.into(),
                    totp: totp.map(Into::into),
                },
            )
            .await?;
        Ok((self.clone().with_token(r.token.clone()), r))
    }

    /// Ends the session.
    pub async fn logout(&self) -> Result<(), CuError> {
        self.call::<(), ()>(Method::POST, "/api/v1/logout", None)
            .await
    }

    /// The logged-in account.
    pub async fn me(&self) -> Result<UserInfo, CuError> {
        self.get("/api/v1/me").await
    }

    /// Changes the password.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), CuError> {
        self.post(
            "/api/v1/me/password",
            &PasswordChange {
                old_password: old.into(),
                new_password: new.into(),
            },
        )
        .await
    }

    /// Devices owned or shared.
    pub async fn devices(&self) -> Result<Vec<DeviceView>, CuError> {
        self.get("/api/v1/devices").await
    }

    /// One device.
    pub async fn device(&self, id: &str) -> Result<DeviceView, CuError> {
        self.get(&format!("/api/v1/devices/{id}")).await
    }

    /// Binds a device (8.2).
    pub async fn bind(
        &self,
        id: &str,
        code: &str,
        name: Option<&str>,
    ) -> Result<DeviceView, CuError> {
        self.post(
            "/api/v1/devices/bind",
            &BindRequest {
                device_id: id.into(),
                bind_code: code.into(),
                name: name.map(Into::into),
            },
        )
        .await
    }

    /// Renames a device.
    pub async fn rename(&self, id: &str, name: &str) -> Result<DeviceView, CuError> {
        self.call(
            Method::PATCH,
            &format!("/api/v1/devices/{id}"),
            Some(&DeviceRename { name: name.into() }),
        )
        .await
    }

    /// Unbinds a device.
    pub async fn unbind(&self, id: &str) -> Result<(), CuError> {
        self.delete(&format!("/api/v1/devices/{id}")).await
    }

    /// Asks the device itself, through the platform.
    pub async fn status(&self, id: &str) -> Result<DeviceStatus, CuError> {
        self.get(&format!("/api/v1/devices/{id}/status")).await
    }

    /// Your own settings kept by the CMU (8.9.2).
    pub async fn user_params(&self) -> Result<UserParamsState, CuError> {
        self.get("/api/v1/me/params").await
    }

    /// Changes your settings (8.9.2): permission first, then the whole document.
    pub async fn set_user_params(
        &self,
        edit: impl FnOnce(&mut UserParams),
    ) -> Result<UserParamsState, CuError> {
        let current = self.user_params().await?;
        let permit: ConfigPermit = self
            .call::<(), _>(Method::POST, "/api/v1/me/params/permit", None)
            .await?;
        let mut params = current.params;
        edit(&mut params);
        self.call(
            Method::PUT,
            "/api/v1/me/params",
            Some(&SetUserParams {
                permit: permit.permit,
                base_revision: permit.revision,
                params,
            }),
        )
        .await
    }

    /// Operator: the platform's settings (8.9.2).
    pub async fn platform_params(&self) -> Result<PlatformParamsState, CuError> {
        self.get("/api/v1/admin/params").await
    }

    /// Operator: changes the platform's settings (8.9.2).
    pub async fn set_platform_params(
        &self,
        edit: impl FnOnce(&mut PlatformParams),
    ) -> Result<PlatformParamsState, CuError> {
        let current = self.platform_params().await?;
        let permit: ConfigPermit = self
            .call::<(), _>(Method::POST, "/api/v1/admin/params/permit", None)
            .await?;
        let mut params = current.params;
        edit(&mut params);
        self.call(
            Method::PUT,
            "/api/v1/admin/params",
            Some(&SetPlatformParams {
                permit: permit.permit,
                base_revision: permit.revision,
                params,
            }),
        )
        .await
    }

    /// Turns or zooms a camera, or uses its presets (H.626.4 8.5).
    pub async fn ptz(&self, id: &str, order: &PtzCommand) -> Result<PtzState, CuError> {
        self.post(&format!("/api/v1/devices/{id}/ptz"), order).await
    }

    /// Reads a camera's parameters (8.9.1 query).
    pub async fn params(&self, id: &str) -> Result<ParamsState, CuError> {
        self.get(&format!("/api/v1/devices/{id}/params")).await
    }

    /// Asks permission to configure (8.9.1 steps 7-8).
    pub async fn params_permit(&self, id: &str) -> Result<ConfigPermit, CuError> {
        self.call::<(), ConfigPermit>(
            Method::POST,
            &format!("/api/v1/devices/{id}/params/permit"),
            None,
        )
        .await
    }

    /// Configures a camera (8.9.1): asks permission, then sends the whole document based on
    /// the revision the permission names. `edit` changes the current parameters.
    pub async fn set_params(
        &self,
        id: &str,
        edit: impl FnOnce(&mut DeviceParams),
    ) -> Result<ParamsState, CuError> {
        let current = self.params(id).await?;
        let permit = self.params_permit(id).await?;
        let mut params = current.params;
        edit(&mut params);
        self.call(
            Method::PUT,
            &format!("/api/v1/devices/{id}/params"),
            Some(&SetParamsRequest {
                permit: permit.permit,
                base_revision: permit.revision,
                params,
            }),
        )
        .await
    }

    /// The networks a camera sees and the one it is on (6.1.11).
    pub async fn wlan(&self, id: &str) -> Result<WlanState, CuError> {
        self.get(&format!("/api/v1/devices/{id}/wlan")).await
    }

    /// Moves a camera to another network (6.1.11).
    pub async fn set_wlan(&self, id: &str, config: &WlanConfig) -> Result<WlanState, CuError> {
        self.call(
            Method::PUT,
            &format!("/api/v1/devices/{id}/wlan"),
            Some(config),
        )
        .await
    }

    /// Orders an upgrade to `version` (8.11.1); the device answers with its progress.
    pub async fn upgrade(&self, id: &str, version: &str) -> Result<UpgradeStatus, CuError> {
        self.post(
            &format!("/api/v1/devices/{id}/upgrade"),
            &UpgradeOrder {
                version: version.into(),
            },
        )
        .await
    }

    /// Where a device's upgrade stands (8.11.1).
    pub async fn upgrade_status(&self, id: &str) -> Result<UpgradeStatus, CuError> {
        self.get(&format!("/api/v1/devices/{id}/upgrade")).await
    }

    /// Operator: registers a signed release manifest.
    pub async fn upload_manifest(&self, release: &SignedManifest) -> Result<PackageView, CuError> {
        self.post("/api/v1/admin/packages", release).await
    }

    /// Asks for the newest client release of `platform` (8.11.2).
    pub async fn client_update(
        &self,
        platform: &str,
        version: &str,
    ) -> Result<ClientUpdate, CuError> {
        self.get(&format!(
            "/api/v1/client/update?platform={}&version={}",
            url::form_urlencoded::byte_serialize(platform.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(version.as_bytes()).collect::<String>()
        ))
        .await
    }

    /// Reports a client update's outcome (8.11.2).
    pub async fn client_update_report(&self, report: &ClientUpdateReport) -> Result<(), CuError> {
        self.post("/api/v1/client/update/report", report).await
    }

    // -----------------------------------------------------------------------------------
    // Recording (H.626.4 8.7.2 NVR, 8.7.3 SD card)

    /// Attaches one of the owner's cameras to one of their NVRs (8.7.2.1 steps 1-8).
    pub async fn attach_camera(&self, nvr: &str, camera: &str) -> Result<AttachedCamera, CuError> {
        self.post(
            &format!("/api/v1/devices/{nvr}/cameras"),
            &AttachCamera {
                camera: camera.into(),
            },
        )
        .await
    }

    /// Detaches a camera from an NVR; `wipe` deletes its recordings there.
    pub async fn detach_camera(&self, nvr: &str, camera: &str, wipe: bool) -> Result<(), CuError> {
        self.delete(&format!(
            "/api/v1/devices/{nvr}/cameras/{camera}?wipe={wipe}"
        ))
        .await
    }

    /// Sets a camera's record strategy on `recorder` (`sd`, an NVR id, or `None` for the
    /// default) (8.7.2.1 steps 9-15, 8.7.3).
    pub async fn set_recording(
        &self,
        camera: &str,
        recorder: Option<&str>,
        strategy: &peercam_signal::record::Strategy,
    ) -> Result<peercam_signal::record::RecordingState, CuError> {
        self.call(
            Method::PUT,
            &format!("/api/v1/devices/{camera}/recording"),
            Some(&SetRecordingRequest {
                recorder: recorder.map(str::to_owned),
                strategy: strategy.clone(),
            }),
        )
        .await
    }

    /// A camera's recording state on `recorder`.
    pub async fn recording_state(
        &self,
        camera: &str,
        recorder: Option<&str>,
    ) -> Result<peercam_signal::record::RecordingState, CuError> {
        self.get(&format!(
            "/api/v1/devices/{camera}/recording{}",
            recorder_query(recorder, '?')
        ))
        .await
    }

    /// The camera's cloud recording state (8.7.1): as [`Self::recording_state`] with
    /// `recorder=cloud`, with the backlog and acknowledgements.
    pub async fn cloud_recording_state(
        &self,
        camera: &str,
    ) -> Result<peercam_signal::record::CloudRecordingState, CuError> {
        self.get(&format!(
            "/api/v1/devices/{camera}/recording?recorder=cloud"
        ))
        .await
    }

    /// The record list of `camera` between two Unix-ms instants (8.7.2.2).
    pub async fn recordings(
        &self,
        camera: &str,
        recorder: Option<&str>,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<peercam_signal::record::RecordingList, CuError> {
        let enc = |t| {
            url::form_urlencoded::byte_serialize(peercam_record::time::format_rfc3339(t).as_bytes())
                .collect::<String>()
        };
        self.get(&format!(
            "/api/v1/devices/{camera}/recordings?from={}&to={}{}",
            enc(from_ms),
            enc(to_ms),
            recorder_query(recorder, '&')
        ))
        .await
    }

    /// The merged timeline of every recorder of `camera` (6.3.2): each span names the
    /// recorders holding it, nearest first.
    pub async fn timeline(
        &self,
        camera: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<peercam_signal::record::Timeline, CuError> {
        let enc = |t| {
            url::form_urlencoded::byte_serialize(peercam_record::time::format_rfc3339(t).as_bytes())
                .collect::<String>()
        };
        self.get(&format!(
            "/api/v1/devices/{camera}/recordings?from={}&to={}",
            enc(from_ms),
            enc(to_ms),
        ))
        .await
    }

    /// An RTSP playback URL for `camera`'s recordings from `start_ms`.
    pub async fn playback_url(
        &self,
        camera: &str,
        recorder: Option<&str>,
        start_ms: u64,
    ) -> Result<PlaybackResponse, CuError> {
        self.post(
            &format!("/api/v1/devices/{camera}/recordings/play"),
            &PlaybackRequest {
                recorder: recorder.map(str::to_owned),
                start: peercam_record::time::format_rfc3339(start_ms),
            },
        )
        .await
    }

    /// Plays `camera`'s recordings over WebRTC from `start_ms`: sends the offer (with a data
    /// channel for [`peercam_signal::record::PlaybackControl`]); returns the recorder's answer.
    pub async fn playback_webrtc(
        &self,
        camera: &str,
        recorder: Option<&str>,
        start_ms: u64,
        offer: String,
    ) -> Result<WebRtcAnswer, CuError> {
        self.post(
            &format!("/api/v1/devices/{camera}/recordings/webrtc"),
            &PlaybackWebRtcRequest {
                offer,
                start: peercam_record::time::format_rfc3339(start_ms),
                recorder: recorder.map(str::to_owned),
            },
        )
        .await
    }

    /// An MP4 export URL for `camera` in `[from_ms, to_ms)` (8.7.2.2 steps 7-10).
    pub async fn export_url(
        &self,
        camera: &str,
        recorder: Option<&str>,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<ExportResponse, CuError> {
        self.post(
            &format!("/api/v1/devices/{camera}/recordings/export"),
            &ExportRequest {
                recorder: recorder.map(str::to_owned),
                from: peercam_record::time::format_rfc3339(from_ms),
                to: peercam_record::time::format_rfc3339(to_ms),
            },
        )
        .await
    }

    /// Marks an event on a camera's timeline (`alarm` fires alarm strategies).
    pub async fn record_event(
        &self,
        camera: &str,
        kind: &str,
        detail: &str,
    ) -> Result<EventAccepted, CuError> {
        self.post(
            &format!("/api/v1/devices/{camera}/events"),
            &EventRequest {
                kind: kind.into(),
                detail: detail.into(),
            },
        )
        .await
    }

    /// Fetches an export (or any media URL) into `out`, calling `progress(bytes, total)`
    /// (`total` from `Content-Length`); a refusal's text becomes the error. A download cut
    /// short resumes with `Range` (at most three times) when the server takes ranges.
    pub async fn fetch_export(
        &self,
        url: &str,
        out: &std::path::Path,
        progress: impl Fn(u64, Option<u64>),
    ) -> Result<u64, CuError> {
        use std::io::Write as _;
        let transport = |source| CuError::Transport {
            api: url.to_owned(),
            source,
        };
        let mut resp = self.http.get(url).send().await.map_err(transport)?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(CuError::Media(format!(
                "export refused: HTTP {status}: {}",
                text.trim()
            )));
        }
        let total = resp.content_length();
        // A server that takes byte ranges (a cloud download under a viewer grant, which
        // serves several requests while it lives) lets a broken download resume where it
        // stopped; a one-time token's does not.
        let resumable = total.is_some()
            && resp
                .headers()
                .get(reqwest::header::ACCEPT_RANGES)
                .is_some_and(|v| v.as_bytes() == b"bytes");
        let part = out.with_extension("part");
        let mut f = std::fs::File::create(&part)
            .map_err(|e| CuError::Config(format!("{}: {e}", part.display())))?;
        let mut n = 0u64;
        let mut resumes = 0;
        loop {
            let cut = match resp.chunk().await {
                Ok(Some(chunk)) => {
                    f.write_all(&chunk)
                        .map_err(|e| CuError::Config(format!("{}: {e}", part.display())))?;
                    n += chunk.len() as u64;
                    progress(n, total);
                    continue;
                }
                Ok(None) if total.is_none_or(|t| t == n) => break,
                Ok(None) => None,
                Err(e) => Some(e),
            };
            if !resumable || resumes >= MAX_RESUMES {
                match cut {
                    Some(e) => return Err(transport(e)),
                    None => break,
                }
            }
            resumes += 1;
            resp = self
                .http
                .get(url)
                .header(reqwest::header::RANGE, format!("bytes={n}-"))
                .send()
                .await
                .map_err(transport)?;
            if resp.status() != StatusCode::PARTIAL_CONTENT {
                return Err(CuError::Media(format!(
                    "export cut short at {n} bytes and not resumed: HTTP {}",
                    resp.status()
                )));
            }
        }
        if total.is_some_and(|t| t != n) {
            return Err(CuError::Media(format!(
                "export cut short: {n} of {} bytes",
                total.unwrap_or_default()
            )));
        }
        f.sync_all()
            .and_then(|()| std::fs::rename(&part, out))
            .map_err(|e| CuError::Config(format!("{}: {e}", out.display())))?;
        Ok(n)
    }

    /// Downloads `url` into `out`, calling `progress(bytes)`; returns the size.
    pub async fn download(
        &self,
        url: &str,
        out: &std::path::Path,
        progress: impl Fn(u64),
    ) -> Result<u64, CuError> {
        use std::io::Write as _;
        let transport = |source| CuError::Transport {
            api: self.api.clone(),
            source,
        };
        let mut resp = self.http.get(url).send().await.map_err(transport)?;
        if !resp.status().is_success() {
            return Err(CuError::Media(format!("download: HTTP {}", resp.status())));
        }
        let mut f = std::fs::File::create(out)
            .map_err(|e| CuError::Config(format!("{}: {e}", out.display())))?;
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            f.write_all(&chunk)
                .map_err(|e| CuError::Config(format!("{}: {e}", out.display())))?;
            n += chunk.len() as u64;
            progress(n);
        }
        f.sync_all()
            .map_err(|e| CuError::Config(format!("{}: {e}", out.display())))?;
        Ok(n)
    }

    /// Operator: the release packages.
    pub async fn packages(&self) -> Result<Vec<PackageView>, CuError> {
        self.get("/api/v1/admin/packages").await
    }

    /// Operator: uploads a payload from `path`, calling `progress(bytes sent)` as it goes.
    pub async fn upload_payload(
        &self,
        sha256: &str,
        path: &std::path::Path,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<PackageView, CuError> {
        use tokio::io::AsyncReadExt as _;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| CuError::Config(format!("{}: {e}", path.display())))?;
        let progress = std::sync::Arc::new(progress);
        let stream = futures_util::stream::unfold(
            (file, 0u64, progress),
            |(mut f, sent, progress)| async move {
                let mut buf = vec![0u8; 256 * 1024];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        let sent = sent + n as u64;
                        progress(sent);
                        Some((Ok::<_, std::io::Error>(buf), (f, sent, progress)))
                    }
                    Err(e) => Some((Err(e), (f, sent, progress))),
                }
            },
        );
        let mut req = self
            .http
            .put(format!(
                "{}/api/v1/admin/packages/{sha256}/payload",
                self.api
            ))
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let transport = |source| CuError::Transport {
            api: self.api.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| CuError::Config(e.to_string()));
        }
        Err(api_error(status, &bytes))
    }

    /// Factory-resets a camera (8.10); it is unbound afterwards.
    pub async fn reset(&self, id: &str, wipe_recordings: bool) -> Result<(), CuError> {
        self.post(
            &format!("/api/v1/devices/{id}/reset"),
            &ResetRequest { wipe_recordings },
        )
        .await
    }

    /// Asks to watch a device (H.626.4 8.4 steps 1-3): an RTSP URL with a one-time token.
    pub async fn play(&self, id: &str, req: &PlayRequest) -> Result<PlayResponse, CuError> {
        self.post(&format!("/api/v1/devices/{id}/play"), req).await
    }

    /// Shares of a device.
    pub async fn shares(&self, id: &str) -> Result<Vec<ShareView>, CuError> {
        self.get(&format!("/api/v1/devices/{id}/shares")).await
    }

    /// Shares a device with a sub-account (8.6).
    pub async fn share(
        &self,
        id: &str,
        username: &str,
        scopes: peercam_base::ScopeSet,
    ) -> Result<ShareView, CuError> {
        self.post(
            &format!("/api/v1/devices/{id}/shares"),
            &ShareRequest {
                username: username.into(),
                scopes,
            },
        )
        .await
    }

    /// Stops sharing.
    pub async fn unshare(&self, id: &str, username: &str) -> Result<(), CuError> {
        self.delete(&format!("/api/v1/devices/{id}/shares/{username}"))
            .await
    }

    /// Sub-accounts.
    pub async fn subaccounts(&self) -> Result<Vec<SubaccountView>, CuError> {
        self.get("/api/v1/subaccounts").await
    }

    /// Creates a sub-account.
    pub async fn create_subaccount(
        &self,
        username: &str,
        password: &str,
    ) -> Result<SubaccountView, CuError> {
        self.post(
            "/api/v1/subaccounts",
            &SubaccountCreate {
                username: username.into(),
                password: password.into(),
            },
        )
        .await
    }

    /// Deletes a sub-account.
    pub async fn delete_subaccount(&self, username: &str) -> Result<(), CuError> {
        self.delete(&format!("/api/v1/subaccounts/{username}"))
            .await
    }

    /// Operator: the whole audit log, newest first.
    pub async fn admin_audit(&self) -> Result<Vec<AuditEntry>, CuError> {
        self.get("/api/v1/admin/audit").await
    }

    /// STUN/TURN servers with credentials for one session with the camera (ICE, WebRTC).
    pub async fn ice(&self, id: &str) -> Result<IceConfig, CuError> {
        self.call::<(), IceConfig>(Method::POST, &format!("/api/v1/devices/{id}/ice"), None)
            .await
    }

    /// Like [`ice`](Self::ice), for a WebRTC playback of camera `id` from `recorder` (`sd`
    /// or an NVR's id): the TURN permission covers the recorder's addresses (8.3).
    pub async fn ice_for_recorder(&self, id: &str, recorder: &str) -> Result<IceConfig, CuError> {
        self.call::<(), IceConfig>(
            Method::POST,
            &format!("/api/v1/devices/{id}/ice?recorder={recorder}"),
            None,
        )
        .await
    }

    /// H.626.4 8.3 hole punching: sends this viewer's description, gets the camera's.
    pub async fn punch(
        &self,
        id: &str,
        offer: &peercam_signal::relay::PunchDescription,
    ) -> Result<peercam_signal::relay::PunchDescription, CuError> {
        self.punch_to(id, None, offer).await
    }

    /// Like [`punch`](Self::punch); with `recorder`, to that recorder of camera `id`, for a
    /// playback (8.3 for recorders).
    pub async fn punch_to(
        &self,
        id: &str,
        recorder: Option<&str>,
        offer: &peercam_signal::relay::PunchDescription,
    ) -> Result<peercam_signal::relay::PunchDescription, CuError> {
        let q = recorder
            .map(|r| format!("?recorder={r}"))
            .unwrap_or_default();
        self.post(&format!("/api/v1/devices/{id}/punch{q}"), offer)
            .await
    }

    /// Sends a WebRTC offer for a live view; returns the camera's answer (issue 7).
    pub async fn webrtc(&self, id: &str, offer: &WebRtcOffer) -> Result<WebRtcAnswer, CuError> {
        self.post(&format!("/api/v1/devices/{id}/webrtc"), offer)
            .await
    }

    /// Trickle ICE (issue 20): more of the viewer's candidates, or their end, for the live
    /// view `session` (the `session` of its [`webrtc`](Self::webrtc) answer).
    pub async fn webrtc_candidates(
        &self,
        id: &str,
        session: &str,
        trickle: &peercam_signal::trickle::Trickle,
    ) -> Result<(), CuError> {
        self.post(
            &format!("/api/v1/devices/{id}/webrtc/{session}/candidates"),
            trickle,
        )
        .await
    }

    /// Reports how a live view went (path, time to connect, bytes).
    pub async fn report_session(&self, id: &str, report: &SessionReport) -> Result<(), CuError> {
        self.post(&format!("/api/v1/devices/{id}/sessions"), report)
            .await
    }

    /// Live-view sessions by path, and the latest ones (operator).
    pub async fn admin_sessions(&self) -> Result<SessionsView, CuError> {
        self.get("/api/v1/admin/sessions").await
    }

    /// Audit log of the caller.
    pub async fn audit(&self) -> Result<Vec<AuditEntry>, CuError> {
        self.get("/api/v1/audit").await
    }

    /// Operator: the fault list of network management (6.1.14), newest first; only the
    /// active faults unless `all`.
    pub async fn faults(&self, all: bool) -> Result<Vec<FaultView>, CuError> {
        if all {
            self.get("/api/v1/admin/faults?all=true").await
        } else {
            self.get("/api/v1/admin/faults").await
        }
    }

    /// Operator: acknowledges fault `id` (6.1.14).
    pub async fn fault_ack(&self, id: i64) -> Result<FaultView, CuError> {
        self.post(
            &format!("/api/v1/admin/faults/{id}/ack"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Operator: resolves fault `id` (6.1.14).
    pub async fn fault_resolve(&self, id: i64) -> Result<FaultView, CuError> {
        self.post(
            &format!("/api/v1/admin/faults/{id}/resolve"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Operator: fleet upgrade campaigns, newest first (8.11.1).
    pub async fn campaigns(&self) -> Result<Vec<CampaignView>, CuError> {
        self.get("/api/v1/admin/campaigns").await
    }

    /// Operator: one campaign and its devices' results (8.11.1).
    pub async fn campaign(&self, id: i64) -> Result<CampaignDetail, CuError> {
        self.get(&format!("/api/v1/admin/campaigns/{id}")).await
    }

    /// Operator: starts a fleet upgrade campaign (8.11.1).
    pub async fn campaign_create(&self, req: &CampaignCreate) -> Result<CampaignDetail, CuError> {
        self.post("/api/v1/admin/campaigns", req).await
    }

    /// Operator: `pause`, `resume` or `abort` campaign `id`, with an optional reason.
    pub async fn campaign_action(
        &self,
        id: i64,
        action: &str,
        reason: Option<String>,
    ) -> Result<CampaignView, CuError> {
        self.post(
            &format!("/api/v1/admin/campaigns/{id}/{action}"),
            &CampaignAction { reason },
        )
        .await
    }

    /// Operator: the audit log searched with `query` (`from=&to=&actor=&device=&action=&outcome=&limit=&cursor=`).
    pub async fn audit_search(&self, query: &str) -> Result<Vec<AuditEntry>, CuError> {
        self.get(&format!("/api/v1/admin/audit?{query}")).await
    }

    /// Operator: the system log searched with `query` (`from=&to=&device=&action=&unit=&limit=&cursor=`).
    pub async fn syslog(&self, query: &str) -> Result<Vec<SystemLogEntry>, CuError> {
        self.get(&format!("/api/v1/admin/syslog?{query}")).await
    }

    /// Operator: streams an export (`log` is `audit` or `syslog`, `query` carries `format`
    /// and the filters) into `out`, calling `progress` with the bytes so far.
    pub async fn export_log(
        &self,
        log: &str,
        query: &str,
        out: &mut (dyn std::io::Write + Send),
        mut progress: impl FnMut(u64),
    ) -> Result<u64, CuError> {
        let mut req = self
            .http
            .get(format!("{}/api/v1/admin/{log}/export?{query}", self.api))
            .timeout(std::time::Duration::from_secs(24 * 3600));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let transport = |source| CuError::Transport {
            api: self.api.clone(),
            source,
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.map_err(transport)?;
            return Err(api_error(status, &bytes));
        }
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            out.write_all(&chunk)
                .map_err(|e| CuError::Config(format!("writing the export: {e}")))?;
            n += chunk.len() as u64;
            progress(n);
        }
        Ok(n)
    }

    /// Operator: provision devices.
    pub async fn provision(
        &self,
        devices: Vec<ProvisionDevice>,
    ) -> Result<ProvisionResult, CuError> {
        self.post("/api/v1/admin/devices", &ProvisionRequest { devices })
            .await
    }

    /// Operator: every device.
    pub async fn admin_devices(&self) -> Result<Vec<AdminDeviceView>, CuError> {
        self.get("/api/v1/admin/devices").await
    }

    /// Operator: one page of the device search (6.1.1, 6.2); `query` is the URL query
    /// without `?` (`q=door&state=assigned&limit=50&cursor=...`).
    pub async fn search_devices(
        &self,
        query: &str,
    ) -> Result<peercam_signal::cm_equipment::AdminDevicePage, CuError> {
        // Any parameter asks for a page; `limit` is always sent so that an empty query does.
        let sep = if query.is_empty() { "" } else { "&" };
        let limit = if query.contains("limit=") {
            ""
        } else {
            "limit=50"
        };
        self.get(&format!("/api/v1/admin/devices?{query}{sep}{limit}"))
            .await
    }

    /// Operator: imports devices from CSV text, all or nothing (6.1.1, 6.2).
    pub async fn import_devices(
        &self,
        csv: String,
    ) -> Result<peercam_signal::cm_equipment::ImportResult, CuError> {
        let mut req = self
            .http
            .post(format!("{}/api/v1/admin/devices/import", self.api))
            .header("content-type", "text/csv")
            .body(csv);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let transport = |source| CuError::Transport {
            api: self.api.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| CuError::Config(e.to_string()))
        } else {
            Err(api_error(status, &bytes))
        }
    }

    /// Operator: assigns (or, `moving`, moves) a device to an owner account (6.1.1).
    pub async fn assign_device(
        &self,
        id: &str,
        account: &str,
        name: Option<&str>,
        moving: bool,
    ) -> Result<AdminDeviceView, CuError> {
        let verb = if moving { "move" } else { "assign" };
        let body = peercam_signal::cm_equipment::AssignRequest {
            account: account.to_owned(),
            name: name.map(str::to_owned),
        };
        self.post(&format!("/api/v1/admin/devices/{id}/{verb}"), &body)
            .await
    }

    /// Operator: decommissions a device (6.1.1).
    pub async fn decommission_device(
        &self,
        id: &str,
        recordings: peercam_signal::cm_equipment::RecordingsPolicy,
    ) -> Result<peercam_signal::cm_equipment::DecommissionResult, CuError> {
        let body = peercam_signal::cm_equipment::DecommissionRequest { recordings };
        self.post(&format!("/api/v1/admin/devices/{id}/decommission"), &body)
            .await
    }

    /// A catalogue entry: `POST collection` adds one (`id` none), `PUT collection/{id}`
    /// changes one.
    async fn post_or_put<B: Serialize, T: DeserializeOwned>(
        &self,
        collection: &str,
        id: Option<i64>,
        req: &B,
    ) -> Result<T, CuError> {
        match id {
            None => self.post(collection, req).await,
            Some(id) => {
                self.call(Method::PUT, &format!("{collection}/{id}"), Some(req))
                    .await
            }
        }
    }

    /// Operator: the vendor catalogue (6.2).
    pub async fn vendors(&self) -> Result<Vec<peercam_signal::cm_equipment::VendorView>, CuError> {
        self.get("/api/v1/admin/vendors").await
    }

    /// Operator: adds (`id` none) or changes a vendor (6.2).
    pub async fn put_vendor(
        &self,
        id: Option<i64>,
        req: &peercam_signal::cm_equipment::VendorRequest,
    ) -> Result<peercam_signal::cm_equipment::VendorView, CuError> {
        self.post_or_put("/api/v1/admin/vendors", id, req).await
    }

    /// Operator: the model catalogue (6.2).
    pub async fn models(&self) -> Result<Vec<peercam_signal::cm_equipment::ModelView>, CuError> {
        self.get("/api/v1/admin/models").await
    }

    /// Operator: adds (`id` none) or changes a model (6.2).
    pub async fn put_model(
        &self,
        id: Option<i64>,
        req: &peercam_signal::cm_equipment::ModelRequest,
    ) -> Result<peercam_signal::cm_equipment::ModelView, CuError> {
        self.post_or_put("/api/v1/admin/models", id, req).await
    }

    /// Operator: removes a vendor (`vendors`) or a model (`models`) of the catalogue (6.2).
    pub async fn remove_catalogue(&self, what: &str, id: i64) -> Result<(), CuError> {
        self.delete(&format!("/api/v1/admin/{what}/{id}")).await
    }

    /// Operator: accounts, optionally by status.
    pub async fn admin_users(&self, status: Option<&str>) -> Result<Vec<UserInfo>, CuError> {
        match status {
            Some(s) => self.get(&format!("/api/v1/admin/users?status={s}")).await,
            None => self.get("/api/v1/admin/users").await,
        }
    }

    /// Operator: one page of the account search (6.2): accounts whose login, name or
    /// contract id contains `q`, with `status`; the next page's cursor, if any.
    pub async fn admin_users_page(
        &self,
        q: Option<&str>,
        status: Option<&str>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<peercam_signal::cm_users::AdminUserView>, Option<String>), CuError> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/admin/users", self.api))
            .map_err(|e| CuError::Config(format!("API URL: {e}")))?;
        {
            let mut qp = url.query_pairs_mut();
            qp.append_pair("limit", &limit.to_string());
            for (k, v) in [("q", q), ("status", status), ("cursor", cursor)] {
                if let Some(v) = v {
                    qp.append_pair(k, v);
                }
            }
        }
        let mut req = self.http.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let transport = |source| CuError::Transport {
            api: self.api.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let next = resp
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !status.is_success() {
            let bytes = resp.bytes().await.map_err(transport)?;
            return Err(api_error(status, &bytes));
        }
        Ok((resp.json().await.map_err(transport)?, next))
    }

    /// Operator: enable a disabled account again.
    pub async fn enable(
        &self,
        id: i64,
    ) -> Result<peercam_signal::cm_users::AdminUserView, CuError> {
        self.call::<(), _>(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/enable"),
            None,
        )
        .await
    }

    /// Operator: send an owner a one-time code by SMS to set a new password with.
    pub async fn reset_password(&self, id: i64) -> Result<(), CuError> {
        self.call::<(), ()>(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/reset-password"),
            None,
        )
        .await
    }

    /// Sets a new password with the code of an operator's reset (no login needed).
    pub async fn password_reset(&self, phone: &str, code: &str, new: &str) -> Result<(), CuError> {
        self.post(
            "/api/v1/password/reset",
            &peercam_signal::cm_users::PasswordReset {
                phone: phone.into(),
                code: code.into(),
                new_password: new.into(),
            },
        )
        .await
    }

    /// Two-factor sign-in: its state.
    pub async fn totp_state(&self) -> Result<peercam_signal::cm_users::TotpState, CuError> {
        self.get("/api/v1/me/totp").await
    }

    /// Two-factor sign-in: a new secret to put in an authenticator app.
    pub async fn totp_enroll(&self) -> Result<peercam_signal::cm_users::TotpEnrolment, CuError> {
        self.call::<(), _>(Method::POST, "/api/v1/me/totp/enroll", None)
            .await
    }

    /// Two-factor sign-in: on, with the app's first code; the recovery codes.
    pub async fn totp_confirm(
        &self,
        code: &str,
    ) -> Result<peercam_signal::cm_users::RecoveryCodes, CuError> {
        self.post(
            "/api/v1/me/totp/confirm",
            &peercam_signal::cm_users::TotpCode { code: code.into() },
        )
        .await
    }

    /// Two-factor sign-in: off, with the password and a code (or a recovery code).
    pub async fn totp_disable(&self, password: &str, code: &str) -> Result<(), CuError> {
        self.post(
            "/api/v1/me/totp/disable",
            &peercam_signal::cm_users::TotpDisable {
                password: password.into(),
                code: code.into(),
            },
        )
        .await
    }

    /// Operator: approve an account.
    pub async fn approve(&self, id: i64) -> Result<UserInfo, CuError> {
        self.call::<(), UserInfo>(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/approve"),
            None,
        )
        .await
    }

    /// Operator: disable an account.
    pub async fn disable(&self, id: i64) -> Result<UserInfo, CuError> {
        self.call::<(), UserInfo>(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/disable"),
            None,
        )
        .await
    }
}

/// Re-exported for callers that print device descriptions.
pub type Description = DeviceDescription;

fn recorder_query(recorder: Option<&str>, sep: char) -> String {
    recorder.map_or_else(String::new, |r| {
        format!(
            "{sep}recorder={}",
            url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
        )
    })
}

#[cfg(test)]
mod fetch_tests {
    use super::Client;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Reads one request head; returns its `Range` value, if any.
    async fn head(s: &mut tokio::net::TcpStream) -> Option<String> {
        let mut buf = Vec::new();
        let mut b = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "the client closed");
            buf.extend_from_slice(&b[..n]);
        }
        String::from_utf8_lossy(&buf)
            .lines()
            .find_map(|l| l.strip_prefix("range: ").map(str::to_owned))
    }

    /// H.626.4 8.7.1 download: a connection cut half way resumes with `Range` where it
    /// stopped, and the file is whole.
    #[tokio::test]
    async fn h626_8_7_1_a_broken_download_resumes() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = body.clone();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            assert_eq!(head(&mut s).await, None);
            let h = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n\r\n",
                served.len()
            );
            s.write_all(h.as_bytes()).await.unwrap();
            s.write_all(&served[..40_000]).await.unwrap();
            drop(s);
            let (mut s, _) = listener.accept().await.unwrap();
            let range = head(&mut s).await;
            assert_eq!(range.as_deref(), Some("bytes=40000-"));
            let h = "HTTP/1.1 206 Partial Content\r\nContent-Length: 60000\r\nContent-Range: bytes 40000-99999/100000\r\n\r\n";
            s.write_all(h.as_bytes()).await.unwrap();
            s.write_all(&served[40_000..]).await.unwrap();
        });
        let dir = std::env::temp_dir().join(format!("peercam-cu-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("clip.mp4");
        let c = Client::new(&format!("http://{addr}"), None).unwrap();
        let n = c
            .fetch_export(&format!("http://{addr}/x.mp4"), &out, |_, _| {})
            .await
            .unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(std::fs::read(&out).unwrap(), body);
        server.await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
