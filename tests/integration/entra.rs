//! The Entra credentials and the Graph client against the lab's token endpoint and Graph.
//!
//! Each test first checks that the lab serves the endpoint it needs. While the lab returns
//! 404 there, the test prints why and returns without failing.

use std::sync::Arc;
use std::time::Duration;

use siu_lab::{Fixture, Lab, LabConfig};
use siuctl::http::{CaMode, HttpSettings};
use siuctl::providers::entra::applications::NewApplication;
use siuctl::providers::entra::{
    AppCredential, AppCredentialConfig, CertificateKey, ClientSecretOrCertificate, GraphClient,
    GraphClientOptions, ReplicationPolicy, TokenError, TokenRetry, default_scope,
};
use siuctl::providers::exchange::ews::Secret;
use url::Url;

/// A running lab with its CA written to a file for the HTTP settings.
struct LabHandle {
    lab: Lab,
    http: HttpSettings,
    _ca_dir: tempfile::TempDir,
}

async fn start_lab() -> LabHandle {
    let mut config = LabConfig::new(Fixture::default_org());
    config.replication_delay = Duration::from_secs(2);
    let lab = Lab::start(config).await.expect("the lab should start");
    let ca_dir = tempfile::tempdir().expect("temporary directory");
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, lab.ca_pem()).expect("CA file");
    let http = HttpSettings {
        ca_file: Some(ca_file),
        ca_mode: CaMode::ReplaceSystemRoots,
        ..HttpSettings::default()
    };
    LabHandle {
        lab,
        http,
        _ca_dir: ca_dir,
    }
}

impl LabHandle {
    fn tenant_id(&self) -> String {
        self.lab.state().read().tenant.id.to_string()
    }

    fn client_id(&self, display_name: &str) -> String {
        let world = self.lab.state().read();
        world
            .tenant
            .applications
            .iter()
            .find(|application| application.display_name == display_name)
            .unwrap_or_else(|| panic!("the fixture should have application {display_name:?}"))
            .app_id
            .to_string()
    }

    fn credential(
        &self,
        client_id: String,
        credential: ClientSecretOrCertificate,
    ) -> Arc<AppCredential> {
        AppCredential::new(AppCredentialConfig {
            tenant_id: self.tenant_id(),
            client_id,
            credential,
            authority_host: self.lab.endpoints().authority_host.clone(),
            http: self.http.clone(),
            retry: TokenRetry {
                max_retries: 0,
                max_elapsed: Duration::ZERO,
            },
        })
        .expect("the credential should build")
    }

    fn provisioner(&self) -> Arc<AppCredential> {
        let secret = self
            .lab
            .secrets()
            .get("provisioner.secret")
            .expect("the lab should publish the provisioner secret");
        self.credential(
            self.client_id("siuctl provisioner"),
            ClientSecretOrCertificate::Secret(Secret::new(secret)),
        )
    }

    fn graph(&self, credential: Arc<AppCredential>) -> GraphClient {
        let options = GraphClientOptions {
            replication: ReplicationPolicy {
                timeout: Duration::from_secs(30),
                initial_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
            },
            ..GraphClientOptions::default()
        };
        GraphClient::new(&self.lab.endpoints().graph, credential, &self.http, options)
            .expect("the Graph client should build")
    }

    /// Tells whether the lab serves `url`: anything but 404 counts.
    async fn serves(&self, url: Url, endpoint_name: &str) -> bool {
        let client = self.http.build().expect("HTTP client");
        let status = client
            .post(url.clone())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map(|response| response.status().as_u16());
        if matches!(status, Ok(404)) {
            eprintln!(
                "skipped: the lab does not serve the {endpoint_name} yet ({url} returned 404)"
            );
            return false;
        }
        true
    }

    async fn serves_tokens(&self) -> bool {
        let url = self
            .lab
            .endpoints()
            .authority_host
            .join(&format!("{}/oauth2/v2.0/token", self.tenant_id()))
            .expect("token URL");
        self.serves(url, "token endpoint").await
    }

    async fn serves_graph(&self) -> bool {
        let url = self
            .lab
            .endpoints()
            .graph
            .join("v1.0/organization")
            .expect("Graph URL");
        self.serves_tokens().await && self.serves(url, "Graph API").await
    }
}

