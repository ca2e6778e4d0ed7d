//! Hostile and broken clients: every request gets a response in its protocol's shape (or a
//! connection that closes in the open), and the lab keeps serving the next client.

mod common;

use std::sync::Arc;

use common::{certificate_token, client, graph_url};
use serde_json::Value;
use siu_lab::{Fixture, Lab, LabConfig, LabError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes over TLS to `addr` and returns everything the server sends before it
/// closes the connection or stops sending for a while.
async fn raw_exchange(lab: &Lab, addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::pem::PemObject::pem_slice_iter(lab.ca_pem().as_bytes()) {
        roots
            .add(certificate.expect("the lab CA is PEM"))
            .expect("the lab CA is a certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(request).await.expect("request sent");

    // The guard only keeps a broken lab from hanging the test; the assertions are about
    // what arrives.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(30), tls.read(&mut buffer)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Checks that Graph still serves a plain request.
async fn assert_graph_serves(lab: &Lab, token: &str) {
    let response = client(lab)
        .get(graph_url(lab, "users?$top=1"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the lab still accepts requests");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn tampered_skip_token_is_bad_request() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let first: Value = client(&lab)
        .get(graph_url(&lab, "users?$top=5"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("first page")
        .json()
        .await
        .expect("JSON page");
    let next = first["@odata.nextLink"].as_str().expect("a next link");
    let url = url::Url::parse(next).expect("next link is a URL");
    let skip_token = url
        .query_pairs()
        .find(|(name, _)| name == "$skiptoken")
        .map(|(_, value)| value.into_owned())
        .expect("the next link has a $skiptoken");
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &skip_token,
    )
    .expect("skip token is base64url");
    let decoded = String::from_utf8(decoded).expect("skip token is text");
    let snapshot = decoded.split(':').nth(1).expect("snapshot number");

    for offset in [u64::MAX.to_string(), (u64::MAX - 2).to_string()] {
        let forged = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!("lab1:{snapshot}:{offset}"),
        );
        let response = client(&lab)
            .get(graph_url(
                &lab,
                &format!("users?$top=5&$skiptoken={forged}"),
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("the lab answers a forged skip token");
        assert_eq!(response.status(), 400, "offset {offset}");
        let body: Value = response.json().await.expect("a Graph error body");
        assert_eq!(body["error"]["code"], "Request_BadRequest", "{body}");
    }
    assert_graph_serves(&lab, &token).await;
}

#[tokio::test]
async fn huge_message_skip_returns_empty_page() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let path = format!(
        "users/carol@lab.example/mailFolders/sentitems/messages?$top=10&$skip={}",
        u64::MAX
    );
    let response = client(&lab)
        .get(graph_url(&lab, &path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the lab answers a huge $skip");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("a collection");
    assert_eq!(body["value"].as_array().map(Vec::len), Some(0), "{body}");
    assert!(body.get("@odata.nextLink").is_none(), "{body}");
    assert_graph_serves(&lab, &token).await;
}

#[tokio::test]
async fn deeply_nested_filter_is_bad_request() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let depth = 1000;
    let filters = [
        format!(
            "{}displayName eq 'x'{}",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
        format!("{}displayName eq 'x'", "not ".repeat(depth)),
        format!(
            "{}p eq 'x'{}",
            (0..depth)
                .map(|i| format!("a/any(v{i}:"))
                .collect::<String>(),
            ")".repeat(depth)
        ),
        vec!["displayName eq 'x'"; depth].join(" and "),
    ];
    for filter in &filters {
        let response = client(&lab)
            .get(graph_url(&lab, "users"))
            .query(&[("$filter", filter)])
            .bearer_auth(&token)
            .send()
            .await
            .expect("the lab answers a nested filter");
        assert_eq!(response.status(), 400, "{}", &filter[..40]);
        let body: Value = response.json().await.expect("a Graph error body");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("Invalid filter clause"), "{body}");
    }
    assert_graph_serves(&lab, &token).await;
}

#[tokio::test]
async fn deeply_nested_management_values_are_rejected() {
    let lab = common::start().await;
    let depth = 5000;
    let scripts = [
        format!(
            "Get-Mailbox -Identity {}'a'{}",
            "@(".repeat(depth),
            ")".repeat(depth)
        ),
        format!(
            "Get-Mailbox -Identity {}'a'{}",
            "@{a=".repeat(depth),
            "}".repeat(depth)
        ),
    ];
    let url = lab.endpoints().control.join("v1/management").expect("URL");
    for script in &scripts {
        let response = client(&lab)
            .post(url.clone())
            .bearer_auth(&lab.state().control_token)
            .json(&serde_json::json!({ "script": script }))
            .send()
            .await
            .expect("the lab answers a nested script");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("a management response");
        assert_eq!(body["exitCode"], 1, "{body}");
        let stderr = body["stderr"].as_str().unwrap_or_default();
        assert!(stderr.contains("nest"), "{stderr}");
    }

    let response = client(&lab)
        .post(url)
        .bearer_auth(&lab.state().control_token)
        .json(&serde_json::json!({ "script": "Get-Mailbox -Identity alice" }))
        .send()
        .await
        .expect("the lab still runs scripts");
    let body: Value = response.json().await.expect("a management response");
    assert_eq!(body["exitCode"], 0, "{body}");
}

#[tokio::test]
async fn unread_request_body_closes_connection_openly() {
    let lab = common::start().await;
    // The token is checked before the body is read, so the lab returns 401 with 1 MiB of the
    // request still unread, and cannot keep the connection for the next request.
    let body = format!(r#"{{"displayName":"{}"}}"#, "x".repeat(1024 * 1024));
    let response = client(&lab)
        .post(graph_url(&lab, "applications"))
        .bearer_auth("not-a-token")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the lab answers before reading the body");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close"),
        "the client must learn that the connection ends"
    );
}

#[tokio::test]
async fn oversized_ews_body_gets_413_before_upload() {
    let lab = common::start().await;
    let addr = lab.endpoints().exchange_addr;
    let request = format!(
        "POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n<s:Envelope",
        siu_lab::ews::MAX_REQUEST_BYTES + 1
    );
    let answer = raw_exchange(&lab, addr, request.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "the lab should reject the declared length at once: {answer:?}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn second_lab_in_one_directory_is_rejected() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = LabConfig::new(Fixture::default_org());
    config.dir = Some(dir.path().to_path_buf());
    let first = Lab::start(config.clone()).await.expect("first lab starts");
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).expect("ca.pem");

    let second = Lab::start(config.clone()).await;
    match second {
        Err(LabError::DirInUse { dir: busy }) => assert_eq!(busy, dir.path()),
        other => panic!("a second lab in the same directory should fail: {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).expect("ca.pem"),
        ca,
        "the second start must not touch the first lab's files"
    );

    first.stop().await.expect("first lab stops");
    let again = Lab::start(config)
        .await
        .expect("the directory is free again");
    again.stop().await.expect("lab stops");
}

#[cfg(unix)]
#[tokio::test]
async fn lab_directory_must_be_utf8() {
    use std::os::unix::ffi::OsStrExt;

    let parent = tempfile::tempdir().expect("temporary directory");
    let dir = parent.path().join(std::ffi::OsStr::from_bytes(b"lab-\xff"));
    let mut config = LabConfig::new(Fixture::default_org());
    config.dir = Some(dir.clone());
    match Lab::start(config).await {
        Err(LabError::InvalidDir { dir: rejected, .. }) => assert_eq!(rejected, dir),
        other => panic!("a non-UTF-8 directory should be rejected: {other:?}"),
    }
}

#[tokio::test]
async fn spool_dir_must_be_an_existing_absolute_directory() {
    let lab = common::start().await;
    let url = lab
        .endpoints()
        .control
        .join("v1/transport/send")
        .expect("URL");
    let scratch = tempfile::tempdir().expect("temporary directory");
    let missing = scratch.path().join("not-created");
    for spool in [
        std::path::PathBuf::from("relative/spool"),
        missing.clone(),
        scratch.path().join("file"),
    ] {
        std::fs::write(scratch.path().join("file"), b"not a directory").expect("file");
        let response = client(&lab)
            .post(url.clone())
            .bearer_auth(&lab.state().control_token)
            .json(&serde_json::json!({ "from": "alice@lab.example", "spoolDir": spool }))
            .send()
            .await
            .expect("the lab answers");
        assert_eq!(response.status(), 422, "{}", spool.display());
        let body: Value = response.json().await.expect("a control API error");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains("spoolDir"), "{message}");
    }
    assert!(!missing.exists(), "the lab must not create the spool");

    let response = client(&lab)
        .post(url)
        .bearer_auth(&lab.state().control_token)
        .json(&serde_json::json!({ "from": "alice@lab.example", "spoolDir": scratch.path() }))
        .send()
        .await
        .expect("the lab answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        std::fs::read_dir(scratch.path().join("new"))
            .expect("new/ exists")
            .count(),
        1
    );
}
