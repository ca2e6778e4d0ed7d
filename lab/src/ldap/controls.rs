//! Request controls: which ones the lab honours, and the rule of RFC 4511 section 4.1.11
//! for the others (a critical control the server does not support fails the operation, a
//! non-critical one is ignored).

use ldap3_proto::control::LdapControl;

use super::diagnostics::{self, Failure};
use super::rootdse::{
    DOMAIN_SCOPE, LAZY_COMMIT, PAGED_RESULTS, PERMISSIVE_MODIFY, RANGE_RETRIEVAL_NOERR, SD_FLAGS,
    SEARCH_OPTIONS, SHOW_DELETED, SORT, TREE_DELETE,
};

/// The simple paged results control of a search request (RFC 2696).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageRequest {
    /// Entries per page the client asks for.
    pub size: i64,
    /// Empty on the first page, then the cookie of the previous page.
    pub cookie: Vec<u8>,
}

/// The first key of a server-side sort request (RFC 2891); AD sorts on one key only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SortKey {
    /// The attribute to sort on.
    pub attribute: String,
    /// Descending order.
    pub reverse: bool,
}

/// The controls of one request that change what the lab does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RequestControls {
    /// Simple paged results.
    pub page: Option<PageRequest>,
    /// Server-side sort.
    pub sort: Option<SortKey>,
    /// LDAP_SERVER_RANGE_RETRIEVAL_NOERR_OID.
    pub range_no_error: bool,
    /// LDAP_SERVER_TREE_DELETE_OID.
    pub tree_delete: bool,
    /// LDAP_SERVER_PERMISSIVE_MODIFY_OID.
    pub permissive_modify: bool,
}

impl RequestControls {
    /// Reads the controls of a request; fails with `unavailableCriticalExtension` when a
    /// critical control is one the lab does not support.
    pub fn parse(controls: &[LdapControl]) -> Result<RequestControls, Failure> {
        let mut parsed = RequestControls::default();
        for control in controls {
            match control {
                LdapControl::SimplePagedResults { size, cookie } => {
                    parsed.page = Some(PageRequest {
                        size: *size,
                        cookie: cookie.clone(),
                    });
                }
                LdapControl::ServerSort { sort_requests } => {
                    parsed.sort = sort_requests.first().map(|key| SortKey {
                        attribute: key.attribute_name.clone(),
                        reverse: key.reverse_order,
                    });
                }
                LdapControl::ShowDeleted { .. }
                | LdapControl::SdFlags { .. }
                | LdapControl::SearchOptions { .. } => {}
                LdapControl::Unknown {
                    oid, criticality, ..
                } => match oid.as_str() {
                    RANGE_RETRIEVAL_NOERR => parsed.range_no_error = true,
                    TREE_DELETE => parsed.tree_delete = true,
                    PERMISSIVE_MODIFY => parsed.permissive_modify = true,
                    PAGED_RESULTS | SORT | SHOW_DELETED | SD_FLAGS | SEARCH_OPTIONS
                    | DOMAIN_SCOPE | LAZY_COMMIT => {}
                    _ if *criticality => return Err(diagnostics::unsupported_critical_control()),
                    _ => {}
                },
                LdapControl::ManageDsaIT { criticality }
                | LdapControl::PasswordPolicyRequest { criticality }
                | LdapControl::ExtendedDn { criticality, .. }
                | LdapControl::SyncRequest { criticality, .. } => {
                    if *criticality {
                        return Err(diagnostics::unsupported_critical_control());
                    }
                }
                // DirSync is critical by definition, and the rest are response controls a
                // client has no business sending.
                LdapControl::AdDirsync { .. }
                | LdapControl::SyncState { .. }
                | LdapControl::SyncDone { .. }
                | LdapControl::ServerSortResult { .. } => {
                    return Err(diagnostics::unsupported_critical_control());
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::control::ServerSortRequet;

    #[test]
    fn honoured_controls_are_read() {
        let controls = RequestControls::parse(&[
            LdapControl::SimplePagedResults {
                size: 500,
                cookie: Vec::new(),
            },
            LdapControl::ServerSort {
                sort_requests: vec![ServerSortRequet {
                    attribute_name: "cn".into(),
                    ordering_rule: None,
                    reverse_order: true,
                }],
            },
            LdapControl::Unknown {
                oid: RANGE_RETRIEVAL_NOERR.into(),
                criticality: true,
                value: None,
            },
        ])
        .expect("supported controls");
        assert_eq!(controls.page.map(|p| p.size), Some(500));
        assert_eq!(
            controls.sort,
            Some(SortKey {
                attribute: "cn".into(),
                reverse: true
            })
        );
        assert!(controls.range_no_error);
    }

    #[test]
    fn unknown_critical_control_fails() {
        let unknown = |criticality| LdapControl::Unknown {
            oid: "1.2.840.113556.1.4.528".into(),
            criticality,
            value: None,
        };
        assert!(RequestControls::parse(&[unknown(false)]).is_ok());
        let failure = RequestControls::parse(&[unknown(true)]).expect_err("critical");
        assert_eq!(
            failure.code,
            ldap3_proto::proto::LdapResultCode::UnavailableCriticalExtension
        );
    }
}
