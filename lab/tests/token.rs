//! The Entra token endpoint over TLS: client secrets, certificate assertions, Entra's error
//! codes, replication delay, faults and the discovery documents.

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use common::{
    AssertionClaims, Thumbprint, aadsts_code, client, client_id, post_assertion, post_token,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use siu_lab::access::Resource;
use siu_lab::world::tenant::{Application, PasswordCredential, ServicePrincipal};
use siu_lab::{FaultKind, FaultRule, Service};
use uuid::Uuid;

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

fn provisioner_secret(lab: &siu_lab::Lab) -> String {
    lab.secrets()
        .get("provisioner.secret")
        .expect("secret")
        .to_string()
}

#[tokio::test]
async fn secret_grant_issues_a_token_with_consented_roles() {
    let lab = common::start().await;
    let id = client_id(&lab, "provisioner");
    let secret = provisioner_secret(&lab);
    let (status, body) = post_token(
        &lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let token = body["access_token"].as_str().expect("token");
    let claims = lab
        .state()
        .tokens
        .verify(token, Resource::Graph)
        .expect("token verifies for Graph");
    assert_eq!(claims.appid, id);
    assert!(
        claims
            .roles
            .contains(&"Application.ReadWrite.All".to_string())
    );
    assert!(
        claims
            .roles
            .contains(&"AppRoleAssignment.ReadWrite.All".to_string())
    );
    assert_eq!(lab.journal().count(Service::Token, "token"), 1);
}

#[tokio::test]
async fn lab_endpoint_origin_names_its_resource() {
    let lab = common::start().await;
    let id = client_id(&lab, "provisioner");
    let secret = provisioner_secret(&lab);
    let graph = lab.endpoints().graph.origin().ascii_serialization();
    let scope = format!("{graph}/.default");
    let (status, body) = post_token(
        &lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", &scope),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token");
    lab.state()
        .tokens
        .verify(token, Resource::Graph)
        .expect("a token for the lab's Graph origin is a Graph token");
}

#[tokio::test]
async fn secret_in_basic_auth_is_accepted() {
    let lab = common::start().await;
    let id = client_id(&lab, "provisioner");
    let response = client(&lab)
        .post(common::token_url(&lab))
        .basic_auth(&id, Some(provisioner_secret(&lab)))
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn wrong_secret_is_aadsts7000215() {
    let lab = common::start().await;
    let id = client_id(&lab, "provisioner");
    let (status, body) = post_token(
        &lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "not-the-secret"),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(aadsts_code(&body), 7_000_215);
    let text = body.to_string();
    assert!(
        !text.contains(&provisioner_secret(&lab)),
        "the answer never shows a secret"
    );
}

#[tokio::test]
async fn unknown_tenant_is_aadsts90002() {
    let lab = common::start().await;
    let url = format!(
        "{}{}/oauth2/v2.0/token",
        lab.endpoints().authority_host,
        Uuid::new_v4()
    );
    let response = client(&lab)
        .post(url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(aadsts_code(&body), 90_002);
}

#[tokio::test]
async fn tenant_domain_names_the_tenant_too() {
    let lab = common::start().await;
    let url = format!(
        "{}labexample.onmicrosoft.com/oauth2/v2.0/token",
        lab.endpoints().authority_host
    );
    let id = client_id(&lab, "provisioner");
    let response = client(&lab)
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", provisioner_secret(&lab).as_str()),
            ("scope", GRAPH_SCOPE),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unknown_client_is_aadsts700016() {
    let lab = common::start().await;
    let unknown = Uuid::new_v4().to_string();
    let (status, body) = post_token(
        &lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &unknown),
            ("client_secret", "whatever"),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(aadsts_code(&body), 700_016);
}

#[tokio::test]
async fn missing_parameters_are_aadsts900144() {
    let lab = common::start().await;
    let id = client_id(&lab, "provisioner");
    let secret = provisioner_secret(&lab);
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "grant_type",
            vec![
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", GRAPH_SCOPE),
            ],
        ),
        (
            "client_id",
            vec![
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
                ("scope", GRAPH_SCOPE),
            ],
        ),
        (
            "scope",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        ),
    ];
    for (missing, form) in cases {
        let (status, body) = post_token(&lab, &form).await;
        assert_eq!(status, 400, "without {missing}");
        assert_eq!(aadsts_code(&body), 900_144, "without {missing}");
        let description = body["error_description"].as_str().expect("description");
        assert!(
            description.contains(&format!("'{missing}'")),
            "{description}"
        );
    }
    let (status, body) = post_token(
        &lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(aadsts_code(&body), 7_000_218);
}

#[tokio::test]
async fn invalid_scopes_are_refused() {
    let lab = common::start().await;
    let id = client_id(&lab, "provisioner");
    let secret = provisioner_secret(&lab);
    for (scope, code, error) in [
        (
            "https://graph.microsoft.com/User.Read.All",
            1_002_012,
            "invalid_scope",
        ),
        (
            "https://unknown.example/.default",
            500_011,
            "invalid_resource",
        ),
        (
            "https://graph.microsoft.com/.default https://outlook.office365.com/.default",
            70_011,
            "invalid_scope",
        ),
    ] {
        let (status, body) = post_token(
            &lab,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", scope),
            ],
        )
        .await;
        assert_eq!(status, 400, "{scope}");
        assert_eq!(body["error"], error, "{scope}");
        assert_eq!(aadsts_code(&body), code, "{scope}");
    }
}

#[tokio::test]
async fn certificate_assertion_works_with_both_thumbprints() {
    let lab = common::start().await;
    let id = client_id(&lab, "manual-app");
    let pem = lab
        .secrets()
        .get("manual-app.pem")
        .expect("pem")
        .to_string();
    for (thumbprint, algorithm) in [
        (Thumbprint::Sha1, Algorithm::RS256),
        (Thumbprint::Sha256, Algorithm::RS256),
        (Thumbprint::Sha256, Algorithm::PS256),
    ] {
        let assertion = common::sign_assertion(
            &pem,
            &AssertionClaims::valid(&lab, &id),
            thumbprint,
            algorithm,
        );
        let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
        assert_eq!(status, 200, "{thumbprint:?} {algorithm:?}: {body}");
        let claims = lab
            .state()
            .tokens
            .verify(
                body["access_token"].as_str().expect("token"),
                Resource::Graph,
            )
            .expect("verifies");
        assert!(claims.roles.contains(&"Mail.ReadWrite".to_string()));
    }

    // The same certificate gets an Exchange Online token with full_access_as_app.
    let assertion = common::sign_assertion(
        &pem,
        &AssertionClaims::valid(&lab, &id),
        Thumbprint::Sha1,
        Algorithm::RS256,
    );
    let (status, body) = post_assertion(
        &lab,
        &id,
        &assertion,
        "https://outlook.office365.com/.default",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = lab
        .state()
        .tokens
        .verify(
            body["access_token"].as_str().expect("token"),
            Resource::ExchangeOnline,
        )
        .expect("verifies for Exchange Online");
    assert_eq!(claims.roles, vec!["full_access_as_app".to_string()]);
}

#[tokio::test]
async fn unknown_thumbprint_is_aadsts700027() {
    let lab = common::start().await;
    let id = client_id(&lab, "manual-app");
    let (other_pem, _) =
        siu_lab::world::generate_app_certificate("not registered", 2048).expect("certificate");
    let assertion = common::sign_assertion(
        &other_pem,
        &AssertionClaims::valid(&lab, &id),
        Thumbprint::Sha256,
        Algorithm::RS256,
    );
    let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(aadsts_code(&body), 700_027);
}

#[tokio::test]
async fn signature_by_another_key_is_aadsts700027() {
    let lab = common::start().await;
    let id = client_id(&lab, "manual-app");
    let registered = lab
        .secrets()
        .get("manual-app.pem")
        .expect("pem")
        .to_string();
    let (other_pem, _) = siu_lab::world::generate_app_certificate("other", 2048).expect("cert");
    // The other certificate's key signs, the header names the registered certificate.
    let (other_key, _) = common::split_pem(&other_pem);
    let (_, registered_cert) = common::split_pem(&registered);
    let forged = format!(
        "{other_key}\n-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_of(&registered_cert)
    );
    let assertion = common::sign_assertion(
        &forged,
        &AssertionClaims::valid(&lab, &id),
        Thumbprint::Sha1,
        Algorithm::RS256,
    );
    let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(status, 401);
    assert_eq!(aadsts_code(&body), 700_027);
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn assertion_outside_its_time_range_is_aadsts700024() {
    let lab = common::start().await;
    let id = client_id(&lab, "manual-app");
    let pem = lab
        .secrets()
        .get("manual-app.pem")
        .expect("pem")
        .to_string();
    let now = Utc::now();
    let expired = AssertionClaims {
        exp: (now - ChronoDuration::minutes(20)).timestamp(),
        nbf: (now - ChronoDuration::minutes(30)).timestamp(),
        ..AssertionClaims::valid(&lab, &id)
    };
    let future = AssertionClaims {
        exp: (now + ChronoDuration::minutes(40)).timestamp(),
        nbf: (now + ChronoDuration::minutes(30)).timestamp(),
        ..AssertionClaims::valid(&lab, &id)
    };
    for (name, claims) in [("expired", expired), ("not yet valid", future)] {
        let assertion = common::sign_assertion(&pem, &claims, Thumbprint::Sha256, Algorithm::RS256);
        let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
        assert_eq!(status, 401, "{name}");
        assert_eq!(aadsts_code(&body), 700_024, "{name}");
    }

    // A clock one minute behind stays inside the skew allowance.
    let slightly_late = AssertionClaims {
        exp: (now - ChronoDuration::minutes(1)).timestamp(),
        nbf: (now - ChronoDuration::minutes(11)).timestamp(),
        ..AssertionClaims::valid(&lab, &id)
    };
    let assertion =
        common::sign_assertion(&pem, &slightly_late, Thumbprint::Sha256, Algorithm::RS256);
    let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn assertion_audience_must_be_the_token_endpoint() {
    let lab = common::start().await;
    let id = client_id(&lab, "manual-app");
    let pem = lab
        .secrets()
        .get("manual-app.pem")
        .expect("pem")
        .to_string();
    let wrong = AssertionClaims {
        aud: "https://login.microsoftonline.com/common/oauth2/v2.0/token".into(),
        ..AssertionClaims::valid(&lab, &id)
    };
    let assertion = common::sign_assertion(&pem, &wrong, Thumbprint::Sha256, Algorithm::RS256);
    let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(status, 401);
    assert_eq!(aadsts_code(&body), 50_027);

    let v1 = AssertionClaims {
        aud: format!(
            "{}{}/oauth2/token",
            lab.endpoints().authority_host,
            common::tenant(&lab)
        ),
        ..AssertionClaims::valid(&lab, &id)
    };
    let assertion = common::sign_assertion(&pem, &v1, Thumbprint::Sha256, Algorithm::RS256);
    let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(status, 200, "the v1 audience is accepted: {body}");
}

#[tokio::test]
async fn assertion_issuer_and_subject_must_be_the_client() {
    let lab = common::start().await;
    let id = client_id(&lab, "manual-app");
    let pem = lab
        .secrets()
        .get("manual-app.pem")
        .expect("pem")
        .to_string();
    let other = Uuid::new_v4().to_string();
    let mismatched = AssertionClaims {
        sub: other.clone(),
        ..AssertionClaims::valid(&lab, &id)
    };
    let assertion = common::sign_assertion(&pem, &mismatched, Thumbprint::Sha256, Algorithm::RS256);
    let (_, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(aadsts_code(&body), 50_048);

    let foreign = AssertionClaims {
        iss: other.clone(),
        sub: other,
        ..AssertionClaims::valid(&lab, &id)
    };
    let assertion = common::sign_assertion(&pem, &foreign, Thumbprint::Sha256, Algorithm::RS256);
    let (_, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(aadsts_code(&body), 700_021);

    let without_jti = AssertionClaims {
        jti: None,
        ..AssertionClaims::valid(&lab, &id)
    };
    let assertion =
        common::sign_assertion(&pem, &without_jti, Thumbprint::Sha256, Algorithm::RS256);
    let (status, body) = post_assertion(&lab, &id, &assertion, GRAPH_SCOPE).await;
    assert_eq!(status, 401);
    assert_eq!(aadsts_code(&body), 50_027);
}

#[tokio::test]
async fn new_application_is_unknown_during_replication() {
    let lab = common::start().await;
    let app_id = Uuid::new_v4();
    let secret = "abc8Q~lab-replication-test-secret-000000".to_string();
    {
        let mut world = lab.state().write();
        let now = Utc::now();
        world.tenant.applications.push(Application {
            id: Uuid::new_v4(),
            app_id,
            display_name: "Fresh".into(),
            sign_in_audience: "AzureADMyOrg".into(),
            required_resource_access: serde_json::json!([]),
            key_credentials: Vec::new(),
            password_credentials: vec![PasswordCredential {
                key_id: Uuid::new_v4(),
                display_name: None,
                hint: "abc".into(),
                secret: secret.clone(),
                start: now,
                end: now + ChronoDuration::days(1),
            }],
            created: now,
        });
        world.tenant.service_principals.push(ServicePrincipal {
            id: Uuid::new_v4(),
            app_id,
            display_name: "Fresh".into(),
            app_roles: Vec::new(),
            created: now,
        });
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", &app_id.to_string()),
        ("client_secret", &secret),
        ("scope", GRAPH_SCOPE),
    ];
    lab.faults()
        .set_replication_delay(std::time::Duration::from_secs(3600));
    let (status, body) = post_token(&lab, &form).await;
    assert_eq!(status, 400);
    assert_eq!(aadsts_code(&body), 700_016);

    lab.faults()
        .set_replication_delay(std::time::Duration::ZERO);
    let (status, body) = post_token(&lab, &form).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn injected_faults_take_entra_shape() {
    let lab = common::start().await;
    let id = client_id(&lab, "provisioner");
    let secret = provisioner_secret(&lab);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("scope", GRAPH_SCOPE),
    ];
    lab.faults().add(FaultRule {
        service: Service::Token,
        operation: Some("token".into()),
        fault: FaultKind::TooManyRequests {
            retry_after_secs: 7,
        },
        probability: 1.0,
        remaining: Some(1),
    });
    let response = client(&lab)
        .post(common::token_url(&lab))
        .form(&form)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");

    lab.faults().add(FaultRule {
        service: Service::Token,
        operation: None,
        fault: FaultKind::Drop,
        probability: 1.0,
        remaining: Some(1),
    });
    let dropped = client(&lab)
        .post(common::token_url(&lab))
        .form(&form)
        .send()
        .await;
    assert!(dropped.is_err(), "the connection closes without an answer");

    let (status, _) = post_token(&lab, &form).await;
    assert_eq!(status, 200, "the rules were used up");
    assert_eq!(lab.journal().count(Service::Token, "token"), 3);
}

#[tokio::test]
async fn issued_tokens_verify_with_the_published_keys() {
    let lab = common::start().await;
    let http = client(&lab);
    let tenant = common::tenant(&lab);
    let configuration: serde_json::Value = http
        .get(format!(
            "{}{tenant}/v2.0/.well-known/openid-configuration",
            lab.endpoints().authority_host
        ))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(configuration["token_endpoint"], common::token_url(&lab));
    let jwks: serde_json::Value = http
        .get(configuration["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    let decoding = DecodingKey::from_rsa_components(
        key["n"].as_str().expect("n"),
        key["e"].as_str().expect("e"),
    )
    .expect("key");

    let token = common::secret_token(&lab, "provisioner").await;
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    validation.set_issuer(&[configuration["issuer"].as_str().expect("issuer")]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation)
        .expect("the token verifies with the published key");
    assert_eq!(data.claims["appid"], client_id(&lab, "provisioner"));
}

#[tokio::test]
async fn get_on_token_endpoint_is_aadsts900561() {
    let lab = common::start().await;
    let response = client(&lab)
        .get(common::token_url(&lab))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(aadsts_code(&body), 900_561);
}
