//! The EWS client: SOAP requests to Exchange Web Services, with Basic, NTLM (with channel
//! binding) or bearer authentication, impersonation, and typed errors.
//!
//! [`client::EwsClient`] is the entry point. Its methods cover what the controller needs:
//! a version probe, the Sent Items check that proves impersonation works, name
//! resolution, and finding, creating, reading, updating and deleting items in Sent Items.
//! [`client::EwsClient::execute`] sends any operation of [`ops`] for other uses.

pub mod auth;
pub mod client;
pub mod error;
pub mod ntlm;
pub mod ops;
pub mod soap;
#[cfg(test)]
mod test_support;
pub(crate) mod transport;
pub mod types;

pub use auth::{AuthScheme, EXCHANGE_ONLINE_SCOPE, EwsAuth, Secret};
pub use client::{CallContext, EwsClient, EwsClientOptions, SentItem};
pub use error::{EwsError, Target};
pub use ops::delete_item::DeleteType;
pub use soap::{ConnectingSid, ServerVersionInfo};
