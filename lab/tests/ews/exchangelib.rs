//! exchangelib, a real EWS client from PyPI, against the lab with Basic auth and a Bearer
//! token. Every message it exchanges must validate against the schema.

use std::path::Path;
use std::time::Duration;

use siu_lab::access::Resource;
use uuid::Uuid;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchangelib_runs_against_the_lab() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    if !python.is_file() {
        assert!(
            std::env::var("SIU_REQUIRE_PY").as_deref() != Ok("1"),
            "SIU_REQUIRE_PY=1 but {} is missing (run bash scripts/setup.sh)",
            python.display()
        );
        eprintln!(
            "skipping the exchangelib check: {} is missing (run bash scripts/setup.sh)",
            python.display()
        );
        return;
    }

    let capture = tempfile::tempdir().expect("capture directory");
    let lab = start(Some(capture.path())).await;
    grant_impersonation(&lab, "svc-siu", None);
    let ca = tempfile::NamedTempFile::new().expect("CA file");
    std::fs::write(ca.path(), lab.ca_pem()).expect("CA written");

    // The Bearer mode uses the pre-registered application, allowed to use EWS.
    let app_id: Uuid = lab
        .secrets()
        .get("manual-app.client-id")
        .expect("client ID")
        .parse()
        .expect("GUID");
    {
        let mut world = lab.state().write();
        world.exchange.online.ews_enabled = Some(true);
        world.exchange.online.ews_allowed_app_ids = vec![app_id.to_string()];
    }
    let token = lab
        .state()
        .tokens
        .issue(
            Resource::ExchangeOnline,
            app_id,
            Uuid::new_v4(),
            vec!["full_access_as_app".into()],
            Duration::from_secs(3600),
        )
        .expect("token");

    let output = tokio::process::Command::new(&python)
        .arg(root.join("tests/exchangelib/conformance.py"))
        .env("SIU_LAB_CA", ca.path())
        .env("SIU_LAB_EWS_URL", lab.endpoints().ews.as_str())
        .env("SIU_LAB_USER", "LAB\\svc-siu")
        .env(
            "SIU_LAB_PASSWORD",
            lab.secrets().get("svc-siu.password").expect("password"),
        )
        .env("SIU_LAB_MAILBOX", "alice@lab.example")
        .env(
            "SIU_LAB_ONLINE_EWS_URL",
            lab.endpoints().exchange_online_ews.as_str(),
        )
        .env("SIU_LAB_ACCESS_TOKEN", token)
        .env(
            "SIU_LAB_TOKEN_URL",
            format!(
                "{}{}/oauth2/v2.0/token",
                lab.endpoints().authority_host,
                lab.state().read().tenant.id
            ),
        )
        .env("SIU_LAB_CLOUD_MAILBOX", "carol@lab.example")
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "exchangelib failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("ok: basic: DeleteItem removes it"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok: bearer: DeleteItem removes it"),
        "{stdout}"
    );

    eprintln!("requests served: {:?}", lab.journal().counters());
    let checked = validate_captures(capture.path());
    eprintln!("{checked} messages exchanged with exchangelib validate");
}
