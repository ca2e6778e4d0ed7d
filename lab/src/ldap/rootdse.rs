//! The root DSE, which AD serves to anonymous clients: naming contexts, host names,
//! supported controls, capabilities and policies.
//!
//! See <https://learn.microsoft.com/openspecs/windows_protocols/ms-adts/96f7b086-1ca3-4764-9a08-33f8f7a543db>
//! for the attributes AD publishes.

use chrono::Utc;
use ldap3_proto::proto::{LdapPartialAttribute, LdapSearchResultEntry};

use super::entries::generalized_time;
use crate::world::directory::Directory;

/// LDAP_SERVER_PAGED_RESULT_OID.
pub(super) const PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
/// LDAP_SERVER_SD_FLAGS_OID; accepted and ignored, since the lab has no security
/// descriptors.
pub(super) const SD_FLAGS: &str = "1.2.840.113556.1.4.801";
/// LDAP_SERVER_SORT_OID.
pub(super) const SORT: &str = "1.2.840.113556.1.4.473";
/// LDAP_SERVER_RESP_SORT_OID.
pub(super) const SORT_RESPONSE: &str = "1.2.840.113556.1.4.474";
/// LDAP_SERVER_SHOW_DELETED_OID; accepted, and the lab has no deleted objects to show.
pub(super) const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";
/// LDAP_SERVER_LAZY_COMMIT_OID; accepted, every write is immediate.
pub(super) const LAZY_COMMIT: &str = "1.2.840.113556.1.4.619";
/// LDAP_SERVER_RANGE_OPTION_OID: not a control but AD's announcement of range retrieval.
pub(super) const RANGE_OPTION: &str = "1.2.840.113556.1.4.802";
/// LDAP_SERVER_TREE_DELETE_OID.
pub(super) const TREE_DELETE: &str = "1.2.840.113556.1.4.805";
/// LDAP_SERVER_DOMAIN_SCOPE_OID; accepted, the lab never sends referrals.
pub(super) const DOMAIN_SCOPE: &str = "1.2.840.113556.1.4.1339";
/// LDAP_SERVER_SEARCH_OPTIONS_OID; accepted, the lab has one domain.
pub(super) const SEARCH_OPTIONS: &str = "1.2.840.113556.1.4.1340";
/// LDAP_SERVER_PERMISSIVE_MODIFY_OID: adding a present value or deleting an absent one
/// succeeds.
pub(super) const PERMISSIVE_MODIFY: &str = "1.2.840.113556.1.4.1413";
/// LDAP_SERVER_RANGE_RETRIEVAL_NOERR_OID: a range that starts past the last value returns
/// no values instead of an error.
pub(super) const RANGE_RETRIEVAL_NOERR: &str = "1.2.840.113556.1.4.1948";

/// Controls the lab honours, announced in `supportedControl`.
///
/// NOTE: AD announces about 40 controls. The lab announces only these, so that a client
/// that checks `supportedControl` before using a control (virtual list view, DirSync, change
/// notification) learns that the lab does not have it.
pub(super) const SUPPORTED_CONTROLS: &[&str] = &[
    PAGED_RESULTS,
    SD_FLAGS,
    SORT,
    SORT_RESPONSE,
    SHOW_DELETED,
    LAZY_COMMIT,
    RANGE_OPTION,
    TREE_DELETE,
    DOMAIN_SCOPE,
    SEARCH_OPTIONS,
    PERMISSIVE_MODIFY,
    RANGE_RETRIEVAL_NOERR,
];

/// The StartTLS extended operation (RFC 4511 section 4.14).
pub(super) const START_TLS: &str = "1.3.6.1.4.1.1466.20037";
/// The "Who am I?" extended operation (RFC 4532).
pub(super) const WHO_AM_I: &str = "1.3.6.1.4.1.4203.1.11.3";

/// Builds the root DSE with the requested attributes: all of them for an empty list or `*`.
pub(super) fn entry(directory: &Directory, requested: &[String]) -> LdapSearchResultEntry {
    let all = requested.is_empty() || requested.iter().any(|a| a == "*");
    let attributes = attributes(directory)
        .into_iter()
        .filter(|(name, _)| all || requested.iter().any(|r| r.eq_ignore_ascii_case(name)))
        .map(|(name, values)| LdapPartialAttribute {
            atype: name.to_string(),
            vals: values.into_iter().map(String::into_bytes).collect(),
        })
        .collect();
    LdapSearchResultEntry {
        dn: String::new(),
        attributes,
    }
}

fn attributes(directory: &Directory) -> Vec<(&'static str, Vec<String>)> {
    let base = &directory.base_dn;
    let configuration = format!("CN=Configuration,{base}");
    let host = format!("dc1.{}", directory.domain);
    let server = format!("CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,{configuration}");
    let one = |value: String| vec![value];
    // AD lists the names of its LDAP policies here and keeps their values in the
    // configuration partition. The lab lists the policies it applies (see the constants in
    // the parent module).
    let policies = [
        "MaxPageSize",
        "MaxValRange",
        "MaxReceiveBuffer",
        "MaxResultSetsPerConn",
        "MaxConnIdleTime",
        "MaxConnections",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();

    vec![
        ("currentTime", one(generalized_time(Utc::now()))),
        (
            "subschemaSubentry",
            one(format!("CN=Aggregate,CN=Schema,{configuration}")),
        ),
        ("dsServiceName", one(format!("CN=NTDS Settings,{server}"))),
        // TODO: the configuration and schema partitions listed here are not served, so
        // searches below them get noSuchObject.
        (
            "namingContexts",
            vec![
                base.clone(),
                configuration.clone(),
                format!("CN=Schema,{configuration}"),
            ],
        ),
        ("defaultNamingContext", one(base.clone())),
        ("rootDomainNamingContext", one(base.clone())),
        ("configurationNamingContext", one(configuration.clone())),
        (
            "schemaNamingContext",
            one(format!("CN=Schema,{configuration}")),
        ),
        ("serverName", one(server.clone())),
        (
            "supportedControl",
            SUPPORTED_CONTROLS.iter().map(|c| c.to_string()).collect(),
        ),
        ("supportedLDAPVersion", vec!["3".into(), "2".into()]),
        ("supportedLDAPPolicies", policies),
        (
            "supportedSASLMechanisms",
            ["GSSAPI", "GSS-SPNEGO", "EXTERNAL", "DIGEST-MD5"]
                .iter()
                .map(|m| m.to_string())
                .collect(),
        ),
        ("dnsHostName", one(host.clone())),
        (
            "ldapServiceName",
            one(format!(
                "{}:dc1$@{}",
                directory.domain,
                directory.domain.to_ascii_uppercase()
            )),
        ),
        (
            "supportedCapabilities",
            [
                // LDAP_CAP_ACTIVE_DIRECTORY_OID, _V51_, _LDAP_INTEG_, _V60_, _V61_R2_, _W8_.
                "1.2.840.113556.1.4.800",
                "1.2.840.113556.1.4.1670",
                "1.2.840.113556.1.4.1791",
                "1.2.840.113556.1.4.1935",
                "1.2.840.113556.1.4.2080",
                "1.2.840.113556.1.4.2237",
            ]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        ),
        (
            "supportedExtension",
            vec![START_TLS.into(), WHO_AM_I.into()],
        ),
        ("isSynchronized", one("TRUE".into())),
        ("isGlobalCatalogReady", one("TRUE".into())),
        // Windows Server 2016 functional levels.
        ("domainFunctionality", one("7".into())),
        ("forestFunctionality", one("7".into())),
        ("domainControllerFunctionality", one("7".into())),
    ]
}
