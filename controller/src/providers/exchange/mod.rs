//! Exchange: the EWS client and Autodiscover.

pub mod autodiscover;
pub mod ews;
#[cfg(test)]
mod test_server;
