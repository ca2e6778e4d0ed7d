//! Simple bind as AD accepts it: the account named by UPN, DN, `DOMAIN\user` or bare
//! sAMAccountName, anonymous with an empty name and password, and AD's diagnostics for a
//! wrong password, a disabled account and a password that must be changed.

use ldap3_proto::proto::{LdapBindCred, LdapBindRequest, LdapResult};

use super::diagnostics::{self, BindRejection, Failure};
use super::dn::Dn;
use super::entries::Entry;
use super::session::{Principal, Session};
use crate::LabState;

/// Handles a bind request and returns its result. A failed bind leaves the connection
/// anonymous, as RFC 4511 section 4.2.1 requires.
pub(super) fn handle(
    state: &LabState,
    session: &mut Session,
    request: &LdapBindRequest,
) -> LdapResult {
    session.principal = None;
    session.clear_paged();
    match authenticate(state, request) {
        Ok(principal) => {
            session.principal = principal;
            diagnostics::success()
        }
        Err(failure) => failure.into_result(),
    }
}

fn authenticate(state: &LabState, request: &LdapBindRequest) -> Result<Option<Principal>, Failure> {
    if !matches!(request.version, 2 | 3) {
        return Err(diagnostics::unsupported_version());
    }
    let password = match &request.cred {
        LdapBindCred::Simple(password) => password,
        // TODO: SASL binds (GSSAPI, GSS-SPNEGO, DIGEST-MD5), which the root DSE lists as AD
        // does, fail with authMethodNotSupported.
        LdapBindCred::SASL(_) | LdapBindCred::Unsupported => {
            return Err(diagnostics::auth_method_not_supported());
        }
    };
    // An empty password is an unauthenticated bind, which AD accepts as anonymous whatever
    // the name (unless DenyUnauthenticatedBind is set, which the lab does not model).
    if password.is_empty() {
        return Ok(None);
    }

    let world = state.read();
    let name = request.dn.trim();
    // A DN goes through the DN parser, because its escapes (`\,`, `\2c`) would otherwise
    // look like a `DOMAIN\user` name. A name that contains `=` but names no entry, such as
    // the UPN `a=b@contoso.com`, is then tried as a logon name, as AD does.
    let by_dn = if name.contains('=') {
        Dn::parse(name)
            .ok()
            .and_then(|dn| Entry::find(&world.directory, &dn.key()))
            .and_then(|entry| entry.user())
    } else {
        None
    };
    let user = by_dn
        .or_else(|| world.directory.user_by_logon(name))
        .ok_or_else(|| diagnostics::bind_rejected(BindRejection::InvalidCredentials))?;
    // AD checks the password first: a wrong password gets `52e` even for a disabled account.
    if user.password.as_deref() != Some(password.as_str()) {
        return Err(diagnostics::bind_rejected(
            BindRejection::InvalidCredentials,
        ));
    }
    if !user.enabled() {
        return Err(diagnostics::bind_rejected(BindRejection::AccountDisabled));
    }
    if user.pwd_last_set == 0 {
        return Err(diagnostics::bind_rejected(
            BindRejection::MustChangePassword,
        ));
    }
    Ok(Some(Principal {
        user: user.id,
        upn: user.upn.clone(),
    }))
}
