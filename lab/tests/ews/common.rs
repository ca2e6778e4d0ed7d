//! Starting a lab for EWS tests, SOAP request helpers and schema validation of captures.

use std::path::{Path, PathBuf};
use std::process::Command;

use siu_lab::ews::xml::{self, Element};
use siu_lab::world::exchange::{IMPERSONATION_ROLE, RoleAssignment};
use siu_lab::{Fixture, Lab, LabConfig};
use uuid::Uuid;

pub const NS: &str = r#"xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#;

/// Starts the default organization, capturing EWS bodies into `capture` when given.
pub async fn start(capture: Option<&Path>) -> Lab {
    let mut config = LabConfig::new(Fixture::default_org());
    config.capture_dir = capture.map(Path::to_path_buf);
    Lab::start(config).await.expect("lab starts")
}

/// Builds a client that trusts the lab's CA and keeps one connection per host.
pub fn client(lab: &Lab) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(lab.ca_pem().as_bytes()).expect("lab CA parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .pool_max_idle_per_host(1)
        .http1_only()
        .build()
        .expect("client builds")
}

/// Returns the password the lab generated for a user.
pub fn password(lab: &Lab, upn: &str) -> String {
    lab.state()
        .read()
        .directory
        .user_by_upn(upn)
        .and_then(|u| u.password.clone())
        .expect("the user has a password")
}

/// Grants ApplicationImpersonation to an account, optionally limited to a scope.
pub fn grant_impersonation(lab: &Lab, sam: &str, scope: Option<&str>) {
    let mut world = lab.state().write();
    let assignee = world.directory.by_sam(sam).expect("the account exists");
    world.exchange.role_assignments.push(RoleAssignment {
        id: Uuid::new_v4(),
        name: format!("ApplicationImpersonation-{sam}"),
        role: IMPERSONATION_ROLE.into(),
        assignee,
        recipient_scope: scope.map(str::to_string),
        enabled: true,
        created: chrono::Utc::now(),
    });
}

/// Builds a SOAP envelope with `Exchange2016` and, when given, impersonation by primary SMTP address.
pub fn envelope(impersonate: Option<&str>, body: &str) -> String {
    let impersonation = impersonate
        .map(|a| format!("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{a}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope {NS}><s:Header><t:RequestServerVersion Version="Exchange2016"/>{impersonation}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

/// How a request authenticates.
#[derive(Clone)]
pub enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

/// A response: status, headers and body text.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn xml(&self) -> Element {
        xml::parse(&self.text).unwrap_or_else(|e| panic!("answer is not XML ({e}): {}", self.text))
    }

    /// Returns the first response message of the body.
    pub fn message(&self) -> Element {
        let root = self.xml();
        let body = root.child("Body").expect("Body");
        let response = body.children.first().expect("a response element");
        response
            .child("ResponseMessages")
            .and_then(|m| m.children.first())
            .cloned()
            .unwrap_or_else(|| panic!("no response message in {}", self.text))
    }

    /// Returns the response code of the first message, or the fault's code.
    pub fn code(&self) -> String {
        let root = self.xml();
        let body = root.child("Body").expect("Body");
        if let Some(fault) = body.child("Fault") {
            return fault
                .path(&["detail", "ResponseCode"])
                .map(|c| c.text.clone())
                .expect("fault has a ResponseCode");
        }
        self.message()
            .child_text("ResponseCode")
            .unwrap_or_default()
            .to_string()
    }
}

pub async fn post(client: &reqwest::Client, url: &url::Url, auth: &Auth, body: String) -> Answer {
    let mut request = client
        .post(url.clone())
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body);
    request = match auth {
        Auth::None => request,
        Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        Auth::Bearer(token) => request.bearer_auth(token),
    };
    let response = request.send().await.expect("request is answered");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body reads");
    Answer {
        status,
        headers,
        text,
    }
}

/// Grants impersonation to the on-premises service account and returns its credentials.
pub fn service_account(lab: &Lab) -> Auth {
    grant_impersonation(lab, "svc-siu", None);
    Auth::Basic(
        "LAB\\svc-siu".into(),
        lab.secrets()
            .get("svc-siu.password")
            .expect("svc-siu password")
            .to_string(),
    )
}

/// Collects every element with this local name, depth first.
pub fn all_named<'a>(element: &'a Element, name: &str, found: &mut Vec<&'a Element>) {
    if element.name == name {
        found.push(element);
    }
    for child in &element.children {
        all_named(child, name, found);
    }
}

pub fn first_named<'a>(element: &'a Element, name: &str) -> Option<&'a Element> {
    let mut found = Vec::new();
    all_named(element, name, &mut found);
    found.first().copied()
}

/// Returns the schema folder beside the repository, when it exists.
pub fn schema_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/ews-schema");
    dir.join("soap-ews-wrapper.xsd").is_file().then_some(dir)
}

/// Validates every captured body in `dir` against the Exchange 2016 schema with xmllint and
/// checks that each Body's first element is an EWS message or a SOAP fault. Returns the
/// number of files checked; skips with a message when the schema folder is absent.
pub fn validate_captures(dir: &Path) -> usize {
    let Some(schema) = schema_dir() else {
        eprintln!("skipping schema validation: ../shared/reference/ews-schema is absent");
        return 0;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("capture directory exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no EWS message was captured in {}",
        dir.display()
    );

    let output = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(schema.join("soap-ews-wrapper.xsd"))
        .args(&files)
        .output()
        .expect("xmllint runs (install libxml2-utils: bash scripts/setup.sh)");
    let report = String::from_utf8_lossy(&output.stderr);
    let failed: Vec<&str> = report
        .lines()
        .filter(|l| !l.ends_with(" validates"))
        .collect();
    assert!(
        output.status.success() && failed.is_empty(),
        "schema validation failed:\n{report}"
    );

    let messages =
        std::fs::read_to_string(schema.join("messages.xsd")).expect("messages.xsd reads");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("capture reads");
        let root = xml::parse(&text).expect("capture is XML");
        let first = root
            .child("Body")
            .and_then(|b| b.children.first())
            .unwrap_or_else(|| panic!("{} has no Body element", file.display()));
        // The SOAP schema validates a Fault strictly; any other element must be one that
        // messages.xsd declares, because the envelope accepts unknown elements laxly.
        let declared = first.name == "Fault"
            || messages.contains(&format!("<xs:element name=\"{}\"", first.name));
        assert!(
            declared,
            "{}: Body element '{}' is not an EWS message",
            file.display(),
            first.name
        );
    }
    files.len()
}
