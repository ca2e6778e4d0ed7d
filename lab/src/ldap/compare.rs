//! Compare: whether an entry's attribute has a value, by the attribute's comparison rule.

use ldap3_proto::proto::{LdapCompareRequest, LdapResult, LdapResultCode};

use super::diagnostics::{self, Failure};
use super::dn::Dn;
use super::entries::{self, Entry};
use super::filter::{Filter, Matcher};
use super::session::Session;
use crate::LabState;

/// Handles a compare request: `compareTrue` or `compareFalse`, or the failure.
pub(super) fn handle(
    state: &LabState,
    session: &Session,
    request: &LdapCompareRequest,
) -> LdapResult {
    match compare(state, session, request) {
        Ok(true) => result(LdapResultCode::CompareTrue),
        Ok(false) => result(LdapResultCode::CompareFalse),
        Err(failure) => failure.into_result(),
    }
}

fn compare(
    state: &LabState,
    session: &Session,
    request: &LdapCompareRequest,
) -> Result<bool, Failure> {
    session.require_bind()?;
    let dn = Dn::parse(&request.dn).map_err(|()| diagnostics::invalid_dn(&request.dn))?;
    let world = state.read();
    let directory = &world.directory;
    let entry = Entry::find(directory, &dn.key())
        .ok_or_else(|| diagnostics::no_such_object(&entries::best_match(directory, &dn)))?;
    let filter = Filter::Equality(request.atype.clone(), request.val.clone());
    Ok(Matcher::new(directory, &filter).matches(&entry))
}

fn result(code: LdapResultCode) -> LdapResult {
    let mut result = diagnostics::success();
    result.code = code;
    result
}
