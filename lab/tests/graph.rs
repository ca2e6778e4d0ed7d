//! Microsoft Graph v1.0 over TLS: permissions, applications and their credentials, service
//! principals and app role assignments, users, groups with paged transitive members, the
//! organization, cloud mail, replication delay, faults and the request journal.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{certificate_token, client, graph_url, secret_token};
use serde_json::{Value, json};
use siu_lab::world::tenant::{EXCHANGE_ONLINE_APP_ID, FULL_ACCESS_AS_APP, GRAPH_APP_ID};
use siu_lab::{FaultKind, FaultRule, Lab, Service};

/// Sends a request with a bearer token and returns the status, headers and JSON body (null
/// for an empty body).
async fn call(
    lab: &Lab,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = if path.starts_with("https://") {
        path.to_string()
    } else {
        graph_url(lab, path)
    };
    let mut request = client(lab).request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

async fn get(lab: &Lab, token: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = call(lab, token, reqwest::Method::GET, path, None).await;
    (status, body)
}

/// Checks Graph's error shape and returns the error code.
fn graph_code(body: &Value) -> &str {
    let inner = &body["error"]["innerError"];
    for field in ["date", "request-id", "client-request-id"] {
        assert!(
            inner[field].is_string(),
            "innerError.{field} missing in {body}"
        );
    }
    assert!(
        body["error"]["message"].is_string(),
        "message missing in {body}"
    );
    body["error"]["code"].as_str().expect("error code")
}

/// Grants `key` an extra Graph application permission, then gets a token for it.
async fn token_with_role(lab: &Lab, key: &str, role: &str) -> String {
    {
        let mut world = lab.state().write();
        let app_id = common::client_id(lab, key).parse().expect("GUID");
        let principal = world
            .tenant
            .principal_by_app_id(app_id)
            .expect("principal")
            .id;
        world
            .grant_app_role(principal, GRAPH_APP_ID, role)
            .expect("the role exists");
    }
    secret_token(lab, key).await
}

#[tokio::test]
async fn missing_or_foreign_token_is_401() {
    let lab = common::start().await;
    let response = client(&lab)
        .get(graph_url(&lab, "users"))
        .header("client-request-id", "3f1c7e1a-0000-4000-8000-000000000001")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("request-id"));
    assert_eq!(
        response.headers()["client-request-id"],
        "3f1c7e1a-0000-4000-8000-000000000001"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(graph_code(&body), "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "3f1c7e1a-0000-4000-8000-000000000001"
    );

    // A token for Exchange Online is not a Graph token.
    let id = common::client_id(&lab, "provisioner");
    let secret = lab
        .secrets()
        .get("provisioner.secret")
        .expect("secret")
        .to_string();
    let (_, exchange) = common::post_token(
        &lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://outlook.office365.com/.default"),
        ],
    )
    .await;
    let (status, body) = get(
        &lab,
        exchange["access_token"].as_str().expect("token"),
        "users",
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(graph_code(&body), "InvalidAuthenticationToken");
}

#[tokio::test]
async fn application_without_rights_is_denied() {
    let lab = common::start().await;
    let token = secret_token(&lab, "no-rights").await;
    let (status, _, body) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "applications",
        Some(json!({"displayName": "Sent Items Update"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(graph_code(&body), "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    let (status, body) = get(&lab, &token, "users/alice@lab.example").await;
    assert_eq!(status, 403);
    assert_eq!(graph_code(&body), "Authorization_RequestDenied");
}

#[tokio::test]
async fn applications_are_created_found_and_filtered() {
    let lab = common::start().await;
    let token = secret_token(&lab, "provisioner").await;
    let (status, _, created) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "applications",
        Some(json!({
            "displayName": "O'Brien's tool",
            "requiredResourceAccess": [{
                "resourceAppId": EXCHANGE_ONLINE_APP_ID,
                "resourceAccess": [{"id": FULL_ACCESS_AS_APP, "type": "Role"}]
            }]
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let app_id = created["appId"].as_str().expect("appId");
    assert_eq!(created["signInAudience"], "AzureADMyOrg");

    let (status, by_id) = get(&lab, &token, &format!("applications/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        by_id["requiredResourceAccess"][0]["resourceAppId"],
        EXCHANGE_ONLINE_APP_ID
    );

    let (status, by_app_id) = get(&lab, &token, &format!("applications(appId='{app_id}')")).await;
    assert_eq!(status, 200);
    assert_eq!(by_app_id["id"], id);

    let (status, list) = get(
        &lab,
        &token,
        &format!("applications?$filter=appId eq '{app_id}'"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().expect("value").len(), 1);

    let filter = "displayName eq 'O''Brien''s tool'";
    let (status, list) = get(
        &lab,
        &token,
        &format!("applications?$filter={}", encode(filter)),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"].as_array().expect("value").len(), 1);
    assert_eq!(list["value"][0]["displayName"], "O'Brien's tool");

    // The doubled quote is part of the literal, not its end.
    let injection = "displayName eq 'x'' or displayName ne ''x'";
    let (status, list) = get(
        &lab,
        &token,
        &format!("applications?$filter={}", encode(injection)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().expect("value").len(), 0);

    let (status, body) = get(
        &lab,
        &token,
        "applications?$filter=displayName eq 'unterminated",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(graph_code(&body), "BadRequest");

    let (status, body) = get(
        &lab,
        &token,
        &format!("applications/{}", uuid::Uuid::new_v4()),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(graph_code(&body), "Request_ResourceNotFound");
    assert_eq!(lab.journal().count(Service::Graph, "POST /applications"), 1);
    assert_eq!(lab.journal().count(Service::Graph, "GET /applications"), 4);
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn secret_text_is_returned_once() {
    let lab = common::start().await;
    let token = secret_token(&lab, "provisioner").await;
    let (_, _, app) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "applications",
        Some(json!({"displayName": "Secret holder"})),
    )
    .await;
    let id = app["id"].as_str().expect("id").to_string();
    let app_id = app["appId"].as_str().expect("appId").to_string();
    let (status, _, credential) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        &format!("applications/{id}/addPassword"),
        Some(json!({"passwordCredential": {"displayName": "siuctl"}})),
    )
    .await;
    assert_eq!(status, 200, "{credential}");
    let secret = credential["secretText"]
        .as_str()
        .expect("secretText")
        .to_string();
    assert_eq!(credential["hint"], secret[..3]);

    let (_, read) = get(&lab, &token, &format!("applications/{id}")).await;
    let text = read.to_string();
    assert!(!text.contains(&secret), "GET never shows the secret again");
    assert!(read["passwordCredentials"][0]["secretText"].is_null());
    let (_, listed) = get(
        &lab,
        &token,
        &format!("applications?$filter=appId eq '{app_id}'"),
    )
    .await;
    assert!(!listed.to_string().contains(&secret));

    // The secret signs in once the application has a service principal.
    let (status, _, _) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "servicePrincipals",
        Some(json!({"appId": app_id})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = common::post_token(
        &lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &app_id),
            ("client_secret", &secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let key_id = credential["keyId"].as_str().expect("keyId");
    let (status, _, _) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        &format!("applications/{id}/removePassword"),
        Some(json!({"keyId": key_id})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, read) = get(&lab, &token, &format!("applications/{id}")).await;
    assert_eq!(read["passwordCredentials"], json!([]));
}

#[tokio::test]
async fn key_credentials_need_2048_bit_keys() {
    let lab = common::start().await;
    let token = secret_token(&lab, "provisioner").await;
    let (_, _, app) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "applications",
        Some(json!({"displayName": "Certificate holder"})),
    )
    .await;
    let id = app["id"].as_str().expect("id").to_string();

    let short = include_str!("data/rsa1024-cert.pem");
    let short_der = common::pem_der(short, "CERTIFICATE");
    let (status, _, body) = call(
        &lab,
        &token,
        reqwest::Method::PATCH,
        &format!("applications/{id}"),
        Some(json!({"keyCredentials": [{
            "type": "AsymmetricX509Cert", "usage": "Verify", "key": STANDARD.encode(&short_der)
        }]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(graph_code(&body), "Request_BadRequest");
    let (_, read) = get(&lab, &token, &format!("applications/{id}")).await;
    assert_eq!(
        read["keyCredentials"],
        json!([]),
        "a rejected update changes nothing"
    );

    let (pem, credential) =
        siu_lab::world::generate_app_certificate("Certificate holder", 2048).expect("cert");
    let (_, der) = common::split_pem(&pem);
    let (status, _, body) = call(
        &lab,
        &token,
        reqwest::Method::PATCH,
        &format!("applications/{id}"),
        Some(json!({"keyCredentials": [{
            "type": "AsymmetricX509Cert", "usage": "Verify", "key": STANDARD.encode(&der),
            "displayName": "CN=Certificate holder"
        }]})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, read) = get(&lab, &token, &format!("applications/{id}")).await;
    let keys = read["keyCredentials"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0]["customKeyIdentifier"],
        STANDARD.encode(&credential.sha1)
    );
    assert!(
        keys[0]["key"].is_null(),
        "Graph does not return the certificate"
    );
}

#[tokio::test]
async fn consent_grants_roles_that_tokens_carry() {
    let lab = common::start().await;
    let token = secret_token(&lab, "provisioner").await;
    let (_, _, app) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "applications",
        Some(json!({"displayName": "Consented"})),
    )
    .await;
    let app_id = app["appId"].as_str().expect("appId").to_string();
    let (_, _, principal) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "servicePrincipals",
        Some(json!({"appId": app_id})),
    )
    .await;
    let principal_id = principal["id"].as_str().expect("id").to_string();
    let (status, _, conflict) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "servicePrincipals",
        Some(json!({"appId": app_id})),
    )
    .await;
    assert_eq!(status, 409, "{conflict}");

    let (status, exchange) = get(
        &lab,
        &token,
        &format!("servicePrincipals?$filter=appId eq '{EXCHANGE_ONLINE_APP_ID}'"),
    )
    .await;
    assert_eq!(status, 200);
    let exchange = &exchange["value"][0];
    let resource_id = exchange["id"].as_str().expect("id").to_string();
    assert!(
        exchange["appRoles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["value"] == "full_access_as_app" && r["id"] == FULL_ACCESS_AS_APP)
    );

    let path = format!("servicePrincipals/{resource_id}/appRoleAssignedTo");
    let (status, _, assignment) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        &path,
        Some(json!({"principalId": principal_id, "resourceId": resource_id, "appRoleId": FULL_ACCESS_AS_APP})),
    )
    .await;
    assert_eq!(status, 201, "{assignment}");
    assert_eq!(assignment["principalDisplayName"], "Consented");
    let (_, assigned) = get(&lab, &token, &path).await;
    assert!(
        assigned["value"]
            .as_array()
            .expect("value")
            .iter()
            .any(|a| a["principalId"] == principal_id.as_str())
    );
    let (_, held) = get(
        &lab,
        &token,
        &format!("servicePrincipals/{principal_id}/appRoleAssignments"),
    )
    .await;
    assert_eq!(held["value"].as_array().expect("value").len(), 1);
    let granted = lab
        .state()
        .read()
        .tenant
        .granted_roles(app_id.parse().expect("GUID"), EXCHANGE_ONLINE_APP_ID);
    assert_eq!(granted, vec!["full_access_as_app".to_string()]);

    let assignment_id = assignment["id"].as_str().expect("id");
    let (status, _, _) = call(
        &lab,
        &token,
        reqwest::Method::DELETE,
        &format!("{path}/{assignment_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, held) = get(
        &lab,
        &token,
        &format!("servicePrincipals/{principal_id}/appRoleAssignments"),
    )
    .await;
    assert_eq!(held["value"], json!([]));

    // Granting needs AppRoleAssignment.ReadWrite.All, which manual-app lacks.
    let other = certificate_token(&lab).await;
    let (status, _, body) = call(
        &lab,
        &other,
        reqwest::Method::POST,
        &path,
        Some(json!({"principalId": principal_id, "resourceId": resource_id, "appRoleId": FULL_ACCESS_AS_APP})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(graph_code(&body), "Authorization_RequestDenied");
}

#[tokio::test]
async fn new_objects_are_missing_during_replication() {
    let lab = common::start().await;
    let token = secret_token(&lab, "provisioner").await;
    lab.faults()
        .set_replication_delay(Duration::from_secs(3600));
    let (status, _, app) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "applications",
        Some(json!({"displayName": "Replicating"})),
    )
    .await;
    assert_eq!(status, 201);
    let id = app["id"].as_str().expect("id").to_string();
    let app_id = app["appId"].as_str().expect("appId").to_string();

    let (status, body) = get(&lab, &token, &format!("applications/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(graph_code(&body), "Request_ResourceNotFound");
    let (_, list) = get(
        &lab,
        &token,
        &format!("applications?$filter=appId eq '{app_id}'"),
    )
    .await;
    assert_eq!(list["value"], json!([]));
    let (status, _, body) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "servicePrincipals",
        Some(json!({"appId": app_id})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    lab.faults().set_replication_delay(Duration::ZERO);
    let (status, _) = get(&lab, &token, &format!("applications/{id}")).await;
    assert_eq!(status, 200);
    let (_, list) = get(
        &lab,
        &token,
        &format!("applications?$filter=appId eq '{app_id}'"),
    )
    .await;
    assert_eq!(list["value"].as_array().expect("value").len(), 1);
}

#[tokio::test]
async fn users_are_found_by_upn_id_and_address() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let (status, alice) = get(&lab, &token, "users/alice@lab.example").await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(alice["userPrincipalName"], "alice@lab.example");
    assert_eq!(alice["mail"], "alice@lab.example");
    assert!(
        alice.get("accountEnabled").is_none(),
        "only default properties without $select"
    );

    let id = alice["id"].as_str().expect("id");
    let (status, by_id) = get(
        &lab,
        &token,
        &format!("users/{id}?$select=accountEnabled,onPremisesSamAccountName"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        by_id,
        json!({
            "@odata.context": by_id["@odata.context"],
            "accountEnabled": true,
            "onPremisesSamAccountName": "alice",
        })
    );

    let (status, body) = get(&lab, &token, "users/nobody@lab.example").await;
    assert_eq!(status, 404);
    assert_eq!(graph_code(&body), "Request_ResourceNotFound");

    let (_, list) = get(
        &lab,
        &token,
        "users?$filter=mail eq 'heidi.hill@lab.example'",
    )
    .await;
    assert_eq!(list["value"][0]["userPrincipalName"], "hhill@lab.example");
    let filter = "proxyAddresses/any(p:p eq 'smtp:robert.baker@lab.example')";
    let (status, list) = get(&lab, &token, &format!("users?$filter={}", encode(filter))).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"].as_array().expect("value").len(), 1);
    assert_eq!(list["value"][0]["userPrincipalName"], "bob@lab.example");
}

#[tokio::test]
async fn all_staff_members_page_by_next_link() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let (status, groups) = get(
        &lab,
        &token,
        "groups?$filter=mail eq 'allstaff@lab.example'",
    )
    .await;
    assert_eq!(status, 200, "{groups}");
    let group = groups["value"][0]["id"].as_str().expect("id").to_string();
    let expected = {
        let world = lab.state().read();
        world
            .directory
            .transitive_members(group.parse().expect("GUID"))
            .len()
    };
    assert!(expected > 1600);

    lab.journal().reset();
    let mut url = graph_url(
        &lab,
        &format!("groups/{group}/transitiveMembers?$select=id,mail"),
    );
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let (status, page) = get(&lab, &token, &url).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let items = page["value"].as_array().expect("value");
        assert!(items.len() <= 100, "default page size is 100");
        for item in items {
            assert!(item["@odata.type"].is_string(), "{item}");
            assert!(item.get("displayName").is_none(), "$select applies: {item}");
            assert!(
                seen.insert(item["id"].as_str().expect("id").to_string()),
                "no duplicates"
            );
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected);
    assert_eq!(pages, expected.div_ceil(100));
    assert_eq!(
        lab.journal()
            .count(Service::Graph, "GET /groups/{id}/transitiveMembers"),
        pages as u64,
        "one request per page"
    );

    // The user cast drops the nested groups; $top sets the page size up to 999.
    let mut url = graph_url(
        &lab,
        &format!("groups/{group}/transitiveMembers/microsoft.graph.user?$top=999"),
    );
    let mut users = 0;
    loop {
        let (status, page) = get(&lab, &token, &url).await;
        assert_eq!(status, 200);
        for item in page["value"].as_array().expect("value") {
            assert_eq!(item["@odata.type"], "#microsoft.graph.user");
            users += 1;
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(
        users,
        expected - 3,
        "Sales, Sales-EMEA and Finance are groups"
    );

    let (status, body) = get(
        &lab,
        &token,
        &format!("groups/{group}/transitiveMembers?$top=1000"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(graph_code(&body), "Request_BadRequest");
}

#[tokio::test]
async fn organization_needs_a_directory_permission() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let (status, body) = get(&lab, &token, "organization").await;
    assert_eq!(status, 403);
    assert_eq!(graph_code(&body), "Authorization_RequestDenied");

    let token = token_with_role(&lab, "no-rights", "Directory.Read.All").await;
    let (status, body) = get(&lab, &token, "organization").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"][0]["id"], common::tenant(&lab));
    let domains = body["value"][0]["verifiedDomains"]
        .as_array()
        .expect("domains");
    assert!(
        domains
            .iter()
            .any(|d| d["name"] == "labexample.onmicrosoft.com" && d["isInitial"] == true)
    );
}

#[tokio::test]
async fn cloud_mail_is_listed_created_and_deleted() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let folder = "users/carol@lab.example/mailFolders/sentitems/messages";

    // 1. Find a seeded message by its Internet Message-ID, with one extended property.
    let filter = encode("internetMessageId eq '<seed-carol-0@lab.example>'");
    let expand = encode("singleValueExtendedProperties($filter=id eq 'Integer 0x0E07')");
    let (status, list) = get(
        &lab,
        &token,
        &format!("{folder}?$filter={filter}&$select=subject,internetMessageId&$expand={expand}"),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let items = list["value"].as_array().expect("value");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["internetMessageId"], "<seed-carol-0@lab.example>");
    assert!(items[0].get("body").is_none(), "$select applies");
    assert_eq!(items[0]["singleValueExtendedProperties"][0]["value"], "1");

    // 2. A JSON message with PR_MESSAGE_FLAGS is not a draft; without it, it is.
    let property = "String {00020386-0000-0000-c000-000000000046} Name X-Siu-Rewritten";
    let (status, _, sent) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        folder,
        Some(json!({
            "subject": "Processed copy",
            "body": {"contentType": "html", "content": "<p>Hello</p><p>Signature</p>"},
            "from": {"emailAddress": {"address": "carol@lab.example"}},
            "toRecipients": [{"emailAddress": {"address": "partner@example.net"}}],
            "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "1"},
                {"id": "String 0x1035", "value": "<processed-1@lab.example>"},
                {"id": property, "value": "yes"}
            ]
        })),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["isDraft"], false);
    assert_eq!(sent["body"]["contentType"], "html");
    assert!(
        sent["body"]["content"]
            .as_str()
            .expect("content")
            .contains("<p>Signature</p>"),
        "{sent}"
    );
    assert_eq!(sent["internetMessageId"], "<processed-1@lab.example>");
    let (_, _, draft) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        folder,
        Some(json!({"subject": "Forgot the flags"})),
    )
    .await;
    assert_eq!(draft["isDraft"], true);

    // 3. The named property reads back through an expand filter in any GUID case.
    let id = sent["id"].as_str().expect("id").to_string();
    let expand = encode(&format!(
        "singleValueExtendedProperties($filter=id eq '{}')",
        property
            .to_uppercase()
            .replace("STRING", "String")
            .replace("NAME X-SIU-REWRITTEN", "Name X-Siu-Rewritten")
    ));
    let (status, read) = get(&lab, &token, &format!("{folder}/{id}?$expand={expand}")).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["singleValueExtendedProperties"][0]["value"], "yes");

    // 4. The same item is in the store that EWS serves.
    {
        let world = lab.state().read();
        let carol = world
            .directory
            .user_by_upn("carol@lab.example")
            .expect("carol")
            .id;
        let sentitems = world.exchange.mailboxes[&carol]
            .folder(siu_lab::world::exchange::WellKnownFolder::SentItems);
        assert!(
            sentitems
                .items
                .iter()
                .any(
                    |i| i.internet_message_id.as_deref() == Some("<processed-1@lab.example>")
                        && !i.is_draft()
                )
        );
    }

    // 5. MIME in, MIME out.
    let mime = "From: carol@lab.example\r\nTo: partner@example.net\r\nSubject: From MIME\r\nMessage-ID: <mime-1@lab.example>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\nBody\r\n";
    let response = client(&lab)
        .post(graph_url(&lab, folder))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(STANDARD.encode(mime))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["isDraft"], true, "Graph saves MIME as a draft");
    assert_eq!(created["internetMessageId"], "<mime-1@lab.example>");
    let mime_id = created["id"].as_str().expect("id");
    let value = client(&lab)
        .get(graph_url(&lab, &format!("{folder}/{mime_id}/$value")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert_eq!(value, mime);

    // 6. Updating the flags of a saved draft changes only the read bit.
    let (status, _, updated) = call(
        &lab,
        &token,
        reqwest::Method::PATCH,
        &format!("users/carol@lab.example/messages/{mime_id}"),
        Some(json!({"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["isDraft"], true);

    // 7. Delete, then the message is gone from Sent Items.
    let (status, _, _) = call(
        &lab,
        &token,
        reqwest::Method::DELETE,
        &format!("{folder}/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = get(&lab, &token, &format!("{folder}/{id}")).await;
    assert_eq!(
        status, 200,
        "the item moved to Deleted Items and keeps its ID: {body}"
    );
    assert_eq!(body["parentFolderId"], "deleteditems");
    let (_, list) = get(
        &lab,
        &token,
        &format!(
            "{folder}?$filter={}",
            encode("internetMessageId eq '<processed-1@lab.example>'")
        ),
    )
    .await;
    assert_eq!(list["value"], json!([]));
}

#[tokio::test]
async fn mail_of_on_premises_mailboxes_is_not_served() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let (status, body) = get(
        &lab,
        &token,
        "users/alice@lab.example/mailFolders/sentitems/messages",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(graph_code(&body), "MailboxNotEnabledForRESTAPI");
    let (status, body) = get(
        &lab,
        &token,
        "users/ivan@lab.example/mailFolders/sentitems/messages",
    )
    .await;
    assert_eq!(status, 404, "a user without a mailbox");
    assert_eq!(graph_code(&body), "MailboxNotEnabledForRESTAPI");
    let (status, body) = get(
        &lab,
        &token,
        "users/ghost@lab.example/mailFolders/sentitems/messages",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(graph_code(&body), "ErrorInvalidUser");

    let token = secret_token(&lab, "provisioner").await;
    let (status, body) = get(
        &lab,
        &token,
        "users/carol@lab.example/mailFolders/sentitems/messages",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(graph_code(&body), "ErrorAccessDenied");
}

#[tokio::test]
async fn faults_take_graph_shape() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let rule = |fault: FaultKind| FaultRule {
        service: Service::Graph,
        operation: Some("GET /users/{id}".into()),
        fault,
        probability: 1.0,
        remaining: Some(1),
    };

    lab.faults().add(rule(FaultKind::TooManyRequests {
        retry_after_secs: 3,
    }));
    let (status, headers, body) = call(
        &lab,
        &token,
        reqwest::Method::GET,
        "users/alice@lab.example",
        None,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(graph_code(&body), "TooManyRequests");

    lab.faults()
        .add(rule(FaultKind::ServerBusy { back_off_ms: 2500 }));
    let (status, headers, body) = call(
        &lab,
        &token,
        reqwest::Method::GET,
        "users/alice@lab.example",
        None,
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(graph_code(&body), "serviceNotAvailable");

    lab.faults().add(rule(FaultKind::Status { code: 500 }));
    let (status, _, body) = call(
        &lab,
        &token,
        reqwest::Method::GET,
        "users/alice@lab.example",
        None,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(graph_code(&body), "generalException");

    lab.faults().add(rule(FaultKind::Drop));
    let dropped = client(&lab)
        .get(graph_url(&lab, "users/alice@lab.example"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(dropped.is_err(), "the connection closes without an answer");

    // Other operations are untouched, and the rules are used up.
    let (status, _) = get(&lab, &token, "users?$filter=mail eq 'alice@lab.example'").await;
    assert_eq!(status, 200);
    let (status, _) = get(&lab, &token, "users/alice@lab.example").await;
    assert_eq!(status, 200);
    assert_eq!(lab.journal().count(Service::Graph, "GET /users/{id}"), 5);
}

#[tokio::test]
async fn unknown_segment_is_a_bad_request() {
    let lab = common::start().await;
    let token = certificate_token(&lab).await;
    let (status, body) = get(&lab, &token, "contacts").await;
    assert_eq!(status, 400);
    assert_eq!(graph_code(&body), "BadRequest");
}

#[tokio::test]
async fn owned_by_permission_reaches_only_its_own_application() {
    let lab = common::start().await;
    let token = token_with_role(&lab, "no-rights", "Application.ReadWrite.OwnedBy").await;
    let own = common::client_id(&lab, "no-rights");
    let (status, body) = get(&lab, &token, &format!("applications(appId='{own}')")).await;
    assert_eq!(status, 200, "{body}");
    let (status, list) = get(&lab, &token, "applications").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["value"].as_array().expect("value").len(),
        1,
        "only its own application"
    );

    let other = common::client_id(&lab, "provisioner");
    let (status, body) = get(&lab, &token, &format!("applications(appId='{other}')")).await;
    assert_eq!(status, 403);
    assert_eq!(graph_code(&body), "Authorization_RequestDenied");
    let (status, _, body) = call(
        &lab,
        &token,
        reqwest::Method::POST,
        "applications",
        Some(json!({"displayName": "Not allowed"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(graph_code(&body), "Authorization_RequestDenied");
}
