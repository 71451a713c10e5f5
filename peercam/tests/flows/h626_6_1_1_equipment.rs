//! Equipment management (H.626.4 6.1.1: "after the operator approves the service, a
//! specified camera is assigned to the account"; 6.2 vendor management) end to end: the
//! operator assigns a provisioned camera to an approved account, moves it to another (the
//! old owner's shares and sessions end), decommissions it (its registration is refused
//! from then on), imports devices from CSV all or nothing, keeps the vendor and model
//! catalogue, and searches the device list; the Equipment tab of the operator's page
//! assigns a camera to a new account (Chromium).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use peercam_cu::CuError;
use peercam_pu::PuStatus;
use peercam_signal::cm_equipment::{
    ImportRow, ModelRequest, RecordingsPolicy, VendorRequest, write_import,
};
use peercam_signal::ps::{DeviceKind, RefusalCode};
use peercam_test::web::{scenario, web_tests_or_skip};
use peercam_test::{Cluster, new_identity, provision_record};
use reqwest::Method;
use serde_json::{Value, json};

fn code(e: &CuError) -> (u16, &str) {
    match e {
        CuError::Api { status, code, .. } => (*status, code.as_str()),
        other => panic!("not an API error: {other}"),
    }
}

async fn account_id(c: &Cluster, phone: &str) -> i64 {
    c.admin
        .admin_users(None)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.login == phone)
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_1_1_assign_move_decommission() {
    assign_move_decommission(Cluster::start(1).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_1_1_assign_move_decommission_postgres() {
    if let Some(c) = Cluster::start_postgres(1, "h626_6_1_1_assign_move_decommission_postgres")
        .await
        .unwrap()
    {
        assign_move_decommission(c).await;
    }
}

async fn assign_move_decommission(c: Cluster) {
    let cam = c.provision(1).await.unwrap().remove(0);
    let id = cam.device_id.to_string();
    let (mut pu, _sd) = c.start_pu_online(&cam, 0).await.unwrap();
    let a = c.owner("+15550710001").await.unwrap();
    let b = c.owner("+15550710002").await.unwrap();
    let (a_id, b_id) = (
        account_id(&c, "+15550710001").await,
        account_id(&c, "+15550710002").await,
    );

    // 6.1.1: assigned by phone number, the owner sees it at once.
    let v = c
        .admin
        .assign_device(&id, "+15550710001", Some("Porch"), false)
        .await
        .unwrap();
    assert_eq!(
        (v.owner, v.state.as_str(), v.name.as_deref()),
        (Some(a_id), "assigned", Some("Porch"))
    );
    let mine = a.devices().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id.as_str(), id);
    let e = c
        .admin
        .assign_device(&id, &b_id.to_string(), None, false)
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, "assigned"));

    // A pending account is not assigned anything.
    let anon = c.client();
    anon.signup("+15550710003", "pending pass word")
        .await
        .unwrap();
    anon.confirm("+15550710003", &c.sms_code("+15550710003").unwrap())
        .await
        .unwrap();
    let e = c
        .admin
        .assign_device(&id, "+15550710003", None, true)
        .await
        .unwrap_err();
    assert_eq!(code(&e), (400, "bad_account"));

    // Move: the old owner's sub-account share goes, the old owner's list empties.
    let a1 = c.sub(&a, "equip-a1").await.unwrap();
    a.share(&id, "equip-a1", peercam_base::ScopeSet::all())
        .await
        .unwrap();
    assert_eq!(a1.devices().await.unwrap().len(), 1);
    let v = c
        .admin
        .assign_device(&id, &b_id.to_string(), None, true)
        .await
        .unwrap();
    assert_eq!((v.owner, v.name), (Some(b_id), None));
    assert!(a.devices().await.unwrap().is_empty());
    assert!(a1.devices().await.unwrap().is_empty());
    assert_eq!(b.devices().await.unwrap().len(), 1);
    let e = c
        .admin
        .assign_device(&id, &b_id.to_string(), None, true)
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, "same_owner"));

    // Search by owner and state.
    let page = c
        .admin
        .search_devices(&format!("owner={b_id}&state=assigned"))
        .await
        .unwrap();
    assert_eq!((page.total, page.devices[0].id.as_str()), (1, id.as_str()));
    let page = c.admin.search_devices("online=true").await.unwrap();
    assert_eq!(page.total, 1);

    // Bad input.
    for (q, want) in [
        ("state=lost", "bad_state"),
        ("online=maybe", "bad_online"),
        ("limit=0", "bad_limit"),
        ("limit=1001", "bad_limit"),
        ("cursor=nope", "bad_cursor"),
    ] {
        let e = c.admin.search_devices(q).await.unwrap_err();
        assert_eq!(code(&e), (400, want), "{q}");
    }
    let e = c
        .admin
        .call::<Value, Value>(
            Method::POST,
            &format!("/api/v1/admin/devices/{id}/decommission"),
            Some(&json!({"recordings": "sometimes"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(code(&e).0, 400 | 422), "{e}");
    let e = c
        .admin
        .call::<Value, Value>(
            Method::POST,
            &format!("/api/v1/admin/devices/{id}/decommission"),
            Some(&json!({})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(code(&e).0, 400 | 422),
        "the policy has no default: {e}"
    );

    // Decommission: the session ends, the key no longer admits the camera.
    let r = c
        .admin
        .decommission_device(&id, RecordingsPolicy::Keep)
        .await
        .unwrap();
    assert!(r.disconnected);
    let status = tokio::time::timeout(
        Duration::from_secs(15),
        pu.status
            .wait_for(|s| matches!(s, PuStatus::Refused { .. })),
    )
    .await
    .expect("refused in time")
    .unwrap()
    .clone();
    match status {
        PuStatus::Refused { code, .. } => assert_eq!(code, RefusalCode::Disabled),
        _ => unreachable!(),
    }
    assert!(b.devices().await.unwrap().is_empty());
    let e = c
        .admin
        .assign_device(&id, &a_id.to_string(), None, false)
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, "decommissioned"));
    let e = c
        .admin
        .decommission_device(&id, RecordingsPolicy::Delete)
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, "decommissioned"));
    let page = c
        .admin
        .search_devices("state=decommissioned")
        .await
        .unwrap();
    assert_eq!(page.total, 1);

    // Every step is in the audit log.
    let audit: Vec<Value> = c
        .admin
        .call::<(), Vec<Value>>(Method::GET, "/api/v1/admin/audit", None)
        .await
        .unwrap();
    for action in [
        "equipment.assign",
        "equipment.move",
        "equipment.decommission",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == action && e["device_id"] == id.as_str()),
            "{action} audited: {audit:?}"
        );
    }
    c.stop().await;
}

