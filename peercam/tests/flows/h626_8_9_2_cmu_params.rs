//! H.626.4 8.9.2 parameters on the CMU: a user's own settings and the operator's platform
//! settings, queried, changed with a permission step, applied all or nothing, and in effect.
#![allow(clippy::unwrap_used, missing_docs)]

use peercam_signal::cm::PlayRequest;
use peercam_test::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_9_2_user_and_platform_settings() {
    user_and_platform_settings(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_9_2_user_and_platform_settings_postgres() {
    if let Some(c) = Cluster::start_postgres(1, "h626_8_9_2_user_and_platform_settings_postgres")
        .await
        .unwrap()
    {
        user_and_platform_settings(c).await;
    }
}

async fn user_and_platform_settings(c: Cluster) {
    let owner = c.owner("+15550892001").await.unwrap();

    // A user's own settings: defaults, a change with permission, refusals.
    let s = owner.user_params().await.unwrap();
    assert_eq!((s.revision, s.params.language.as_str()), (0, "en"));
    let s = owner
        .set_user_params(|p| {
            p.language = "zh-CN".into();
            p.utc_offset_min = 480;
        })
        .await
        .unwrap();
    assert_eq!((s.revision, s.params.utc_offset_min), (1, 480));
    let e = owner
        .set_user_params(|p| {
            p.language = "not a tag!".into();
            p.default_max_width = 5;
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    let fields: Vec<&str> = e.fields().iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["language", "default_max_width"]);
    assert_eq!(
        owner.user_params().await.unwrap().revision,
        1,
        "nothing applied"
    );
    let e = owner
        .call::<_, serde_json::Value>(
            reqwest::Method::PUT,
            "/api/v1/me/params",
            Some(&serde_json::json!({"permit": "pcp_x", "base_revision": 1,
                "params": owner.user_params().await.unwrap().params})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("no_permit"));
    // Each account has its own.
    let other = c.owner("+15550892002").await.unwrap();
    assert_eq!(other.user_params().await.unwrap().revision, 0);
    // Only the operator sees or changes the platform's.
    assert_eq!(
        owner.platform_params().await.unwrap_err().status(),
        Some(403)
    );

    // The operator shortens play URLs and closes sign-up; both take effect at once.
    let s = c
        .admin
        .set_platform_params(|p| {
            p.play_token_ttl_s = 10;
            p.signup_open = false;
        })
        .await
        .unwrap();
    assert_eq!(s.revision, 1);
    let e = c
        .admin
        .set_platform_params(|p| p.session_ttl_s = 1)
        .await
        .unwrap_err();
    assert_eq!(e.fields()[0].field, "session_ttl_s");
    let e = c
        .client()
        .signup("+15550892003", "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("signup_closed"));
    let id = c.provision(1).await.unwrap().remove(0);
    let _pu = c.start_pu_online(&id, 0).await.unwrap();
    c.bind(&owner, &id).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let p = owner
        .play(id.device_id.as_str(), &PlayRequest::default())
        .await
        .unwrap();
    assert!(p.expires_at <= now + 11, "play URL lives 10 s now");
    let audit = c.admin.admin_audit().await.unwrap();
    assert!(audit.iter().any(|a| a.action == "platform.params.set"));
    c.stop().await;
}