#[tokio::test]
async fn provisioner_secret_gets_a_graph_token() {
    let lab = start_lab().await;
    if !lab.serves_tokens().await {
        return;
    }
    let credential = lab.provisioner();
    let scope = default_scope(&lab.lab.endpoints().graph);
    let token = credential
        .token(&scope)
        .await
        .expect("the provisioner should get a token");
    assert!(!token.token.secret().is_empty());
}

#[tokio::test]
async fn certificate_credential_gets_a_token() {
    let lab = start_lab().await;
    let pem = lab
        .lab
        .secrets()
        .get("manual-app.pem")
        .expect("the lab should publish the manual application's certificate");
    let key = CertificateKey::from_pem(pem.as_bytes(), "manual-app.pem")
        .expect("the lab's certificate key should load");
    if !lab.serves_tokens().await {
        return;
    }

    let credential = lab.credential(
        lab.client_id("Sent Items Update (registered by hand)"),
        ClientSecretOrCertificate::Certificate(Arc::new(key)),
    );
    let scope = default_scope(&lab.lab.endpoints().graph);
    credential
        .token(&scope)
        .await
        .expect("the certificate assertion should be accepted");
}

#[tokio::test]
async fn wrong_secret_is_reported_as_such() {
    let lab = start_lab().await;
    if !lab.serves_tokens().await {
        return;
    }
    let credential = lab.credential(
        lab.client_id("siuctl provisioner"),
        ClientSecretOrCertificate::Secret(Secret::new("not-the-secret")),
    );
    let scope = default_scope(&lab.lab.endpoints().graph);
    let error = credential
        .token(&scope)
        .await
        .expect_err("a wrong secret should fail");
    assert!(
        matches!(error, TokenError::InvalidClientSecret { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("not-the-secret"), "{error}");
}

#[tokio::test]
async fn provisioner_registers_an_application() {
    let lab = start_lab().await;
    if !lab.serves_graph().await {
        return;
    }
    let graph = lab.graph(lab.provisioner());

    // 1. Create the application; reads of it wait out the lab's replication delay.
    let name = "Sent Items Update (test's)";
    let created = graph
        .create_application(&NewApplication::sent_items_update(name))
        .await
        .expect("the provisioner may create applications");
    let read = graph
        .get_application(&created.id)
        .await
        .expect("the new application should appear");
    assert_eq!(read.app_id, created.app_id);
    let found = graph
        .find_applications_by_display_name(name)
        .await
        .expect("the filter with a quote should work");
    assert!(found.iter().any(|application| application.id == created.id));

    // 2. A client secret for it.
    let added = graph
        .add_password(&created.id, "siuctl", None)
        .await
        .expect("adding a secret should work");
    assert!(!added.secret_text.expose().is_empty());

    // 3. Its service principal and admin consent for full_access_as_app.
    let principal = graph
        .create_service_principal(&created.app_id)
        .await
        .expect("the service principal should be created");
    let exchange = graph
        .find_service_principal_by_app_id(
            siuctl::providers::entra::applications::EXCHANGE_ONLINE_APP_ID,
        )
        .await
        .expect("reading resource principals should work")
        .expect("the lab tenant should have Exchange Online");
    let role = exchange
        .app_role("full_access_as_app")
        .expect("Exchange Online should offer full_access_as_app");
    graph
        .create_app_role_assignment(&principal.id, &exchange.id, role.id)
        .await
        .expect("granting the app role should work");
    let assignments = graph
        .list_app_role_assignments(&principal.id)
        .await
        .expect("listing assignments should work");
    assert!(
        assignments
            .iter()
            .any(|assignment| assignment.app_role_id == role.id)
    );
}

#[tokio::test]
async fn application_without_rights_is_denied() {
    let lab = start_lab().await;
    if !lab.serves_graph().await {
        return;
    }
    let secret = lab
        .lab
        .secrets()
        .get("no-rights.secret")
        .expect("the lab should publish the no-rights secret");
    let credential = lab.credential(
        lab.client_id("Reporting tool"),
        ClientSecretOrCertificate::Secret(Secret::new(secret)),
    );
    let graph = lab.graph(credential);
    let error = graph
        .create_application(&NewApplication::sent_items_update("Not allowed"))
        .await
        .expect_err("an application without Application.ReadWrite.All should be denied");
    assert!(error.is_authorization_denied(), "{error:?}");
}
