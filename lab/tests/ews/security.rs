//! Authentication, impersonation rights and hostile requests on the on-premises server.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use siu_lab::Lab;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation, Ntlm,
    SecurityBuffer, Sspi, SspiImpl, Username,
};

use crate::common::*;

fn get_sent_items(mailbox: Option<&str>) -> String {
    let mailbox = mailbox
        .map(|m| format!("<t:Mailbox><t:EmailAddress>{m}</t:EmailAddress></t:Mailbox>"))
        .unwrap_or_default();
    format!(
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="sentitems">{mailbox}</t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"#
    )
}

#[tokio::test]
async fn impersonation_is_checked_against_rights_and_mailboxes() {
    let capture = tempfile::tempdir().expect("capture directory");
    let lab = start(Some(capture.path())).await;
    let client = client(&lab);
    let ews = lab.endpoints().ews.clone();
    let svc = Auth::Basic(
        "svc-siu@lab.example".into(),
        lab.secrets()
            .get("svc-siu.password")
            .expect("password")
            .to_string(),
    );
    let as_alice = |body: String| envelope(Some("alice@lab.example"), &body);

    let denied = post(&client, &ews, &svc, as_alice(get_sent_items(None))).await;
    assert_eq!(denied.status, 500);
    assert_eq!(denied.code(), "ErrorImpersonateUserDenied");

    // A scoped assignment covers the scope's members only.
    grant_impersonation(&lab, "svc-siu", Some("SIU Pilot mailboxes"));
    let allowed = post(&client, &ews, &svc, as_alice(get_sent_items(None))).await;
    assert_eq!(allowed.code(), "NoError", "{}", allowed.text);
    let out_of_scope = post(
        &client,
        &ews,
        &svc,
        envelope(Some("erin@lab.example"), &get_sent_items(None)),
    )
    .await;
    assert_eq!(out_of_scope.code(), "ErrorImpersonateUserDenied");

    for target in [
        "nobody@lab.example",
        "carol@lab.example",
        "newsletter@lab.example",
        "ivan@lab.example",
    ] {
        let answer = post(
            &client,
            &ews,
            &svc,
            envelope(Some(target), &get_sent_items(None)),
        )
        .await;
        assert_eq!(answer.code(), "ErrorNonExistentMailbox", "{target}");
    }

    // A mailbox other than the impersonated one needs delegate rights, which the lab grants to
    // no account.
    let other = post(
        &client,
        &ews,
        &svc,
        as_alice(get_sent_items(Some("bob@lab.example"))),
    )
    .await;
    assert_eq!(other.code(), "ErrorAccessDenied");
    validate_captures(capture.path());
}

#[tokio::test]
async fn accounts_open_only_their_own_mailbox() {
    let lab = start(None).await;
    let client = client(&lab);
    let ews = lab.endpoints().ews.clone();
    let alice = Auth::Basic("LAB\\alice".into(), password(&lab, "alice@lab.example"));
    let own = post(&client, &ews, &alice, envelope(None, &get_sent_items(None))).await;
    assert_eq!(own.code(), "NoError", "{}", own.text);
    let other = post(
        &client,
        &ews,
        &alice,
        envelope(None, &get_sent_items(Some("bob@lab.example"))),
    )
    .await;
    assert_eq!(other.code(), "ErrorAccessDenied");
    let svc = Auth::Basic(
        "svc-siu".into(),
        lab.secrets()
            .get("svc-siu.password")
            .expect("password")
            .into(),
    );
    let no_mailbox = post(&client, &ews, &svc, envelope(None, &get_sent_items(None))).await;
    assert_eq!(no_mailbox.code(), "ErrorMissingEmailAddress");
}

#[tokio::test]
async fn basic_logon_failures_get_iis_challenges() {
    let lab = start(None).await;
    let client = client(&lab);
    let ews = lab.endpoints().ews.clone();
    let body = || envelope(None, &get_sent_items(None));
    let cases = [
        Auth::None,
        Auth::Basic("alice@lab.example".into(), "wrong".into()),
        Auth::Basic(
            "frank@lab.example".into(),
            password(&lab, "frank@lab.example"),
        ),
        Auth::Basic("OTHER\\alice".into(), password(&lab, "alice@lab.example")),
        Auth::Bearer("not-a-token".into()),
    ];
    for auth in cases {
        let answer = post(&client, &ews, &auth, body()).await;
        assert_eq!(answer.status, 401);
        let challenges: Vec<&str> = answer
            .headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().expect("ASCII"))
            .collect();
        assert_eq!(challenges[..2], ["Negotiate", "NTLM"]);
        assert!(
            challenges[2].starts_with("Basic realm=\"127.0.0.1\""),
            "{challenges:?}"
        );
    }
    assert_eq!(lab.journal().count(siu_lab::Service::Ews, "GetFolder"), 5);
}

