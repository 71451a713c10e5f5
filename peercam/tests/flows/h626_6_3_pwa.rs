//! H.626.4 6.3.1 (M_CU) and 8.11.2 in the browser: the web client installs as a PWA (manifest,
//! service worker over a trusted origin, offline shell) and offers a newer release.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use peercam_test::Cluster;
use peercam_test::web::{scenario, web_tests_or_skip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_6_3_m_cu_is_an_installable_pwa_with_update_check() {
    let Some(dir) = web_tests_or_skip("h626_6_3_m_cu_is_an_installable_pwa_with_update_check")
    else {
        return;
    };
    if std::process::Command::new("certutil")
        .arg("-H")
        .output()
        .is_err()
    {
        peercam_test::skip(
            "h626_6_3_m_cu_is_an_installable_pwa_with_update_check",
            "certutil is missing (apt-get install libnss3-tools)",
        );
        return;
    }
    let c = Cluster::start(1).await.unwrap();
    let r = scenario(
        &dir,
        "pwa.mjs",
        &[
            ("PEERCAM_WEB_URL", c.api.clone()),
            ("PEERCAM_CA", c.pki.ca_cert.display().to_string()),
        ],
        None,
    )
    .await;
    assert_eq!(r["controlled"], true, "{r}");
    assert_eq!(r["manifest"]["display"], "standalone");
    assert!(!r["offline_heading"].as_str().unwrap().is_empty(), "{r}");
    c.stop().await;
}
