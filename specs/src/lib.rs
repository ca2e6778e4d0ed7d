//! The siu/v1 spec: the YAML file in which an administrator declares how siuctl sets up
//! and runs the Sent Items Update service.
//!
//! The crate has two layers. [`spec`] mirrors the YAML with serde and is the source of
//! the JSON Schema ([`schema`]). [`load`] parses a file into that model, checks it, and
//! returns the normalized [`DesiredState`] that the controller works from. Every problem
//! comes back as a [`Diagnostic`] with file, line, column and a snippet. A spec never
//! contains a secret, only [`SecretRef`]s, which resolve to [`Secret`]s.

/// The validated desired state.
pub mod desired;
/// Located problems and their compiler-style rendering.
mod diagnostic;
/// The crate's error type.
mod error;
/// File reading and the parse pipeline.
mod load;
/// serde-saphyr deserialization and error translation.
mod parse;
/// The JSON Schema.
mod schema;
/// Secret references and resolved secrets.
mod secret;
/// Field paths mapped to source locations, and the structural limits.
mod source_map;
/// The raw model that mirrors the YAML.
pub mod spec;
/// Semantic validation.
mod validate;

pub use desired::DesiredState;
pub use diagnostic::{Diagnostic, escape_invisible};
pub use error::Error;
pub use load::{MAX_DIAGNOSTICS, MAX_SPEC_BYTES, load, load_bytes, load_str, read};
pub use schema::{schema, schema_json};
pub use secret::{MAX_SECRET_FILE_BYTES, Secret, SecretRef, SecretSpec};
pub use source_map::{MAX_DEPTH, MAX_EXPANDED_NODES};
