//! One conformance suite over every backend: `LocalDir`, `object_store`'s `InMemory`, and
//! `S3Store` against two independent S3 servers the test starts itself (s3s-fs in-process,
//! moto from `.ci/venv`; design "Tests mapped to the acceptance list").
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../support/test/src/s3.rs"]
#[allow(dead_code, unreachable_pub)]
mod s3;

use std::path::Path;
use std::sync::Arc;

use peercam_cs::{Backend, BackendError, LocalDir, S3Config, S3Store};

const BUCKET: &str = "peercam-test";

/// What every backend must do: put, whole and ranged get, head, delete, list by string
/// prefix, replacing puts, idempotent deletes, not-found answers, refused keys, multipart.
async fn conformance(b: &dyn Backend, multipart_len: usize) {
    let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    b.put("sA/2026/12/07/a.seg", body.clone()).await.unwrap();
    b.put("sA/2026/12/08/b.seg", vec![1, 2, 3]).await.unwrap();
    b.put("sAB/2026/12/07/c.seg", vec![9]).await.unwrap();
    assert_eq!(
        b.get_range("sA/2026/12/07/a.seg", None).await.unwrap(),
        body
    );
    assert_eq!(
        b.get_range("sA/2026/12/07/a.seg", Some(100..110))
            .await
            .unwrap(),
        body[100..110].to_vec()
    );
    assert_eq!(
        b.get_range("sA/2026/12/07/a.seg", Some(990..1000))
            .await
            .unwrap(),
        body[990..].to_vec()
    );
    assert!(matches!(
        b.get_range("sA/2026/12/07/a.seg", Some(990..1001)).await,
        Err(BackendError::Range { len: 1000, .. })
    ));
    assert_eq!(b.head("sA/2026/12/07/a.seg").await.unwrap(), Some(1000));
    assert_eq!(b.head("sA/2026/12/07/zz.seg").await.unwrap(), None);
    assert!(matches!(
        b.get_range("sA/2026/12/07/zz.seg", None).await,
        Err(BackendError::NotFound(_))
    ));
    assert!(matches!(
        b.get_range("sA/2026/12/07/zz.seg", Some(0..1)).await,
        Err(BackendError::NotFound(_))
    ));
    // A string prefix: `sA/` is not `sAB/`.
    assert_eq!(
        b.list("sA/").await.unwrap(),
        vec![
            ("sA/2026/12/07/a.seg".to_owned(), 1000),
            ("sA/2026/12/08/b.seg".to_owned(), 3)
        ]
    );
    assert_eq!(b.list("sA").await.unwrap().len(), 3);
    assert_eq!(b.list("sA/2026/12/0").await.unwrap().len(), 2);
    assert!(b.list("sC/").await.unwrap().is_empty());
    // Putting the same bytes again is harmless; other bytes replace the object whole.
    b.put("sA/2026/12/08/b.seg", vec![1, 2, 3]).await.unwrap();
    assert_eq!(
        b.get_range("sA/2026/12/08/b.seg", None).await.unwrap(),
        vec![1, 2, 3]
    );
    b.put("sA/2026/12/08/b.seg", vec![4; 7]).await.unwrap();
    assert_eq!(b.head("sA/2026/12/08/b.seg").await.unwrap(), Some(7));
    // Deleting twice succeeds.
    b.delete("sA/2026/12/07/a.seg").await.unwrap();
    b.delete("sA/2026/12/07/a.seg").await.unwrap();
    assert_eq!(b.head("sA/2026/12/07/a.seg").await.unwrap(), None);
    assert_eq!(b.list("").await.unwrap().len(), 2);
    for k in ["../x", "a//b", "/abs", "a/./b", "a/..", "", "a/.hidden"] {
        assert!(
            matches!(b.put(k, vec![1]).await, Err(BackendError::BadKey(_))),
            "{k}"
        );
    }
    // An object above the multipart threshold arrives whole.
    let big: Vec<u8> = (0..multipart_len).map(|i| (i * 7 % 251) as u8).collect();
    b.put("sB/2026/12/07/big.seg", big.clone()).await.unwrap();
    assert_eq!(
        b.head("sB/2026/12/07/big.seg").await.unwrap(),
        Some(big.len() as u64)
    );
    assert_eq!(
        b.get_range("sB/2026/12/07/big.seg", None).await.unwrap(),
        big
    );
    let mid = (multipart_len / 2) as u64;
    assert_eq!(
        b.get_range("sB/2026/12/07/big.seg", Some(mid..mid + 10))
            .await
            .unwrap(),
        big[mid as usize..mid as usize + 10].to_vec()
    );
}

