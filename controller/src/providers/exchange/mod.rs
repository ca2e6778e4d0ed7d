//! Exchange: the EWS client and Autodiscover.

pub mod autodiscover;
pub mod ews;
#[cfg(test)]
pub(crate) mod test_server;
