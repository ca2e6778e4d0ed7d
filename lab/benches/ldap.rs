//! Benchmarks of the lab's LDAP server over loopback with the `ldap3` client, on the default
//! organization (1,600 generated staff users, All-Staff with 1,603 direct members).
//!
//! `cargo bench -p siu-lab --bench ldap` runs them. Each figure includes the client's work
//! and the loopback round trips, so it is an upper bound of the server's own time.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ldap3::controls::{Control, ControlType, PagedResults};
use ldap3::{Ldap, LdapConnAsync, Scope, SearchEntry};
use siu_lab::{Fixture, Lab, LabConfig};
use tokio::runtime::Runtime;

const BASE: &str = "DC=lab,DC=example";
const ALL_STAFF: &str = "CN=All-Staff,OU=Groups,DC=lab,DC=example";

/// Starts a lab and binds a client as Administrator over plain LDAP.
fn setup(runtime: &Runtime) -> (Lab, Ldap) {
    runtime.block_on(async {
        let lab = Lab::start(LabConfig::new(Fixture::default_org()))
            .await
            .expect("the lab should start");
        let (connection, mut ldap) = LdapConnAsync::new(lab.endpoints().ldap.as_str())
            .await
            .expect("the client should connect");
        ldap3::drive!(connection);
        let password = lab
            .secrets()
            .get("Administrator.password")
            .expect("the Administrator password")
            .to_string();
        ldap.simple_bind("administrator@lab.example", &password)
            .await
            .expect("the bind request should be sent")
            .success()
            .expect("the bind should succeed");
        (lab, ldap)
    })
}

/// Runs a subtree search with the paged results control and returns the number of entries
/// over all pages.
async fn paged_search(ldap: &mut Ldap, filter: &str, page_size: i32) -> usize {
    let mut cookie = Vec::new();
    let mut total = 0;
    loop {
        let ldap3::SearchResult(entries, result) = ldap
            .with_controls(PagedResults {
                size: page_size,
                cookie: cookie.clone(),
            })
            .search(BASE, Scope::Subtree, filter, vec!["sAMAccountName"])
            .await
            .expect("the search request should be sent");
        assert_eq!(result.rc, 0, "{result}");
        total += entries.len();
        cookie = result
            .ctrls
            .iter()
            .find_map(|control| match control {
                Control(Some(ControlType::PagedResults), raw) => {
                    Some(raw.parse::<PagedResults>().cookie)
                }
                _ => None,
            })
            .unwrap_or_default();
        if cookie.is_empty() {
            return total;
        }
    }
}

/// Reads every value of a group's `member` through range retrieval.
async fn ranged_members(ldap: &mut Ldap, group: &str) -> usize {
    let mut count = 0;
    let mut requested = "member".to_string();
    loop {
        let ldap3::SearchResult(entries, result) = ldap
            .search(
                group,
                Scope::Base,
                "(objectClass=*)",
                vec![requested.as_str()],
            )
            .await
            .expect("the search request should be sent");
        assert_eq!(result.rc, 0, "{result}");
        let entry = SearchEntry::construct(entries.into_iter().next().expect("the group"));
        let (name, values) = entry.attrs.into_iter().next().expect("one attribute");
        count += values.len();
        if name == "member" || name.ends_with("-*") {
            return count;
        }
        requested = format!("member;range={count}-*");
    }
}

fn ldap_benchmarks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (_lab, ldap) = setup(&runtime);

    let mut group = c.benchmark_group("ldap");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));

    let in_chain = format!("(memberOf:1.2.840.113556.1.4.1941:={ALL_STAFF})");
    group.bench_function("in-chain subtree search of All-Staff, paged", |b| {
        b.iter(|| {
            let mut ldap = ldap.clone();
            let found = runtime.block_on(paged_search(&mut ldap, &in_chain, 1000));
            assert!(found > 1600, "{found}");
        })
    });
    let sales = "(memberOf:1.2.840.113556.1.4.1941:=CN=Sales,OU=Groups,DC=lab,DC=example)";
    group.bench_function("in-chain subtree search of Sales", |b| {
        b.iter(|| {
            let mut ldap = ldap.clone();
            let found = runtime.block_on(paged_search(&mut ldap, sales, 1000));
            assert_eq!(found, 5);
        })
    });
    group.bench_function("ranged read of All-Staff's members", |b| {
        b.iter(|| {
            let mut ldap = ldap.clone();
            let count = runtime.block_on(ranged_members(&mut ldap, ALL_STAFF));
            assert!(count > 1600, "{count}");
        })
    });
    group.bench_function("paged search of 1,600 staff users, 500 a page", |b| {
        b.iter(|| {
            let mut ldap = ldap.clone();
            let found = runtime.block_on(paged_search(
                &mut ldap,
                "(&(objectCategory=person)(sAMAccountName=staff*))",
                500,
            ));
            assert_eq!(found, 1600);
        })
    });
    group.finish();
}

criterion_group!(benches, ldap_benchmarks);
criterion_main!(benches);
