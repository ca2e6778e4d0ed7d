//! End-to-end tests of `siuctl`: the real binary against the lab and Samba AD.

mod directory;
mod entra;
mod external_directory;
mod lab_cli;
mod reconcile;
mod update;
mod update_lab;
mod validate;

#[test]
fn binary_is_built() {
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_siuctl")).exists());
}
