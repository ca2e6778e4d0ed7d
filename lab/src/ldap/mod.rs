//! An LDAP server that behaves like an Active Directory domain controller, over the
//! world's directory.
//!
//! It serves plain LDAP with StartTLS and LDAPS with the lab's certificate. Anonymous
//! clients can read the root DSE and nothing else. A simple bind accepts a UPN, a DN,
//! `DOMAIN\user` or a sAMAccountName and fails with AD's diagnostics (`data 52e`, `533`,
//! `773`). Searches evaluate full filters with AD's matching rules: bitwise AND and OR, and
//! the in-chain rule over `member` and `memberOf`. They return AD's attributes and binary
//! encodings and page with the simple paged results control. Attributes with more than
//! MaxValRange values come back in ranges, which Samba does not force. Members of Domain
//! Admins can add, modify and delete users, groups, contacts and organizational units;
//! passwords go through `unicodePwd` over an encrypted connection only.
//!
//! Faults for [`Service::Ldap`](crate::faults::Service::Ldap) apply per operation (`bind`,
//! `search`, `add`, `modify`, `delete`, `compare`, `extended`): throttling faults and a
//! `Status` of 51 or 429 answer `busy` (51), any other `Status` answers `unavailable` (52),
//! `Drop` closes the connection without an answer, and `Latency` delays the answer. The
//! journal records every operation with its LDAP result code as the status (`unavailable`
//! for a dropped one) and the bound UPN, or the bind name for a bind, as the actor.

mod add;
mod bind;
mod codec;
mod compare;
mod controls;
mod delete;
mod diagnostics;
mod dn;
mod entries;
mod filter;
mod modify;
mod password;
mod rootdse;
mod schema;
mod search;
mod server;
mod session;
mod write;

use std::time::Duration;

pub use server::spawn;

/// AD's MaxPageSize: the maximum number of entries in one page, or in one search without
/// paging.
const MAX_PAGE_SIZE: usize = 1000;
/// AD's MaxValRange: the maximum number of values of one attribute in one response.
const MAX_VAL_RANGE: usize = 1500;
/// AD's MaxReceiveBuffer: the largest request in bytes.
const MAX_RECEIVE_BUFFER: usize = 10 * 1024 * 1024;
/// AD's MaxResultSetsPerConn: paged searches one connection can have in progress.
const MAX_RESULT_SETS_PER_CONNECTION: usize = 10;
/// AD's MaxConnIdleTime: an idle connection is closed after this long.
const MAX_CONNECTION_IDLE: Duration = Duration::from_secs(900);
/// AD's MaxConnections: connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 5000;
