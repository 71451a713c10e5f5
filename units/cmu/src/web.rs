//! The web client (CU and M_CU of H.626.4 6.3), served by the CMU itself.
//!
//! Plain HTML, CSS and ES modules from `units/cmu/web/`, embedded in the binary at build time
//! (no build step, nothing fetched from elsewhere). The pages talk only to this CMU's
//! `/api/v1` over `fetch`; the Content-Security-Policy forbids everything else but WebRTC,
//! which CSP does not govern. See docs/web-client.md.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Scripts, styles, images and the manifest only from this origin; no inline script or
/// style, no plugins, no framing, no form posts elsewhere. `blob:` and `data:` images are
/// the snapshot preview; `media-src blob:` the local recording preview.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
     manifest-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../web/index.html"),
    },
    Asset {
        path: "/app/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/app.js"),
    },
    Asset {
        path: "/app/alarms.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/alarms.js"),
    },
    Asset {
        path: "/app/alarm-stream.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/alarm-stream.js"),
    },
    Asset {
        path: "/app/alarm-settings.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/alarm-settings.js"),
    },
    Asset {
        path: "/app/cloud-plan.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/cloud-plan.js"),
    },
    Asset {
        path: "/app/shared-clips.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/shared-clips.js"),
    },
    Asset {
        path: "/app/live.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/live.js"),
    },
    Asset {
        path: "/app/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/style.css"),
    },
    Asset {
        path: "/app/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../web/icon.svg"),
    },
    Asset {
        path: "/app/icon-maskable.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../web/icon-maskable.svg"),
    },
    Asset {
        path: "/manifest.webmanifest",
        content_type: "application/manifest+json",
        body: include_bytes!("../web/manifest.webmanifest"),
    },
    // At the root so that its scope is the whole client.
    Asset {
        path: "/sw.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/sw.js"),
    },
];

fn respond(asset: &'static Asset) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
            // Revalidate every time: a new CMU brings a new client at once; the service
            // worker keeps a copy for when the network is gone.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        asset.body,
    )
        .into_response()
}

/// The client's routes: `/`, `/app/*`, `/manifest.webmanifest`, `/sw.js`. Anything else,
/// `/api/*` included, is left to the API router and its fallback.
pub(crate) fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |r, asset| {
        r.route(asset.path, get(move || async move { respond(asset) }))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_the_policy() {
        for asset in ASSETS {
            let resp = router()
                .oneshot(
                    axum::http::Request::get(asset.path)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{}", asset.path);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(resp.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        }
    }

    #[test]
    fn client_version_is_the_crate_version() {
        // 8.11.2: the client reports this version when it asks whether it is current.
        let version = env!("CARGO_PKG_VERSION");
        let app = std::str::from_utf8(ASSETS[1].body).unwrap();
        let want = format!("export const VERSION = '{version}';");
        assert!(app.contains(&want), "app.js must declare {want}");
        // The service worker names its cache after it, so an update replaces the old shell.
        let sw = std::str::from_utf8(ASSETS.last().unwrap().body).unwrap();
        let want = format!("const VERSION = '{version}';");
        assert!(sw.contains(&want), "sw.js must declare {want}");
    }

    /// H.626.4 6.3 (M_CU offline): the service worker keeps every module and style of the
    /// shell, so the client opens offline; a module left out of its list breaks the offline
    /// start (an import that cannot load stops the whole app).
    #[test]
    fn h626_6_3_the_offline_shell_holds_every_module() {
        let sw = std::str::from_utf8(ASSETS.last().unwrap().body).unwrap();
        let shell = sw
            .lines()
            .find(|l| l.starts_with("const SHELL = ["))
            .expect("sw.js declares its SHELL list");
        for asset in ASSETS {
            if asset.path.starts_with("/app/") {
                assert!(
                    shell.contains(&format!("'{}'", asset.path)),
                    "sw.js's SHELL must list {}",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("onclick=") && !html.contains("onload="));
    }
}
