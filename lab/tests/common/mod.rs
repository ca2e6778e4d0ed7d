//! Helpers shared by the token endpoint and Graph tests: starting a lab, a client that trusts
//! its CA, and tokens from client secrets and certificate assertions.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use siu_lab::{Fixture, Lab, LabConfig};

/// Starts a lab with the default organization.
pub async fn start() -> Lab {
    Lab::start(LabConfig::new(Fixture::default_org()))
        .await
        .expect("lab starts")
}

/// Builds a client that trusts the lab's CA.
pub fn client(lab: &Lab) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(lab.ca_pem().as_bytes()).expect("lab CA parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client builds")
}

/// Returns the tenant ID of the default organization.
pub fn tenant(lab: &Lab) -> String {
    lab.state().read().tenant.id.to_string()
}

/// Builds the v2 token endpoint URL.
pub fn token_url(lab: &Lab) -> String {
    format!(
        "{}{}/oauth2/v2.0/token",
        lab.endpoints().authority_host,
        tenant(lab)
    )
}

/// Builds a Graph v1.0 URL below the lab's Graph root.
pub fn graph_url(lab: &Lab, path: &str) -> String {
    format!(
        "{}v1.0/{}",
        lab.endpoints().graph,
        path.trim_start_matches('/')
    )
}

/// The client ID the lab generated for a fixture application.
pub fn client_id(lab: &Lab, key: &str) -> String {
    lab.secrets()
        .get(&format!("{key}.client-id"))
        .expect("client ID file")
        .to_string()
}

/// Posts a token request form and returns the status and JSON body.
pub async fn post_token(lab: &Lab, form: &[(&str, &str)]) -> (u16, Value) {
    let response = client(lab)
        .post(token_url(lab))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

/// A Graph token for a fixture application with a client secret.
pub async fn secret_token(lab: &Lab, key: &str) -> String {
    let id = client_id(lab, key);
    let secret = lab
        .secrets()
        .get(&format!("{key}.secret"))
        .expect("secret file")
        .to_string();
    let (status, body) = post_token(
        lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200, "token for {key}: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Splits a PEM file the lab wrote (key, then certificate) into the private key PEM and the
/// certificate DER.
pub fn split_pem(pem: &str) -> (String, Vec<u8>) {
    let key_end = pem
        .find("-----END PRIVATE KEY-----")
        .expect("private key in PEM")
        + "-----END PRIVATE KEY-----".len();
    let key = pem[..key_end].to_string();
    let certificate = pem_der(&pem[key_end..], "CERTIFICATE");
    (key, certificate)
}

/// Decodes the first PEM block with `label`.
pub fn pem_der(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).expect("PEM begin") + begin.len();
    let stop = pem[start..].find(&end).expect("PEM end") + start;
    let body: String = pem[start..stop].split_whitespace().collect();
    STANDARD.decode(body).expect("PEM base64")
}

/// Which thumbprint header an assertion names its certificate with.
#[derive(Debug, Clone, Copy)]
pub enum Thumbprint {
    /// `x5t`, SHA-1.
    Sha1,
    /// `x5t#S256`, SHA-256.
    Sha256,
}

/// The claims of a client assertion, changeable per test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AssertionClaims {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl AssertionClaims {
    /// Valid claims for `client_id` at the lab's v2 token endpoint, valid for ten minutes.
    pub fn valid(lab: &Lab, client_id: &str) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            aud: token_url(lab),
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            exp: now + 600,
            nbf: now,
            jti: Some(uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// Signs a client assertion with the key in `pem`, naming the certificate by `thumbprint`.
pub fn sign_assertion(
    pem: &str,
    claims: &AssertionClaims,
    thumbprint: Thumbprint,
    algorithm: Algorithm,
) -> String {
    let (key, certificate) = split_pem(pem);
    let mut header = Header::new(algorithm);
    header.typ = Some("JWT".into());
    match thumbprint {
        Thumbprint::Sha1 => header.x5t = Some(URL_SAFE_NO_PAD.encode(Sha1::digest(&certificate))),
        Thumbprint::Sha256 => {
            header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&certificate)))
        }
    }
    let key = EncodingKey::from_rsa_pem(key.as_bytes()).expect("RSA private key");
    jsonwebtoken::encode(&header, claims, &key).expect("assertion signs")
}

/// Posts a certificate assertion for `client_id` and `scope`.
pub async fn post_assertion(
    lab: &Lab,
    client_id: &str,
    assertion: &str,
    scope: &str,
) -> (u16, Value) {
    post_token(
        lab,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
    .await
}

/// A Graph token for `manual-app`, the fixture application with a certificate.
pub async fn certificate_token(lab: &Lab) -> String {
    let id = client_id(lab, "manual-app");
    let pem = lab
        .secrets()
        .get("manual-app.pem")
        .expect("certificate")
        .to_string();
    let assertion = sign_assertion(
        &pem,
        &AssertionClaims::valid(lab, &id),
        Thumbprint::Sha256,
        Algorithm::PS256,
    );
    let (status, body) =
        post_assertion(lab, &id, &assertion, "https://graph.microsoft.com/.default").await;
    assert_eq!(status, 200, "certificate token: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Checks the AADSTS error shape and returns the AADSTS number.
pub fn aadsts_code(body: &Value) -> u64 {
    for field in [
        "error",
        "error_description",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    ] {
        assert!(body[field].is_string(), "field {field} missing in {body}");
    }
    let code = body["error_codes"][0].as_u64().expect("error_codes");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(&format!("AADSTS{code}:")),
        "description starts with the code: {description}"
    );
    code
}
