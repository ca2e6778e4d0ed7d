//! Clients of the live systems that the controller reads and changes.

pub mod entra;
pub mod exchange;
