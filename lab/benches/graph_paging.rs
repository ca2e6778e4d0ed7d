//! Benchmarks of a large organization: building its world, and paging through the transitive
//! members of a 50,000-member group over Graph with TLS.
//!
//! Run with `cargo bench -p siu-lab --bench graph_paging`. The organization has 100,000
//! generated users and 5,000 generated groups (`Fixture::synthetic`).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use siu_lab::access::Resource;
use siu_lab::{Fixture, Lab, LabConfig, World};

const USERS: u32 = 100_000;
const GROUPS: u32 = 5_000;
const LARGEST_GROUP: u32 = 50_000;

fn build_world(c: &mut Criterion) {
    let fixture = Fixture::synthetic(USERS, GROUPS, LARGEST_GROUP);
    let mut group = c.benchmark_group("synthetic organization");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("build the world: 100k users, 5k groups", |b| {
        b.iter(|| World::from_fixture(&fixture).expect("world builds"))
    });
    group.finish();
}

/// Pages through every transitive member of the largest group and returns how many there
/// were and how many requests it took.
async fn page_all(client: &reqwest::Client, token: &str, first: String) -> (usize, usize) {
    let mut url = first;
    let mut members = 0;
    let mut requests = 0;
    loop {
        let page: serde_json::Value = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .error_for_status()
            .expect("page answered")
            .json()
            .await
            .expect("JSON page");
        requests += 1;
        members += page["value"].as_array().expect("value").len();
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return (members, requests),
        }
    }
}

fn page_transitive_members(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let lab = runtime.block_on(async {
        Lab::start(LabConfig::new(Fixture::synthetic(
            USERS,
            GROUPS,
            LARGEST_GROUP,
        )))
        .await
        .expect("lab starts")
    });
    let (group_id, app_id, principal_id) = {
        let world = lab.state().read();
        let group = world
            .directory
            .by_sam("Largest-Group")
            .expect("largest group");
        let app = world
            .tenant
            .applications
            .iter()
            .find(|a| a.display_name.starts_with("Sent Items Update"))
            .expect("manual-app");
        let principal = world
            .tenant
            .principal_by_app_id(app.app_id)
            .expect("principal");
        (group, app.app_id, principal.id)
    };
    // The token comes straight from the issuer: the token endpoint is not what is measured.
    let token = lab
        .state()
        .tokens
        .issue(
            Resource::Graph,
            app_id,
            principal_id,
            vec!["GroupMember.Read.All".into()],
            Duration::from_secs(3600),
        )
        .expect("token");
    let ca = reqwest::Certificate::from_pem(lab.ca_pem().as_bytes()).expect("CA");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client");

    let mut group = c.benchmark_group("transitiveMembers of a 50,000-member group");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    for (name, query) in [
        ("$top=999, $select=id,mail", "$top=999&$select=id,mail"),
        ("$top=999, default properties", "$top=999"),
        ("default page size (100)", ""),
    ] {
        let first = format!(
            "{}v1.0/groups/{group_id}/transitiveMembers?{query}",
            lab.endpoints().graph
        );
        let (members, requests) = runtime.block_on(page_all(&client, &token, first.clone()));
        assert_eq!(
            members,
            LARGEST_GROUP as usize + 10,
            "users and the ten part groups"
        );
        eprintln!("{name}: {members} members in {requests} requests");
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(page_all(&client, &token, first.clone())))
        });
    }
    group.finish();
    drop(lab);
}

criterion_group!(benches, build_world, page_transitive_members);
criterion_main!(benches);
