//! Clients for the systems whose live state the controller reads and changes.

pub mod directory;
pub mod entra;
pub mod exchange;
