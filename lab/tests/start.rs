//! Starting a lab with a directory and talking to its control API over TLS.

use siu_lab::{Fixture, Lab, LabConfig, LabInfo};

fn client(ca_pem: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("lab CA parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client builds")
}

#[tokio::test]
async fn lab_up_writes_its_directory_and_answers_over_tls() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = LabConfig::new(Fixture::default_org());
    config.dir = Some(dir.path().to_path_buf());
    let lab = Lab::start(config).await.expect("lab starts");

    for file in [
        "lab.env",
        "lab.json",
        "ca.pem",
        "control.token",
        "secrets/Administrator.password",
        "secrets/provisioner.secret",
        "specs/onprem.yaml",
        "specs/hybrid.yaml",
        "specs/hybrid-manual.yaml",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} should exist");
    }
    assert!(dir.path().join("spool/new").is_dir());
    let env = std::fs::read_to_string(dir.path().join("lab.env")).expect("lab.env");
    assert!(
        env.contains("export SIU_LAB_EWS_URL='https://127.0.0.1:"),
        "{env}"
    );

    let info = LabInfo::load(dir.path()).expect("lab.json loads");
    let token = std::fs::read_to_string(&info.control_token_file).expect("token");
    let client = client(lab.ca_pem());
    let url = info.endpoints.control.join("v1/info").expect("url");
    let denied = client.get(url.clone()).send().await.expect("request");
    assert_eq!(denied.status(), 401);
    let answer: serde_json::Value = client
        .get(url)
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["domain"], "lab.example");
    assert!(answer["users"].as_u64().expect("users") > 1600);
    lab.stop().await.expect("lab stops");
    assert!(dir.path().join("state.json").is_file());
}

#[tokio::test]
async fn restarted_lab_resumes_its_world() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = LabConfig::new(Fixture::default_org());
    config.dir = Some(dir.path().to_path_buf());
    let lab = Lab::start(config.clone()).await.expect("lab starts");
    let tenant = lab.state().read().tenant.id;
    let ca = lab.ca_pem().to_string();
    lab.stop().await.expect("lab stops");

    let again = Lab::start(config).await.expect("lab restarts");
    assert_eq!(again.state().read().tenant.id, tenant);
    assert_eq!(again.ca_pem(), ca, "a restarted lab keeps its CA");
}
