//! Hostile and broken clients: every request gets an answer in its protocol's shape (or a
//! connection that closes in the open), and the lab keeps serving the next client.

mod common;

use common::{certificate_token, client, graph_url};
use serde_json::Value;
use siu_lab::Lab;

/// Checks that Graph still answers a plain request.
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
