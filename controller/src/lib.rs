//! siuctl.

pub mod http;
pub mod providers;
