//! Exchange: the EWS client and Autodiscover.

pub mod ews;
