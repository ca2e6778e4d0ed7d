//! Per-connection state: whether the connection is encrypted, who is bound, and the paged
//! searches in progress.

use std::collections::VecDeque;
use std::net::SocketAddr;

use uuid::Uuid;

use super::MAX_RESULT_SETS_PER_CONNECTION;
use super::diagnostics::{self, Failure};
use super::entries::ObjectId;
use crate::world::World;
use crate::world::directory::DOMAIN_ADMINS_RID;

/// The account a connection is bound as.
#[derive(Debug, Clone)]
pub(super) struct Principal {
    /// The user's object ID.
    pub user: Uuid,
    /// The user's UPN, for logs and the journal.
    pub upn: String,
}

/// A paged search between two pages: the entries that matched when it started and how far
/// the client has read.
#[derive(Debug)]
pub(super) struct PagedSearch {
    /// The cookie the last page returned.
    pub cookie: Vec<u8>,
    /// A digest of base, scope, filter and attributes; a cookie is valid only for the same
    /// search.
    pub fingerprint: u64,
    /// Matching entries in result order.
    pub entries: Vec<ObjectId>,
    /// Entries already returned.
    pub position: usize,
}

/// The state of one LDAP connection.
#[derive(Debug)]
pub(super) struct Session {
    /// Number of the connection among the LDAP server's connections, for logs.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// LDAPS, or StartTLS completed.
    pub encrypted: bool,
    /// The bound account; `None` while anonymous.
    pub principal: Option<Principal>,
    /// Paged searches in progress, oldest first. AD keeps at most MaxResultSetsPerConn.
    paged: VecDeque<PagedSearch>,
    next_cookie: u64,
}

impl Session {
    /// Creates an anonymous session.
    pub fn new(id: u64, peer: SocketAddr, encrypted: bool) -> Self {
        Self {
            id,
            peer,
            encrypted,
            principal: None,
            paged: VecDeque::new(),
            next_cookie: 1,
        }
    }

    /// Returns the acting identity for logs and the journal.
    pub fn actor(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.upn.as_str())
    }

    /// Fails with AD's "a successful bind must be completed" unless the connection is bound.
    pub fn require_bind(&self) -> Result<&Principal, Failure> {
        self.principal
            .as_ref()
            .ok_or_else(diagnostics::bind_required)
    }

    /// Fails unless the bound account may change the directory. The lab lets only members
    /// of Domain Admins write, a simplification of AD's access control lists.
    pub fn require_admin(&self, world: &World) -> Result<Uuid, Failure> {
        let principal = self.require_bind()?;
        if world
            .directory
            .is_member_of_rid(principal.user, DOMAIN_ADMINS_RID)
        {
            Ok(principal.user)
        } else {
            Err(diagnostics::insufficient_access())
        }
    }

    /// Takes the paged search that `cookie` continues.
    pub fn take_paged(&mut self, cookie: &[u8]) -> Option<PagedSearch> {
        let at = self.paged.iter().position(|p| p.cookie == cookie)?;
        self.paged.remove(at)
    }

    /// Keeps a paged search for its next page and returns the cookie to send. The oldest
    /// one is dropped when the connection has MaxResultSetsPerConn already.
    pub fn keep_paged(&mut self, mut search: PagedSearch) -> Vec<u8> {
        let cookie = self.next_cookie.to_le_bytes().to_vec();
        self.next_cookie += 1;
        search.cookie = cookie.clone();
        if self.paged.len() == MAX_RESULT_SETS_PER_CONNECTION {
            self.paged.pop_front();
        }
        self.paged.push_back(search);
        cookie
    }

    /// Forgets every paged search, as a new bind does.
    pub fn clear_paged(&mut self) {
        self.paged.clear();
    }
}
