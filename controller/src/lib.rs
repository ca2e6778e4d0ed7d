//! siuctl.

/// Clients for Active Directory, Exchange and Entra ID.
pub mod providers;
