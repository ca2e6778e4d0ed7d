//! Entra ID: app-only tokens and the Microsoft Graph client.
//!
//! [`credential::AppCredential`] signs an application in with a client secret or a
//! certificate and caches its tokens. The Graph client reads and changes the directory
//! objects that the reconciler manages (applications, service principals, app role
//! assignments, users and groups) and, in [`mail`], the Sent Items of Exchange Online
//! mailboxes for the update loop.

pub mod app_role_assignments;
pub mod applications;
pub mod certificate;
pub mod credential;
pub mod graph;
pub mod groups;
pub mod mail;
pub mod odata;
pub mod organization;
pub mod replication;
pub mod service_principals;
pub mod users;

pub use certificate::{
    CertificateError, CertificateKey, GeneratedCertificate, generate_certificate,
};
pub use credential::{
    AppCredential, AppCredentialConfig, AppIdentity, ClientSecretOrCertificate, CredentialError,
    EntraFailure, TokenError, TokenRetry, default_scope,
};
pub use graph::{ApiFailure, GraphClient, GraphClientOptions, GraphError, GraphRetry, GraphTarget};
pub use replication::{ReplicationCallback, ReplicationPolicy, ReplicationWait};
