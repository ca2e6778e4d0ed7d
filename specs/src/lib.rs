//! The siu/v1 spec.