#[tokio::test]
async fn hostile_requests_get_faults_not_panics() {
    let lab = start(None).await;
    let client = client(&lab);
    let ews = lab.endpoints().ews.clone();
    let alice = Auth::Basic(
        "alice@lab.example".into(),
        password(&lab, "alice@lab.example"),
    );
    let cases: Vec<(String, &str)> = vec![
        ("not xml at all".into(), "ErrorSchemaValidation"),
        ("<s:Envelope".into(), "ErrorSchemaValidation"),
        (
            r#"<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>"#.into(),
            "ErrorSchemaValidation",
        ),
        (
            format!("{}{}", "<a>".repeat(5000), "</a>".repeat(5000)),
            "ErrorSchemaValidation",
        ),
        ("<Other/>".into(), "ErrorSchemaValidation"),
        (envelope(None, ""), "ErrorInvalidRequest"),
        (
            envelope(None, "<m:SyncFolderItems/>"),
            "ErrorInvalidRequest",
        ),
        (envelope(None, "<m:GetFolder/>"), "ErrorSchemaValidation"),
        (
            envelope(
                None,
                r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="SentItems"/></m:FolderIds></m:GetFolder>"#,
            ),
            "ErrorSchemaValidation",
        ),
        (
            envelope(
                None,
                r#"<m:FindItem Traversal="Deep"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id="sentitems"/></m:ParentFolderIds></m:FindItem>"#,
            ),
            "ErrorSchemaValidation",
        ),
        (
            envelope(
                None,
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:Restriction><t:Near/></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="sentitems"/></m:ParentFolderIds></m:FindItem>"#,
            ),
            "ErrorSchemaValidation",
        ),
        (
            envelope(
                None,
                r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="'; DROP TABLE items;--"/></m:ItemIds></m:GetItem>"#,
            ),
            "ErrorInvalidIdMalformed",
        ),
    ];
    for (body, code) in cases {
        let answer = post(&client, &ews, &alice, body.clone()).await;
        assert_eq!(answer.code(), code, "request {:.80}", body);
    }
    let huge = "x".repeat(siu_lab::ews::MAX_REQUEST_BYTES + 1);
    let answer = post(&client, &ews, &alice, huge).await;
    assert_eq!(answer.status, 413);
    let invalid_utf8 = client
        .post(ews.clone())
        .basic_auth(
            "alice@lab.example",
            Some(password(&lab, "alice@lab.example")),
        )
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .expect("answered");
    assert_eq!(invalid_utf8.status(), 500);
}

/// One NTLM exchange on a single connection; returns the final status.
async fn ntlm_logon(lab: &Lab, user: &str, password: &str, binding: Option<Vec<u8>>) -> u16 {
    let client = client(lab);
    let ews = lab.endpoints().ews.clone();
    let body = envelope(None, &get_sent_items(None));

    let mut ntlm = Ntlm::new();
    if let Some(binding) = &binding {
        ntlm.set_channel_bindings(binding);
    }
    let identity = AuthIdentity {
        username: Username::parse(user).expect("user name parses"),
        password: password.to_string().into(),
    };
    let mut credentials = ntlm
        .acquire_credentials_handle()
        .with_credential_use(CredentialUse::Outbound)
        .with_auth_data(&identity)
        .execute(&mut ntlm)
        .expect("credentials")
        .credentials_handle;

    let mut input: Vec<SecurityBuffer> = Vec::new();
    for _ in 0..2 {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut builder = ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut credentials)
            .with_context_requirements(
                ClientRequestFlags::ALLOCATE_MEMORY | ClientRequestFlags::INTEGRITY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name("HTTP/mail.lab.example")
            .with_output(&mut output);
        if !input.is_empty() {
            builder = builder.with_input(&mut input);
        }
        ntlm.initialize_security_context_impl(&mut builder)
            .expect("client step")
            .resolve_to_result()
            .expect("client step completes");
        let header = format!("NTLM {}", STANDARD.encode(&output[0].buffer));
        let answer = client
            .post(ews.clone())
            .header("Authorization", &header)
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(body.clone())
            .send()
            .await
            .expect("answered");
        let status = answer.status().as_u16();
        let challenge = answer
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("NTLM "))
            .map(str::to_string);
        let _ = answer.text().await;
        match challenge {
            Some(token) if input.is_empty() => {
                input = vec![SecurityBuffer::new(
                    STANDARD.decode(token).expect("base64"),
                    BufferType::Token,
                )];
            }
            _ => {
                if status == 200 {
                    // The connection stays authenticated without an Authorization header.
                    let again = client
                        .post(ews.clone())
                        .body(body.clone())
                        .send()
                        .await
                        .expect("answered");
                    assert_eq!(
                        again.status(),
                        200,
                        "the NTLM connection stays authenticated"
                    );
                }
                return status;
            }
        }
    }
    panic!("NTLM did not finish in two round trips")
}

#[tokio::test]
async fn ntlm_authenticates_the_connection() {
    let lab = start(None).await;
    let password = password(&lab, "alice@lab.example");
    let mut binding = b"tls-server-end-point:".to_vec();
    binding.extend_from_slice(&lab.state().tls.server_end_point);
    assert_eq!(ntlm_logon(&lab, "LAB\\alice", &password, None).await, 200);
    assert_eq!(
        ntlm_logon(&lab, "alice@lab.example", &password, Some(binding)).await,
        200
    );
}

#[tokio::test]
async fn ntlm_rejects_wrong_password_and_binding() {
    let lab = start(None).await;
    let password = password(&lab, "alice@lab.example");
    assert_eq!(
        ntlm_logon(&lab, "LAB\\alice", "wrong-password", None).await,
        401
    );
    let wrong_binding = b"tls-server-end-point:0123456789abcdef0123456789abcdef".to_vec();
    assert_eq!(
        ntlm_logon(&lab, "LAB\\alice", &password, Some(wrong_binding)).await,
        401
    );
    assert_eq!(
        ntlm_logon(
            &lab,
            "LAB\\frank",
            &super::common::password(&lab, "frank@lab.example"),
            None
        )
        .await,
        401
    );
}
