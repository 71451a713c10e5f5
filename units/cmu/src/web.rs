//! The web client (CU and M_CU of H.626.4 6.3), served by the CMU itself.
//!
//! Plain HTML, CSS and ES modules from `units/cmu/web/`, embedded in the binary at build time
//! (no build step, nothing fetched from elsewhere). The pages talk only to this CMU's
//! `/api/v1` over `fetch`, and upload shared clips to the cloud storage units (whose origins
//! the page's policy names); the Content-Security-Policy forbids everything else but WebRTC,
//! which CSP does not govern. See docs/web-client.md.

use std::future::Future;

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
        path: "/app/two-factor.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/two-factor.js"),
    },
    Asset {
        path: "/app/usage.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/usage.js"),
    },
    Asset {
        path: "/app/operator-reports.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/operator-reports.js"),
    },
    Asset {
        path: "/app/operator-billing.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/operator-billing.js"),
    },
    Asset {
        path: "/app/operator.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/operator.js"),
    },
    Asset {
        path: "/app/operator-equipment.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/operator-equipment.js"),
    },
    Asset {
        path: "/app/operator-users.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/operator-users.js"),
    },
    Asset {
        path: "/app/operator-campaigns.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/operator-campaigns.js"),
    },
    Asset {
        path: "/app/operator-logs.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/operator-logs.js"),
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

/// The page's policy: [`CSP`] with `connect-src` widened to `cs_origins`, the origins of the
/// cloud storage units, where the client uploads the clips it shares (issue 17 item 9).
/// Origins that are not plain `http(s)://host[:port]` are left out.
pub(crate) fn csp(cs_origins: &[String]) -> String {
    let mut connect = String::from("connect-src 'self'");
    for o in cs_origins.iter().filter(|o| plain_origin(o)) {
        if !connect.split(' ').any(|x| x == o) {
            connect.push(' ');
            connect.push_str(o);
        }
    }
    CSP.replace("connect-src 'self'", &connect)
}

/// `http(s)://host[:port]` with nothing that could end a directive or a source.
fn plain_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 255
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The origins of the cloud storage units online now (their Cp base URLs, as
/// `cloud::cs_url` makes them for clip uploads).
async fn cs_origins(st: &crate::Shared) -> Vec<String> {
    let cs = peercam_signal::ps::DeviceKind::Cs;
    let Ok(all) = crate::store::devices::of_kind(&st.store, cs).await else {
        return Vec::new();
    };
    all.iter()
        .filter(|d| !d.disabled && st.platform.is_online(&d.id))
        .filter_map(|d| crate::cloud::cs_url(st, &d.id))
        .map(|u| crate::clips::origin(&u).to_owned())
        .collect()
}

fn respond(asset: &'static Asset, csp: HeaderValue) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
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
pub(crate) fn router(st: crate::Shared) -> Router {
    routes(move || {
        let st = st.clone();
        async move { cs_origins(&st).await }
    })
}

/// The routes, with the cloud storage origins from `origins`. Only the page (`/`) asks for
/// them: a document's policy governs its `fetch` and `XMLHttpRequest`; scripts and styles
/// get [`CSP`] as it is.
fn routes<F, Fut>(origins: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<String>> + Send + 'static,
{
    ASSETS.iter().fold(Router::new(), |r, asset| {
        let origins = origins.clone();
        r.route(
            asset.path,
            get(move || async move {
                let policy = if asset.path == "/" {
                    HeaderValue::from_str(&csp(&origins().await))
                        .unwrap_or_else(|_| HeaderValue::from_static(CSP))
                } else {
                    HeaderValue::from_static(CSP)
                };
                respond(asset, policy)
            }),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tower::ServiceExt as _;

    const CS: &str = "https://127.0.0.1:8570";

    fn router() -> Router {
        routes(|| async { vec![CS.to_owned(), "https://x; script-src *".to_owned()] })
    }

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
            let want = if asset.path == "/" {
                csp(&[CS.to_owned()])
            } else {
                CSP.to_owned()
            };
            assert_eq!(resp.headers()[header::CONTENT_SECURITY_POLICY], *want);
        }
    }

    #[test]
    fn h626_8_7_1_the_page_may_connect_to_cloud_storage_origins_only() {
        let p = csp(&[CS.to_owned(), CS.to_owned(), "http://cs.example".to_owned()]);
        assert_eq!(
            p,
            CSP.replace(
                "connect-src 'self'",
                "connect-src 'self' https://127.0.0.1:8570 http://cs.example"
            )
        );
        // Nothing that is not a plain origin: no directive, wildcard or path slips in.
        for bad in [
            "https://x; script-src *",
            "*",
            "https://a b",
            "https://cs/path",
            "data:",
            "https://",
        ] {
            assert_eq!(csp(&[bad.to_owned()]), CSP, "{bad}");
        }
        assert_eq!(csp(&[]), CSP);
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