fn row(i: &peercam_signal::identity::DeviceIdentity, account: Option<&str>) -> ImportRow {
    let p = provision_record(i);
    ImportRow {
        line: 0,
        device_id: p.id,
        kind: DeviceKind::Pu,
        public_key: p.public_key,
        bind_code_sha256: p.bind_code_sha256,
        vendor: "Acme".into(),
        model: "Dome 2".into(),
        name: None,
        account: account.map(str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_2_csv_import_is_all_or_nothing() {
    let c = Cluster::start(1).await.unwrap();
    let owner = c.owner("+15550710011").await.unwrap();
    let ids: Vec<_> = (0..3).map(|_| new_identity(DeviceKind::Pu)).collect();
    let mut rows: Vec<_> = ids.iter().map(|i| row(i, None)).collect();
    rows[2].account = Some("+15550710011".into());

    // Nothing in the catalogue yet: every row names its unknown model.
    let e = c
        .admin
        .import_devices(write_import(&rows))
        .await
        .unwrap_err();
    match &e {
        CuError::Api {
            status,
            code,
            fields,
            ..
        } => {
            assert_eq!((*status, code.as_str()), (422, "bad_rows"));
            let named: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(named, ["2.model", "3.model", "4.model"]);
        }
        other => panic!("{other}"),
    }
    c.admin
        .put_vendor(
            None,
            &VendorRequest {
                name: "Acme".into(),
                contact: "support@acme.example".into(),
            },
        )
        .await
        .unwrap();
    let m = c
        .admin
        .put_model(
            None,
            &ModelRequest {
                vendor: "Acme".into(),
                name: "Dome 2".into(),
                kind: DeviceKind::Pu,
                ptz: true,
                audio: true,
                sd: false,
            },
        )
        .await
        .unwrap();

    // One bad row of form and one unknown account: nothing is imported.
    let mut bad = rows.clone();
    bad[1].public_key = "not a key".into();
    bad[2].account = Some("+15550719999".into());
    let e = c
        .admin
        .import_devices(write_import(&bad))
        .await
        .unwrap_err();
    let CuError::Api { fields, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(fields.len(), 1, "form errors first: {fields:?}");
    assert_eq!(fields[0].field, "3.public_key");
    bad[1] = rows[1].clone();
    let e = c
        .admin
        .import_devices(write_import(&bad))
        .await
        .unwrap_err();
    let CuError::Api { fields, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(fields[0].field, "4.account");
    assert_eq!(
        c.admin.search_devices("vendor=Acme").await.unwrap().total,
        0,
        "nothing imported"
    );

    // The good file: three devices, one assigned; repeated, nothing changes.
    let r = c.admin.import_devices(write_import(&rows)).await.unwrap();
    assert_eq!((r.rows, r.created, r.unchanged, r.assigned), (3, 3, 0, 1));
    let r = c.admin.import_devices(write_import(&rows)).await.unwrap();
    assert_eq!((r.created, r.unchanged), (0, 3));
    assert_eq!(
        owner.devices().await.unwrap()[0].id.as_str(),
        rows[2].device_id
    );
    // The imported keys are the ones registration checks.
    c.start_pu_online(&ids[0], 0).await.unwrap();

    // Pages: 2 then 1.
    let p1 = c.admin.search_devices("vendor=Acme&limit=2").await.unwrap();
    assert_eq!((p1.devices.len(), p1.total), (2, 3));
    let next = p1.next_cursor.unwrap();
    let p2 = c
        .admin
        .search_devices(&format!("vendor=Acme&limit=2&cursor={next}"))
        .await
        .unwrap();
    assert_eq!((p2.devices.len(), p2.next_cursor), (1, None));
    // The old list is still the whole list.
    assert_eq!(c.admin.admin_devices().await.unwrap().len(), 3);

    // A key conflict is a bad row too.
    let mut other = rows[0].clone();
    other.public_key = provision_record(&new_identity(DeviceKind::Pu)).public_key;
    let e = c
        .admin
        .import_devices(write_import(&[other]))
        .await
        .unwrap_err();
    let CuError::Api { fields, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(fields[0].field, "2.public_key");

    // The catalogue: the model in use is not removed; its devices are counted.
    let models = c.admin.models().await.unwrap();
    assert_eq!((models[0].devices, models[0].ptz), (3, true));
    let e = c.admin.remove_catalogue("models", m.id).await.unwrap_err();
    assert_eq!(code(&e), (409, "in_use"));
    let e = c
        .admin
        .put_vendor(
            None,
            &VendorRequest {
                name: "Acme".into(),
                contact: String::new(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), (409, "name_taken"));
    c.stop().await;
}

/// The acceptance flow in Chromium: a new user signs up and waits; the operator approves
/// the account, opens the Equipment tab, finds a provisioned camera and assigns it to the
/// account; the user logs in and sees the camera in their device list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_1_1_web_assign_a_camera_to_a_new_account() {
    let Some(dir) = web_tests_or_skip("h626_6_1_1_web_assign_a_camera_to_a_new_account") else {
        return;
    };
    let c = Cluster::start(1).await.unwrap();
    let cam = c.provision(1).await.unwrap().remove(0);
    let id = cam.device_id.to_string();
    let password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let outbox = c.path().join("sms-outbox");
    let mut env = vec![
        ("PEERCAM_WEB_URL", c.api.clone()),
        ("PEERCAM_WEB_USER", "admin".to_owned()),
        ("PEERCAM_WEB_PASSWORD", password.trim().to_owned()),
        ("PEERCAM_SMS_OUTBOX", outbox.to_string_lossy().into_owned()),
        ("PEERCAM_PHONE", "+15550710021".to_owned()),
        ("PEERCAM_CAMERA", id.clone()),
    ];
    if let Ok(shots) = std::env::var("PEERCAM_SHOTS") {
        env.push(("PEERCAM_SHOTS", shots));
    }
    let out = scenario(&dir, "equipment.mjs", &env, None).await;
    assert_eq!(out["assigned"], id.as_str(), "{out}");
    let u = account_id(&c, "+15550710021").await;
    let d = c.admin.search_devices(&format!("q={id}")).await.unwrap();
    assert_eq!(d.devices[0].owner, Some(u));
    c.stop().await;
}

/// `peercam admin ...` as the operator: (success, stdout, stderr).
async fn admin_cli(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    let password = std::fs::read_to_string(c.path().join("admin.password")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_peercam"))
        .args(["admin", "--api", &c.api, "--ca"])
        .arg(&c.pki.ca_cert)
        .args(["--user", "admin", "--password", password.trim()])
        .args(args)
        .env("PEERCAM_HOME", home.path())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The CLI: catalogue, an import that makes the keys (identities and credentials.csv for
/// the factory), a refused file, search and decommission, all with `--json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h626_6_2_admin_cli_equipment() {
    let c = Cluster::start(1).await.unwrap();
    let (ok, out, err) = admin_cli(
        &c,
        &[
            "--json",
            "vendors",
            "add",
            "Acme",
            "--contact",
            "x@acme.example",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["name"], "Acme");
    let (ok, out, err) = admin_cli(
        &c,
        &[
            "--json", "models", "add", "--vendor", "Acme", "--name", "Cam", "--ptz", "--sd",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let model: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (model["ptz"].as_bool(), model["audio"].as_bool()),
        (Some(true), Some(false))
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "vendor,model,name\nAcme,Nope,Door\n").unwrap();
    let keys = dir.path().join("keys");
    let (ok, out, _) = admin_cli(
        &c,
        &[
            "devices",
            "import",
            bad.to_str().unwrap(),
            "--generate",
            keys.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok);
    assert!(out.contains("line 2, model"), "{out}");
    assert!(
        !keys.join("credentials.csv").exists(),
        "nothing written for a refused file"
    );

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "vendor,model,name\nAcme,Cam,\"Door, front\"\nAcme,Cam,\n",
    )
    .unwrap();
    let (ok, out, err) = admin_cli(
        &c,
        &[
            "--json",
            "devices",
            "import",
            good.to_str().unwrap(),
            "--generate",
            keys.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["created"].as_u64(), r["rows"].as_u64()),
        (Some(2), Some(2))
    );
    let creds = std::fs::read_to_string(keys.join("credentials.csv")).unwrap();
    assert_eq!(creds.lines().count(), 3, "{creds}");
    let first = creds.lines().nth(1).unwrap();
    let id = first.split(',').next().unwrap();
    let identity = std::fs::read_to_string(keys.join(format!("{id}.identity.toml"))).unwrap();
    // The identity made by the import registers.
    let ident = peercam_signal::identity::DeviceIdentity::parse(&identity).unwrap();
    c.start_pu_online(&ident, 0).await.unwrap();

    let (ok, out, err) = admin_cli(
        &c,
        &[
            "--json", "devices", "search", "--vendor", "Acme", "--online", "true",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (page["total"].as_u64(), page["devices"][0]["id"].as_str()),
        (Some(1), Some(id))
    );
    let (ok, out, err) = admin_cli(&c, &["devices", "search", "door,"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("1 of 1 matching"), "{out}");
    let (ok, out, err) = admin_cli(
        &c,
        &[
            "--json",
            "devices",
            "decommission",
            id,
            "--recordings",
            "delete",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["disconnected"],
        true
    );
    let (ok, _, err) = admin_cli(&c, &["devices", "decommission", id]).await;
    assert!(
        !ok && err.contains("--recordings"),
        "the policy is required: {err}"
    );
    c.stop().await;
}