/// 11 MiB: three parts of 5, 5 and 1 MiB above a 6 MiB threshold.
const BIG: usize = 11 << 20;

fn s3_config(endpoint: String, dir: &Path) -> S3Config {
    let mut c = S3Config::new(endpoint, BUCKET);
    c.credentials_file = Some(s3::credentials_file(dir).unwrap());
    c.multipart_threshold_bytes = 6 << 20;
    c
}

#[tokio::test]
async fn h626_8_7_1_backend_local_dir() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalDir::open(dir.path().join("objects")).await.unwrap();
    conformance(&b, BIG).await;
}

#[tokio::test]
async fn h626_8_7_1_backend_object_store_in_memory() {
    let b = S3Store::with_store(
        Arc::new(object_store::memory::InMemory::new()),
        "mem",
        6 << 20,
        5 << 20,
    );
    conformance(&b, BIG).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_backend_s3s_fs_path_style() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::S3sFs::start(&dir.path().join("s3"), BUCKET)
        .await
        .unwrap();
    let b = S3Store::open(&s3_config(server.endpoint(), dir.path())).unwrap();
    conformance(&b, BIG).await;
    // The server holds the objects as files: the bucket is a directory.
    assert!(
        dir.path()
            .join("s3")
            .join(BUCKET)
            .join("sB/2026/12/07/big.seg")
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_backend_s3s_fs_virtual_host() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::S3sFs::start(&dir.path().join("s3"), BUCKET)
        .await
        .unwrap();
    let mut c = s3_config(server.domain_endpoint(), dir.path());
    c.path_style = false;
    // Nothing resolves `peercam-test.s3.test`: the server is also the HTTP proxy, and
    // finds the bucket in the Host header.
    c.proxy_url = Some(server.endpoint());
    let b = S3Store::open(&c).unwrap();
    conformance(&b, 1 << 10).await;
    assert!(
        dir.path()
            .join("s3")
            .join(BUCKET)
            .join("sA/2026/12/08/b.seg")
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_backend_moto() {
    let Some(moto) = s3::moto_server_path(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        peercam_net::skip::skip(
            "h626_8_7_1_backend_moto",
            "no .ci/venv/bin/moto_server (.ci/run installs it) and no PEERCAM_MOTO_SERVER",
        );
        return;
    };
    let server = s3::Moto::start(&moto, BUCKET).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = S3Store::open(&s3_config(server.endpoint(), dir.path())).unwrap();
    conformance(&b, BIG).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h626_8_7_1_s3_down_is_an_error_not_an_ack() {
    // Nothing listens: the put fails (the CS answers 5xx and the camera keeps its copy).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut c = s3_config(format!("http://127.0.0.1:{port}"), dir.path());
    c.max_retries = 0;
    let b = S3Store::open(&c).unwrap();
    assert!(matches!(
        b.put("sA/2026/12/07/a.seg", vec![1; 10]).await,
        Err(BackendError::Io { .. })
    ));
}

#[test]
fn virtual_host_endpoint_puts_the_bucket_first() {
    assert_eq!(
        peercam_cs::s3::virtual_host_endpoint("https://s3.eu-west-1.amazonaws.com/", "b1").unwrap(),
        "https://b1.s3.eu-west-1.amazonaws.com"
    );
    assert!(peercam_cs::s3::virtual_host_endpoint("s3.example", "b1").is_err());
}
