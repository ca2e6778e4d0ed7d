//! Exchange: the EWS client, Autodiscover and the management cmdlets.

pub mod autodiscover;
pub mod ews;
pub mod management;
#[cfg(test)]
pub(crate) mod test_server;
