//! Shared clip links (issue 17 item 9, H.626.4 8.7.1 download), end to end over real
//! sockets: the owner exports a range of a camera's cloud recordings, the clip is stored
//! encrypted on the CS, and an anonymous client plays and downloads it through the link
//! until the owner revokes it or it expires; every use is in the owner's audit log.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_cu::{ShareSpec, ShareStep};
use peercam_signal::cm_clip::ClipRequest;
use peercam_signal::identity::DeviceIdentity;
use peercam_signal::ps::DeviceKind;
use peercam_signal::record::{Mode, RecordingList, Strategy};
use peercam_test::{Cluster, new_identity};

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

struct World {
    c: Cluster,
    owner: peercam_cu::Client,
    cam: DeviceIdentity,
    cs_id: DeviceIdentity,
}

async fn world(phone: &str) -> World {
    let c = Cluster::start(1).await.unwrap();
    let cam = c.provision(1).await.unwrap().remove(0);
    let cs_id = new_identity(DeviceKind::Cs);
    c.provision_these(std::slice::from_ref(&cs_id))
        .await
        .unwrap();
    let owner = c.owner(phone).await.unwrap();
    World {
        c,
        owner,
        cam,
        cs_id,
    }
}

/// Starts the CS (with TLS when `tls`), the camera recording to it, and waits for `ms` of
/// cloud recordings.
async fn recording(
    w: &World,
    tls: bool,
    ms: u64,
) -> (
    Vec<peercam_net::Shutdown>,
    peercam_cs::Running,
    peercam_pu::Running,
    RecordingList,
) {
    let pki = w.c.pki.clone();
    let (cs, cs_sd) =
        w.c.start_cs_with(&w.cs_id, 0, |cfg| {
            if tls {
                cfg.tls = Some(peercam_cs::TlsFiles {
                    cert: pki.server_cert.clone(),
                    key: pki.server_key.clone(),
                });
            }
        })
        .await
        .unwrap();
    for _ in 0..300 {
        if !cs.su.grant_kids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (pu, pu_sd) =
        w.c.start_pu_with(&w.cam, 0, |cfg| {
            cfg.cloud_object_s = 2;
            cfg.sd_card = false;
        })
        .await
        .unwrap();
    w.c.wait_online(&w.cam.device_id, true, Duration::from_secs(15))
        .await
        .unwrap();
    let _ = w.c.bind(&w.owner, &w.cam).await;
    let cam = w.cam.device_id.as_str();
    let strategy = Strategy {
        mode: Mode::Continuous,
        ..Strategy::default()
    };
    w.owner
        .set_recording(cam, Some("cloud"), &strategy)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let list = loop {
        let now = now_ms();
        let list = w
            .owner
            .recordings(cam, Some("cloud"), now - 600_000, now + 60_000)
            .await
            .unwrap();
        let total: u64 = list.spans.iter().map(|s| s.end_ms - s.start_ms).sum();
        if total >= ms {
            break list;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    (vec![cs_sd, pu_sd], cs, pu, list)
}

/// A client with no account that trusts the test CA and does not follow redirects.
fn anonymous(c: &Cluster) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&c.ca_pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `src` of the page's video, unescaped.
fn video_src(html: &str) -> String {
    let at = html.find("<video").unwrap();
    let rest = &html[at..];
    let s = rest.find("src=\"").unwrap() + 5;
    let e = rest[s..].find('"').unwrap();
    rest[s..s + e].replace("&amp;", "&")
}

async fn audit(owner: &peercam_cu::Client) -> String {
    let v: serde_json::Value = owner
        .call::<(), _>(reqwest::Method::GET, "/api/v1/audit?limit=1000", None)
        .await
        .unwrap();
    v.to_string()
}

/// Sets a clip's expiry in the CMU's database (a link that expired without waiting).
async fn expire(c: &Cluster, id: &str) {
    let url = format!("sqlite://{}", c.db_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE clips SET expires_at = ?1 WHERE id = ?2")
        .bind(i64::try_from(now_ms() / 1000).unwrap() - 1)
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// Issue 17 item 9: a clip of the cloud range, shared by link: an anonymous client reads
/// the page, plays the clip with `Range` (ffprobe decodes every frame) and downloads it;
/// the object on the CS is encrypted and counted in the pool; another owner cannot see or
/// revoke it; revoked -> 410 and the media is gone; expired -> 410; each use is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_shared_clip_plays_without_account_until_revoked_or_expired() {
    let w = world("+15550871301").await;
    let (sds, _cs, _pu, list) = recording(&w, false, 10_000).await;
    let cam = w.cam.device_id.as_str();
    let span = list.spans[0];
    let (from, to) = (span.start_ms + 1000, span.start_ms + 7000);
    let dir = tempfile::tempdir().unwrap();
    let uploads = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = uploads.clone();
    let spec = ShareSpec {
        camera: cam,
        recorder: Some("cloud"),
        from_ms: from,
        to_ms: to,
        expires_in_s: Some(3600),
        label: Some("<b>front door</b>"),
    };
    let clip = w
        .owner
        .share_range(&spec, dir.path(), move |s| {
            if let ShareStep::Upload(n, _) = s {
                seen.store(n, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await
        .unwrap();
    assert!(uploads.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(clip.state, "active");
    assert_eq!(clip.link, format!("{}/c/{}", w.c.api, clip.id));
    assert_eq!(clip.id.len(), 22);

    // The page, without an account.
    let http = anonymous(&w.c);
    let page = http.get(&clip.link).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let h = page.headers().clone();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("data-state=\"active\""), "{html}");
    assert!(
        html.contains("&lt;b&gt;front door&lt;/b&gt;"),
        "the label is escaped"
    );
    let media = video_src(&html);
    assert!(
        media.contains("/cc/v1/clip/") && media.contains("grant=pcg1."),
        "{media}"
    );

    // The media: the whole MP4, then a range.
    let r = http.get(&media).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    let bytes = r.bytes().await.unwrap().to_vec();
    let file = dir.path().join("shared.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let frames = peercam_test::playback::ffprobe_frames(&file);
    assert!(
        (150..=205).contains(&frames),
        "{frames} frames for 6 s at 25 fps"
    );
    let r = http
        .get(&media)
        .header("range", "bytes=70000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 70000-{}/{}", bytes.len() - 1, bytes.len())
    );
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes[70000..]);

    // The download: a redirect to the CS, as an attachment.
    let r = http
        .get(format!("{}/download", clip.link))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let to_cs = r.headers()["location"].to_str().unwrap().to_owned();
    let r = http.get(&to_cs).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );
    assert_eq!(r.bytes().await.unwrap().len(), bytes.len());

    // At rest: encrypted, counted in the owner's pool.
    let prefix = media
        .split("/cc/v1/clip/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let raw = std::fs::read(w.c.path().join(format!(
        "cs-{}/objects/{prefix}/clips/{}.mp4",
        w.cs_id.device_id, clip.id
    )))
    .unwrap();
    assert_eq!(&raw[..4], b"PCE1", "sealed in the envelope");
    assert!(
        !raw.windows(4).any(|x| x == b"ftyp") && !raw.windows(4).any(|x| x == b"mdat"),
        "no MP4 structure in the stored bytes"
    );
    let idx = format!(
        "sqlite://{}?mode=ro",
        w.c.path()
            .join(format!("cs-{}/index.db", w.cs_id.device_id))
            .display()
    );
    let pool = sqlx::SqlitePool::connect(&idx).await.unwrap();
    let (clip_bytes, used): (i64, i64) = sqlx::query_as(
        "SELECT c.bytes, a.used FROM clips c JOIN accounts a ON a.account = c.account",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(clip_bytes as usize, raw.len());
    assert!(
        used >= clip_bytes,
        "the clip counts in the pool: {used} < {clip_bytes}"
    );

    // The upload grant reaches its own clip once, and only an MP4.
    let second = w
        .owner
        .create_clip(
            cam,
            &ClipRequest {
                from: peercam_record::time::format_rfc3339(from),
                to: peercam_record::time::format_rfc3339(to),
                recorder: Some("cloud".into()),
                expires_in_s: Some(600),
                label: None,
            },
        )
        .await
        .unwrap();
    let put = |url: String, body: Vec<u8>| {
        let http = http.clone();
        let grant = second.upload.grant.clone();
        async move {
            http.put(url)
                .bearer_auth(grant)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let other = second.upload.url.replace(&second.clip.id, &clip.id);
    assert_eq!(put(other, bytes.clone()).await, 403, "another clip's key");
    assert_eq!(
        put(second.upload.url.clone(), b"not an mp4".to_vec()).await,
        400
    );
    assert_eq!(put(second.upload.url.clone(), bytes.clone()).await, 201);
    assert_eq!(
        put(second.upload.url.clone(), bytes.clone()).await,
        409,
        "written once"
    );

    // Another owner sees nothing and revokes nothing; a sub-account may not share.
    let b = w.c.owner("+15550871302").await.unwrap();
    assert!(b.clips().await.unwrap().is_empty());
    match b.revoke_clip(&clip.id).await {
        Err(peercam_cu::CuError::Api { status, .. }) => assert_eq!(status, 404),
        other => panic!("another owner revoked: {other:?}"),
    }
    match b
        .create_clip(
            cam,
            &ClipRequest {
                from: peercam_record::time::format_rfc3339(from),
                to: peercam_record::time::format_rfc3339(to),
                recorder: None,
                expires_in_s: None,
                label: None,
            },
        )
        .await
    {
        Err(peercam_cu::CuError::Api { status, .. }) => assert_eq!(status, 404),
        other => panic!("another owner shared A's camera: {other:?}"),
    }
    // Too long a clip, too long a life.
    let bad = |from_ms: u64, to_ms: u64, life: u64| ClipRequest {
        from: peercam_record::time::format_rfc3339(from_ms),
        to: peercam_record::time::format_rfc3339(to_ms),
        recorder: None,
        expires_in_s: Some(life),
        label: None,
    };
    for req in [
        bad(from, from + 15 * 60_000 + 1, 600),
        bad(from, to, 31 * 86_400),
    ] {
        match w.owner.create_clip(cam, &req).await {
            Err(peercam_cu::CuError::Api { status, .. }) => assert_eq!(status, 422, "{req:?}"),
            other => panic!("{req:?}: {other:?}"),
        }
    }

    // The CLI: share (export, upload, print the link), list, revoke.
    let exe = env!("CARGO_BIN_EXE_peercam");
    let phone = "+15550871301";
    let (ok, out, err) =
        w.c.cu_cli(
            exe,
            phone,
            &[
                "--json",
                "clip",
                "share",
                cam,
                "--from",
                &peercam_record::time::format_rfc3339(from),
                "--to",
                &peercam_record::time::format_rfc3339(to),
                "--recorder",
                "cloud",
                "--expires",
                "2h",
                "--label",
                "cli",
            ],
        )
        .await;
    assert!(ok, "clip share: {out} {err}");
    let by_cli: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cli_id = by_cli["id"].as_str().unwrap().to_owned();
    assert_eq!(by_cli["state"], "active");
    let r = http
        .get(by_cli["link"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let media = video_src(&r.text().await.unwrap());
    let got = http
        .get(&media)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        got.len() > 10_000 && &got[4..8] == b"ftyp",
        "the CLI's clip plays"
    );
    let (ok, out, err) = w.c.cu_cli(exe, phone, &["clip", "list"]).await;
    assert!(
        ok && out.contains(&cli_id) && out.contains("\"cli\""),
        "clip list: {out} {err}"
    );
    let (ok, out, err) = w.c.cu_cli(exe, phone, &["clip", "revoke", &cli_id]).await;
    assert!(ok && out.contains("revoked"), "clip revoke: {out} {err}");

    // The owner's list counts the uses.
    let mine = w.owner.clips().await.unwrap();
    assert_eq!(mine.len(), 3);
    let listed = mine.iter().find(|c| c.id == clip.id).unwrap();
    assert_eq!((listed.views, listed.downloads), (1, 1));

    // Revoked: the page says so, the download is refused, the media is gone at once.
    let revoked = w.owner.revoke_clip(&clip.id).await.unwrap();
    assert_eq!(revoked.state, "revoked");
    let r = http.get(&clip.link).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 410);
    assert!(r.text().await.unwrap().contains("data-state=\"revoked\""));
    let r = http
        .get(format!("{}/download", clip.link))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410);
    assert_eq!(
        http.get(&media).send().await.unwrap().status().as_u16(),
        404
    );
    assert!(
        !w.c.path()
            .join(format!(
                "cs-{}/objects/{prefix}/clips/{}.mp4",
                w.cs_id.device_id, clip.id
            ))
            .exists(),
        "the object is deleted"
    );

    // Expired: refused the same way.
    expire(&w.c, &second.clip.id).await;
    let r = http.get(&second.clip.link).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 410);
    assert!(r.text().await.unwrap().contains("data-state=\"expired\""));
    // An unknown or malformed id.
    let unknown = format!("{}/c/AAAAAAAAAAAAAAAAAAAAAA", w.c.api);
    assert_eq!(
        http.get(&unknown).send().await.unwrap().status().as_u16(),
        404
    );
    let bad = format!("{}/c/..%2F..%2Fetc", w.c.api);
    assert_eq!(http.get(&bad).send().await.unwrap().status().as_u16(), 404);

    // Every use is in the owner's audit log, none in the other owner's.
    let log = audit(&w.owner).await;
    for action in ["clip.create", "clip.view", "clip.download", "clip.revoke"] {
        assert!(log.contains(action), "{action} missing: {log}");
    }
    assert!(
        log.contains("\"revoked\"") && log.contains("\"expired\""),
        "{log}"
    );
    assert!(
        !log.contains(&clip.id),
        "the audit log holds no whole share id"
    );
    assert!(!audit(&b).await.contains("clip."));
    for sd in sds {
        sd.trigger();
    }
}

/// Issue 17 item 9 in Chromium: a browser with no account opens the link and the page
/// plays the clip (its time advances, it has a picture) and downloads it; the owner revokes
/// it on the web client's recordings page ("Shared clips"), and the same link then shows the
/// revoked state and no player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_shared_clip_plays_in_chromium_without_login() {
    let Some(web) = peercam_test::web::web_tests_or_skip(
        "h626_8_7_1_shared_clip_plays_in_chromium_without_login",
    ) else {
        return;
    };
    let w = world("+15550871303").await;
    let (sds, _cs, _pu, list) = recording(&w, true, 8_000).await;
    let span = list.spans[0];
    let dir = tempfile::tempdir().unwrap();
    let spec = ShareSpec {
        camera: w.cam.device_id.as_str(),
        recorder: Some("cloud"),
        from_ms: span.start_ms,
        to_ms: span.start_ms + 6000,
        expires_in_s: None,
        label: Some("front door"),
    };
    let clip = w
        .owner
        .share_range(&spec, dir.path(), |_| {})
        .await
        .unwrap();
    // Plays without an account; the owner revokes it on the recordings page; refused then.
    let r = peercam_test::web::scenario(
        &web,
        "share-clip.mjs",
        &[
            ("PEERCAM_CLIP_LINK", clip.link.clone()),
            ("PEERCAM_CLIP_EXPECT", "active".to_owned()),
            ("PEERCAM_WEB_URL", w.c.api.clone()),
            ("PEERCAM_WEB_USER", "+15550871303".to_owned()),
            ("PEERCAM_WEB_PASSWORD", peercam_test::PASSWORD.to_owned()),
            ("PEERCAM_DEVICE", w.cam.device_id.to_string()),
        ],
        None,
    )
    .await;
    assert!(r["video"]["width"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["after"]["status"], 410, "{r}");
    let mine = w.owner.clips().await.unwrap();
    assert_eq!(mine[0].state, "revoked");
    // A fresh browser sees the revoked page too.
    let r = peercam_test::web::scenario(
        &web,
        "share-clip.mjs",
        &[
            ("PEERCAM_CLIP_LINK", clip.link.clone()),
            ("PEERCAM_CLIP_EXPECT", "revoked".to_owned()),
        ],
        None,
    )
    .await;
    assert_eq!(r["status"], 410, "{r}");
    let log = audit(&w.owner).await;
    assert!(
        log.contains("clip.view") && log.contains("clip.download"),
        "{log}"
    );
    for sd in sds {
        sd.trigger();
    }
}

/// Issue 17 item 9 from the web client: the owner shares 5 s of the camera's cloud recording
/// on its playback page ("Share clip": the range is exported over WebRTC, the link made, the
/// MP4 uploaded to the CS cross-origin with a progress bar), the link shows with a Copy button
/// and in "Shared clips"; a browser with no account then plays it. An upload the network
/// drops first leaves its link revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_web_client_shares_a_clip() {
    let Some(web) = peercam_test::web::web_tests_or_skip("h626_8_7_1_web_client_shares_a_clip")
    else {
        return;
    };
    let w = world("+15550871304").await;
    let (sds, _cs, _pu, list) = recording(&w, true, 8_000).await;
    let span = list.spans[0];
    let r = peercam_test::web::scenario(
        &web,
        "web-share-clip.mjs",
        &[
            ("PEERCAM_WEB_URL", w.c.api.clone()),
            ("PEERCAM_WEB_USER", "+15550871304".to_owned()),
            ("PEERCAM_WEB_PASSWORD", peercam_test::PASSWORD.to_owned()),
            ("PEERCAM_DEVICE", w.cam.device_id.to_string()),
            ("PEERCAM_SPAN_START_MS", span.start_ms.to_string()),
        ],
        None,
    )
    .await;
    assert!(r["video"]["width"].as_u64().unwrap() > 0, "{r}");
    assert!(r["video"]["currentTime"].as_f64().unwrap() > 1.0, "{r}");
    // The CMU holds the link the web client made, active, of the range it chose; the one
    // whose upload failed is revoked.
    let mine = w.owner.clips().await.unwrap();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine.iter().filter(|c| c.state == "revoked").count(), 1);
    let made = mine.iter().find(|c| c.state == "active").unwrap();
    assert_eq!(made.to_ms - made.from_ms, 5000, "{mine:?}");
    assert!(made.expires_at > now_ms() / 1000 + 6 * 86_400, "{mine:?}");
    for sd in sds {
        sd.trigger();
    }
}
