//! The `cs.toml` example in docs/config.md parses into a `CsConfig` with the documented
//! defaults.

#![allow(clippy::unwrap_used)]

use peercam_cs::CsConfig;

fn documented_example() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md"))
        .unwrap();
    let section = &doc[doc.find("## cs.toml").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_owned()
}

#[test]
fn documented_cs_toml_parses() {
    let c: CsConfig = toml::from_str(&documented_example()).unwrap();
    assert_eq!(c.device_id, "pc-cs-1");
    assert_eq!(c.listen, "127.0.0.1:8570".parse().unwrap());
    assert!(c.tls.is_none(), "commented out in the example");
    assert_eq!(c.max_object_bytes, 8 << 20);
    assert_eq!(c.intent_wait_ms, 30_000);
    assert_eq!(c.backfill_after_ms, 30_000);
    assert_eq!(
        c.index_path(),
        std::path::PathBuf::from("/var/lib/peercam/cs/index.db")
    );
    assert_eq!(
        (c.grant_keys.len(), c.accounts.len(), c.cameras.len()),
        (1, 1, 1)
    );
    assert_eq!(c.cameras[0].write_kid, "d1");
    // The placeholders are not keys: refused with a clear error, not a panic.
    let e = c.static_keys().unwrap_err().to_string();
    assert!(e.contains("data key"), "{e}");
}

#[test]
fn minimal_cs_toml_takes_defaults() {
    let c: CsConfig = toml::from_str("device_id = \"cs\"\nstore_dir = \"objects\"\n").unwrap();
    assert_eq!(c.listen, "127.0.0.1:8570".parse().unwrap());
    assert_eq!(c.index_path(), std::path::PathBuf::from("index.db"));
    assert!(c.grant_keys.is_empty() && c.cameras.is_empty());
    let c: CsConfig = toml::from_str(
        "device_id = \"cs\"\nstore_dir = \"o\"\ntls = { cert = \"cs.pem\", key = \"cs.key\" }\n",
    )
    .unwrap();
    assert_eq!(c.tls.unwrap().key, std::path::PathBuf::from("cs.key"));
    assert!(
        toml::from_str::<CsConfig>("device_id = \"cs\"\nstore_dir = \"o\"\nbogus = 1\n").is_err()
    );
}

#[test]
fn s3_store_parses_with_defaults_and_refuses_unknown_keys() {
    use peercam_cs::StoreConfig;
    let c: CsConfig = toml::from_str(
        "device_id = \"cs\"\nindex = \"/var/lib/cs/index.db\"\nstore = { kind = \"s3\", endpoint = \"https://s3.example\", bucket = \"cams\", credentials_file = \"/etc/peercam/s3.toml\" }\n",
    )
    .unwrap();
    let Some(StoreConfig::S3(s)) = &c.store else {
        panic!("{:?}", c.store)
    };
    assert_eq!(s.bucket, "cams");
    assert_eq!(s.region, "us-east-1");
    assert!(s.path_style);
    assert_eq!(s.multipart_threshold_bytes, 8 << 20);
    assert_eq!(s.multipart_part_bytes, 5 << 20);
    assert_eq!(s.max_retries, 3);
    assert_eq!(
        c.index_path(),
        std::path::PathBuf::from("/var/lib/cs/index.db")
    );
    let c: CsConfig =
        toml::from_str("device_id = \"cs\"\nstore = { kind = \"dir\", path = \"/srv/o\" }\n")
            .unwrap();
    assert_eq!(c.index_path(), std::path::PathBuf::from("/srv/index.db"));
    assert!(
        toml::from_str::<CsConfig>(
            "device_id = \"cs\"\nstore = { kind = \"s3\", bucket = \"b\", secret = \"x\" }\n"
        )
        .is_err()
    );
    assert!(
        toml::from_str::<CsConfig>("device_id = \"cs\"\nstore = { kind = \"ftp\" }\n").is_err()
    );
}
