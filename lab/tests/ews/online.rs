//! Exchange Online's EWS: Bearer tokens, full_access_as_app and the EWS allow list.

use std::time::Duration;

use siu_lab::Lab;
use siu_lab::access::Resource;
use uuid::Uuid;

use crate::common::*;

/// Mints a token for the pre-registered application with `roles`.
fn mint(lab: &Lab, roles: &[&str]) -> (String, String) {
    let app_id: Uuid = lab
        .secrets()
        .get("manual-app.client-id")
        .expect("client ID")
        .parse()
        .expect("GUID");
    let token = lab
        .state()
        .tokens
        .issue(
            Resource::ExchangeOnline,
            app_id,
            Uuid::new_v4(),
            roles.iter().map(|r| r.to_string()).collect(),
            Duration::from_secs(600),
        )
        .expect("token");
    (app_id.to_string(), token)
}

fn allow_ews(lab: &Lab, app_ids: Vec<String>) {
    let mut world = lab.state().write();
    world.exchange.online.ews_enabled = Some(true);
    world.exchange.online.ews_allowed_app_ids = app_ids;
}

fn get_root(mailbox: &str) -> String {
    envelope(
        Some(mailbox),
        &format!(
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="sentitems"><t:Mailbox><t:EmailAddress>{mailbox}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"#
        ),
    )
}

#[tokio::test]
async fn cloud_mailbox_opens_with_full_access_as_app() {
    let capture = tempfile::tempdir().expect("capture directory");
    let lab = start(Some(capture.path())).await;
    let client = client(&lab);
    let url = lab.endpoints().exchange_online_ews.clone();
    let (app_id, token) = mint(&lab, &["full_access_as_app"]);
    allow_ews(&lab, vec![app_id]);

    let answer = post(
        &client,
        &url,
        &Auth::Bearer(token.clone()),
        get_root("carol@lab.example"),
    )
    .await;
    assert_eq!(answer.code(), "NoError", "{}", answer.text);
    let root = answer.xml();
    let version = first_named(&root, "ServerVersionInfo").expect("ServerVersionInfo");
    assert_eq!(
        version.attribute("MinorVersion"),
        Some("20"),
        "an Exchange Online build"
    );
    assert_eq!(
        first_named(&root, "TotalCount").map(|e| e.text.as_str()),
        Some("2")
    );

    // An on-premises mailbox is a mail user in Exchange Online.
    let on_premises = post(
        &client,
        &url,
        &Auth::Bearer(token.clone()),
        get_root("alice@lab.example"),
    )
    .await;
    assert_eq!(on_premises.code(), "ErrorNonExistentMailbox");

    // App-only tokens need ExchangeImpersonation.
    let body = envelope(
        None,
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="sentitems"/></m:FolderIds></m:GetFolder>"#,
    );
    let without = post(&client, &url, &Auth::Bearer(token), body).await;
    assert_eq!(
        without.code(),
        "ErrorInvalidExchangeImpersonationHeaderData"
    );
    validate_captures(capture.path());
}

#[tokio::test]
async fn online_rejects_unlisted_or_roleless_tokens() {
    let lab = start(None).await;
    let client = client(&lab);
    let url = lab.endpoints().exchange_online_ews.clone();

    let (app_id, token) = mint(&lab, &["full_access_as_app"]);
    // The default organization left EwsEnabled unset, which blocks EWS since October 2026.
    let blocked = post(
        &client,
        &url,
        &Auth::Bearer(token.clone()),
        get_root("carol@lab.example"),
    )
    .await;
    assert_eq!(blocked.status, 403);
    allow_ews(&lab, vec!["00000000-0000-0000-0000-000000000001".into()]);
    let not_listed = post(
        &client,
        &url,
        &Auth::Bearer(token.clone()),
        get_root("carol@lab.example"),
    )
    .await;
    assert_eq!(not_listed.status, 403);
    allow_ews(&lab, vec![app_id]);

    let (_, no_role) = mint(&lab, &[]);
    let answer = post(
        &client,
        &url,
        &Auth::Bearer(no_role),
        get_root("carol@lab.example"),
    )
    .await;
    assert_eq!(answer.status, 401);
    let diagnostics = answer
        .headers
        .get("x-ms-diagnostics")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(diagnostics.starts_with("2000008;"), "{diagnostics}");

    let graph_token = lab
        .state()
        .tokens
        .issue(
            Resource::Graph,
            Uuid::new_v4(),
            Uuid::new_v4(),
            vec!["full_access_as_app".into()],
            Duration::from_secs(600),
        )
        .expect("token");
    let wrong_audience = post(
        &client,
        &url,
        &Auth::Bearer(graph_token),
        get_root("carol@lab.example"),
    )
    .await;
    assert_eq!(wrong_audience.status, 401);
    for auth in [
        Auth::None,
        Auth::Basic(
            "carol@lab.example".into(),
            password(&lab, "carol@lab.example"),
        ),
    ] {
        let answer = post(&client, &url, &auth, get_root("carol@lab.example")).await;
        assert_eq!(answer.status, 401);
        let challenge = answer
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
    }
}
