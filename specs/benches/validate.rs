//! Parse and validate time of a large spec: about 10,000 lines, most of them scope
//! entries, which is the largest spec an organization is expected to keep in one file.
//! A second case measures the report for a spec with thousands of invalid scope entries
//! on one line, where each problem's snippet shows the same long line.
//!
//! Run with `cargo bench -p siu-specs --bench validate`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

/// The number of users and of groups in the generated scope.
const SCOPE_ENTRIES: usize = 5_000;

/// Builds a valid hybrid spec with `SCOPE_ENTRIES` users and as many groups.
fn large_spec() -> String {
    let mut spec = String::from(
        "apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: contoso-bench
environment: hybrid
onPremises:
  exchange:
    connection: manual
    server: mail.contoso.com
    managementShell:
      command: [pwsh, -NoProfile, -File, scripts/exchange-session.ps1]
  directory:
    url: ldaps://dc1.contoso.com
    baseDn: DC=contoso,DC=com
    bindUser: CONTOSO\\siu-reader
    bindPassword: { fromEnv: AD_BIND_PASSWORD }
account:
  upn: svc-siu@contoso.com
  password: { fromEnv: SIU_ACCOUNT_PASSWORD }
appRegistration:
  mode: manual
  tenantId: 8a7e6c2e-3c1a-4b9e-9b52-3f0e2c1d4a55
  clientId: 5d3b9f0e-7c21-4a8b-b6d4-2e1f0a9c8b7d
  credential:
    certificate:
      thumbprint: 3A1F9C440B7E2D5A61C8930FE24B7D18A65C309E
      keyFile: secrets/siu-app.pem
updateLoop:
  spoolDir: /var/spool/siuctl
  stateDir: /var/lib/siuctl
scope:
  mode: only
  users:
",
    );
    for index in 0..SCOPE_ENTRIES {
        spec.push_str(&format!("    - user{index}@contoso.com\n"));
    }
    spec.push_str("  groups:\n");
    for index in 0..SCOPE_ENTRIES {
        if index % 2 == 0 {
            spec.push_str(&format!("    - group{index}@contoso.com\n"));
        } else {
            spec.push_str(&format!(
                "    - CN=Group {index},OU=Groups,DC=contoso,DC=com\n"
            ));
        }
    }
    spec
}

fn parse_and_validate(c: &mut Criterion) {
    let spec = large_spec();
    let lines = spec.lines().count();
    let path = Path::new("/etc/siuctl/bench.yaml");
    siu_specs::load_str(&spec, path).expect("the generated spec is valid");

    c.bench_function(&format!("parse and validate {lines} lines"), |b| {
        b.iter(|| siu_specs::load_str(black_box(&spec), path).expect("the generated spec is valid"))
    });
}

/// Builds a spec whose scope lists `SCOPE_ENTRIES` invalid users in one flow sequence.
fn invalid_spec_on_one_line() -> String {
    let users: Vec<String> = (0..SCOPE_ENTRIES)
        .map(|index| format!("user{index}"))
        .collect();
    let valid = large_spec();
    let head = valid
        .split("scope:\n")
        .next()
        .expect("the generated spec has a scope");
    format!(
        "{head}scope:\n  mode: only\n  users: [{}]\n",
        users.join(", ")
    )
}

fn report_problems_on_one_line(c: &mut Criterion) {
    let spec = invalid_spec_on_one_line();
    let path = Path::new("/etc/siuctl/bench.yaml");
    let problems = match siu_specs::load_str(&spec, path) {
        Ok(_) => panic!("the generated spec is invalid"),
        Err(error) => error.diagnostics(path).len(),
    };

    c.bench_function(
        &format!(
            "report {problems} problems on one line of {} bytes",
            spec.len()
        ),
        |b| {
            b.iter(|| {
                siu_specs::load_str(black_box(&spec), path)
                    .expect_err("the generated spec is invalid")
            })
        },
    );
}

criterion_group!(benches, parse_and_validate, report_problems_on_one_line);
criterion_main!(benches);
