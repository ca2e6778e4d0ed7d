//! The lab's LDAP server driven by the `ldap3` client crate and by Debian's `ldapsearch`:
//! root DSE, binds and their AD diagnostics, searches with AD's matching rules, paging and
//! range retrieval, writes over LDAPS and StartTLS, malformed input and injected faults.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;

use futures::StreamExt;
use ldap3::controls::{Control, ControlType, PagedResults, RawControl};
use ldap3::exop::{WhoAmI, WhoAmIResp};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Mod, Scope, SearchEntry};
use siu_lab::faults::{FaultKind, FaultRule, Service};
use siu_lab::{Fixture, Lab, LabConfig};

const BASE: &str = "DC=lab,DC=example";
const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=lab,DC=example";
const ADMIN_UPN: &str = "administrator@lab.example";
const ALL_STAFF: &str = "CN=All-Staff,OU=Groups,DC=lab,DC=example";
const SALES: &str = "CN=Sales,OU=Groups,DC=lab,DC=example";

async fn start() -> Lab {
    Lab::start(LabConfig::new(Fixture::default_org()))
        .await
        .expect("the lab should start")
}

fn admin_password(lab: &Lab) -> String {
    lab.secrets()
        .get("Administrator.password")
        .expect("the lab publishes the Administrator password")
        .to_string()
}

fn tls_config(lab: &Lab) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::pem::PemObject::pem_slice_iter(lab.ca_pem().as_bytes()) {
        roots
            .add(certificate.expect("the lab CA should parse"))
            .expect("the lab CA should be a valid root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Connects without binding: plain LDAP, LDAPS, or plain LDAP with StartTLS.
async fn connect(lab: &Lab, secure: bool, start_tls: bool) -> Ldap {
    let endpoints = lab.endpoints();
    let url = if secure {
        endpoints.ldaps.as_str()
    } else {
        endpoints.ldap.as_str()
    };
    let settings = LdapConnSettings::new()
        .set_config(tls_config(lab))
        .set_starttls(start_tls);
    let (connection, ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .unwrap_or_else(|error| panic!("connecting to {url} should succeed: {error}"));
    ldap3::drive!(connection);
    ldap
}

async fn bind(ldap: &mut Ldap, name: &str, password: &str) -> LdapResult {
    ldap.simple_bind(name, password)
        .await
        .expect("the bind request should be sent")
}

async fn admin(lab: &Lab, secure: bool) -> Ldap {
    let mut ldap = connect(lab, secure, false).await;
    bind(&mut ldap, ADMIN_UPN, &admin_password(lab))
        .await
        .success()
        .expect("the admin bind should succeed");
    ldap
}

async fn search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attributes: &[&str],
) -> (Vec<SearchEntry>, LdapResult) {
    let ldap3::SearchResult(entries, result) = ldap
        .search(base, scope, filter, attributes.to_vec())
        .await
        .expect("the search request should be sent");
    (
        entries.into_iter().map(SearchEntry::construct).collect(),
        result,
    )
}

/// Returns the first value of a binary attribute. `ldap3` files a value under `attrs` when
/// its bytes happen to be valid UTF-8, and a random SID or GUID sometimes is.
fn binary(entry: &SearchEntry, name: &str) -> Vec<u8> {
    entry
        .bin_attrs
        .get(name)
        .and_then(|values| values.first().cloned())
        .or_else(|| {
            entry
                .attrs
                .get(name)
                .and_then(|values| values.first())
                .map(|value| value.as_bytes().to_vec())
        })
        .unwrap_or_else(|| panic!("{} should have {name}", entry.dn))
}

/// Encodes a password as AD expects it in `unicodePwd`: quoted, UTF-16LE.
fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn values(pairs: &[&str]) -> HashSet<Vec<u8>> {
    pairs.iter().map(|v| v.as_bytes().to_vec()).collect()
}

fn attribute(name: &str, pairs: &[&str]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (name.as_bytes().to_vec(), values(pairs))
}

/// Sets a user's password and flags straight in the world, for accounts whose password the
/// lab does not publish.
fn prepare_user(
    lab: &Lab,
    sam: &str,
    password: &str,
    edit: impl FnOnce(&mut siu_lab::world::directory::User),
) {
    let mut world = lab.state().write();
    let id = world.directory.by_sam(sam).expect("the user exists");
    world.directory.edit_user(id, |user| {
        user.password = Some(password.to_string());
        edit(user);
    });
}

#[tokio::test]
async fn root_dse_is_served_anonymously() {
    let lab = start().await;
    let mut ldap = connect(&lab, false, false).await;
    let (entries, result) = search(&mut ldap, "", Scope::Base, "(objectClass=*)", &[]).await;
    assert_eq!(result.rc, 0, "{result}");
    let root = &entries[0];
    assert_eq!(root.dn, "");
    assert_eq!(root.attrs["defaultNamingContext"], [BASE]);
    assert_eq!(root.attrs["rootDomainNamingContext"], [BASE]);
    assert_eq!(
        root.attrs["configurationNamingContext"],
        ["CN=Configuration,DC=lab,DC=example"]
    );
    assert_eq!(
        root.attrs["schemaNamingContext"],
        ["CN=Schema,CN=Configuration,DC=lab,DC=example"]
    );
    assert_eq!(root.attrs["supportedLDAPVersion"], ["3", "2"]);
    assert_eq!(root.attrs["dnsHostName"], ["dc1.lab.example"]);
    assert_eq!(root.attrs["isGlobalCatalogReady"], ["TRUE"]);
    assert_eq!(root.attrs["domainFunctionality"], ["7"]);
    for control in [
        "1.2.840.113556.1.4.319",
        "1.2.840.113556.1.4.473",
        "1.2.840.113556.1.4.417",
    ] {
        assert!(
            root.attrs["supportedControl"].iter().any(|c| c == control),
            "supportedControl should list {control}"
        );
    }
    assert!(
        root.attrs["supportedCapabilities"]
            .iter()
            .any(|c| c == "1.2.840.113556.1.4.800")
    );
    assert!(root.attrs["currentTime"][0].ends_with(".0Z"));

    // Named attributes limit the response.
    let (entries, _) = search(
        &mut ldap,
        "",
        Scope::Base,
        "(objectClass=*)",
        &["DEFAULTNAMINGCONTEXT"],
    )
    .await;
    let names: Vec<&String> = entries[0].attrs.keys().collect();
    assert_eq!(names, ["defaultNamingContext"]);
}

#[tokio::test]
async fn anonymous_clients_read_nothing_else() {
    let lab = start().await;
    let mut ldap = connect(&lab, false, false).await;
    let (entries, result) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        "(objectClass=user)",
        &["cn"],
    )
    .await;
    assert!(entries.is_empty());
    assert_eq!(result.rc, 1, "{result}");
    assert!(
        result.text.starts_with("000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation a successful bind must be completed on the connection."),
        "{result}"
    );

    // An empty password is an unauthenticated bind: it succeeds and stays anonymous.
    bind(&mut ldap, ADMIN_UPN, "")
        .await
        .success()
        .expect("unauthenticated bind");
    let (_, result) = search(&mut ldap, BASE, Scope::Base, "(objectClass=*)", &["dc"]).await;
    assert_eq!(result.rc, 1, "{result}");
}

#[tokio::test]
async fn bind_accepts_upn_dn_and_down_level_names() {
    let lab = start().await;
    let password = admin_password(&lab);
    for name in [
        ADMIN_UPN,
        "Administrator@LAB.EXAMPLE",
        ADMIN_DN,
        "LAB\\Administrator",
        "lab.example\\administrator",
    ] {
        let mut ldap = connect(&lab, false, false).await;
        let result = bind(&mut ldap, name, &password).await;
        assert_eq!(result.rc, 0, "bind as {name}: {result}");
        let WhoAmIResp { authzid } = ldap
            .extended(WhoAmI)
            .await
            .expect("the request should be sent")
            .success()
            .expect("who am I should succeed")
            .0
            .parse();
        assert_eq!(authzid, "u:LAB\\Administrator", "bind as {name}");
    }
}

#[tokio::test]
async fn bind_failures_carry_ad_diagnostics() {
    let lab = start().await;
    prepare_user(&lab, "frank", "Frank-Password-1", |_| {});
    prepare_user(&lab, "erin", "Erin-Password-1", |user| {
        user.pwd_last_set = 0
    });
    let cases = [
        (ADMIN_UPN, "Wrong-Password-1", "52e"),
        ("nobody@lab.example", "Wrong-Password-1", "52e"),
        ("frank@lab.example", "Frank-Password-1", "533"),
        // A wrong password wins over a disabled account.
        ("frank@lab.example", "Wrong-Password-1", "52e"),
        ("erin@lab.example", "Erin-Password-1", "773"),
    ];
    for (name, password, data) in cases {
        let mut ldap = connect(&lab, false, false).await;
        let result = bind(&mut ldap, name, password).await;
        assert_eq!(result.rc, 49, "{name}: {result}");
        assert_eq!(
            result.text,
            format!(
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {data}, v4563\0"
            ),
            "{name}"
        );
        assert!(
            !result.text.contains(password),
            "the diagnostic must not echo the password"
        );
        // A failed bind leaves the connection anonymous.
        let (_, after) = search(&mut ldap, BASE, Scope::Base, "(objectClass=*)", &["dc"]).await;
        assert_eq!(after.rc, 1, "{name}: {after}");
    }
}

#[tokio::test]
async fn user_by_upn_has_ad_attributes() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let filter =
        "(&(objectCategory=person)(objectClass=user)(userPrincipalName=ALICE@lab.example))";
    let attributes = [
        "sAMAccountName",
        "userPrincipalName",
        "userAccountControl",
        "msDS-User-Account-Control-Computed",
        "objectSid",
        "objectGUID",
        "primaryGroupID",
        "memberOf",
        "mail",
        "proxyAddresses",
        "pwdLastSet",
        "whenCreated",
        "objectCategory",
    ];
    let (entries, result) = search(&mut ldap, BASE, Scope::Subtree, filter, &attributes).await;
    assert_eq!(result.rc, 0, "{result}");
    assert_eq!(entries.len(), 1);
    let alice = &entries[0];
    assert_eq!(alice.dn, "CN=Alice Archer,CN=Users,DC=lab,DC=example");
    assert_eq!(alice.attrs["sAMAccountName"], ["alice"]);
    assert_eq!(alice.attrs["userAccountControl"], ["66048"]);
    assert_eq!(alice.attrs["msDS-User-Account-Control-Computed"], ["0"]);
    assert_eq!(alice.attrs["primaryGroupID"], ["513"]);
    assert_eq!(alice.attrs["proxyAddresses"], ["SMTP:alice@lab.example"]);
    assert_eq!(
        alice.attrs["objectCategory"],
        ["CN=Person,CN=Schema,CN=Configuration,DC=lab,DC=example"]
    );
    assert!(alice.attrs["whenCreated"][0].ends_with(".0Z"));
    assert!(alice.attrs["memberOf"].iter().any(|dn| dn == SALES));
    let sid = &binary(alice, "objectSid");
    assert_eq!(
        sid[..8],
        [1, 5, 0, 0, 0, 0, 0, 5],
        "SID revision 1, NT authority"
    );
    let guid = &binary(alice, "objectGUID");
    let id = lab.state().read().directory.by_sam("alice").expect("alice");
    assert_eq!(guid.as_slice(), id.to_bytes_le());

    // The SID found by value, as a binary assertion.
    let escaped: String = sid.iter().map(|b| format!("\\{b:02x}")).collect();
    let (by_sid, _) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        &format!("(objectSid={escaped})"),
        &["cn"],
    )
    .await;
    assert_eq!(by_sid.len(), 1);
    assert_eq!(by_sid[0].dn, alice.dn);
}

#[tokio::test]
async fn mailbox_location_is_in_exchange_attributes() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let attributes = [
        "msExchRecipientTypeDetails",
        "targetAddress",
        "mailNickname",
    ];
    let find = |sam: &'static str| format!("(sAMAccountName={sam})");

    let (alice, _) = search(&mut ldap, BASE, Scope::Subtree, &find("alice"), &attributes).await;
    assert_eq!(alice[0].attrs["msExchRecipientTypeDetails"], ["1"]);
    assert_eq!(alice[0].attrs["mailNickname"], ["alice"]);
    assert!(!alice[0].attrs.contains_key("targetAddress"));

    let (carol, _) = search(&mut ldap, BASE, Scope::Subtree, &find("carol"), &attributes).await;
    assert_eq!(carol[0].attrs["msExchRecipientTypeDetails"], ["2147483648"]);
    assert_eq!(
        carol[0].attrs["targetAddress"],
        ["SMTP:carol@labexample.mail.onmicrosoft.com"]
    );

    let (ivan, _) = search(&mut ldap, BASE, Scope::Subtree, &find("ivan"), &attributes).await;
    assert!(!ivan[0].attrs.contains_key("msExchRecipientTypeDetails"));

    let (remote, result) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        "(msExchRecipientTypeDetails=2147483648)",
        &["1.1"],
    )
    .await;
    assert_eq!(result.rc, 0, "{result}");
    assert!(
        remote.len() > 3,
        "every cloud mailbox matches: {}",
        remote.len()
    );
}

#[tokio::test]
async fn search_scopes_and_matching_rules() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;

    let (one_level, _) = search(
        &mut ldap,
        "OU=Groups,DC=lab,DC=example",
        Scope::OneLevel,
        "(objectClass=*)",
        &["1.1"],
    )
    .await;
    assert_eq!(
        one_level.len(),
        6,
        "{:?}",
        one_level.iter().map(|e| &e.dn).collect::<Vec<_>>()
    );
    assert!(
        one_level.iter().all(|e| e.attrs.is_empty()),
        "1.1 asks for no attributes"
    );

    let (base, _) = search(
        &mut ldap,
        SALES,
        Scope::Base,
        "(objectClass=*)",
        &["member", "groupType", "sAMAccountType"],
    )
    .await;
    assert_eq!(base.len(), 1);
    assert_eq!(base[0].attrs["groupType"], ["-2147483646"]);
    assert_eq!(base[0].attrs["sAMAccountType"], ["268435456"]);

    // Disabled accounts through the bitwise AND rule, enabled ones through its negation.
    let (disabled, _) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        "(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:=2))",
        &["sAMAccountName"],
    )
    .await;
    let names: Vec<&str> = disabled
        .iter()
        .map(|e| e.attrs["sAMAccountName"][0].as_str())
        .collect();
    assert_eq!(names, ["frank"]);

    // Nested groups through the in-chain rule, in both directions.
    let (members, _) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        &format!("(memberOf:1.2.840.113556.1.4.1941:={SALES})"),
        &["sAMAccountName"],
    )
    .await;
    let mut names: Vec<&str> = members
        .iter()
        .map(|e| e.attrs["sAMAccountName"][0].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Sales-EMEA", "alice", "bob", "carol", "hhill"]);
    let (groups, _) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        "(member:1.2.840.113556.1.4.1941:=CN=Carol Chen,CN=Users,DC=lab,DC=example)",
        &["cn"],
    )
    .await;
    let mut names: Vec<&str> = groups.iter().map(|e| e.attrs["cn"][0].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["All-Staff", "Sales", "Sales-EMEA"]);

    // Substrings, presence, ordering and negation together.
    let (staff, _) = search(
        &mut ldap,
        "OU=Staff,DC=lab,DC=example",
        Scope::Subtree,
        "(&(sAMAccountName=staff000*)(mail=*)(!(sAMAccountName=staff0001))(whenCreated>=20000101000000.0Z))",
        &["sAMAccountName"],
    )
    .await;
    assert_eq!(staff.len(), 8, "staff0002 to staff0009");

    // A missing base gets noSuchObject with the best match.
    let (_, missing) = search(
        &mut ldap,
        "OU=Missing,OU=Staff,DC=lab,DC=example",
        Scope::Subtree,
        "(objectClass=*)",
        &["cn"],
    )
    .await;
    assert_eq!(missing.rc, 32, "{missing}");
    assert_eq!(missing.matched, "OU=Staff,DC=lab,DC=example");
    assert!(
        missing
            .text
            .starts_with("0000208D: NameErr: DSID-0310028D, problem 2001 (NO_OBJECT)")
    );
    let (_, invalid) = search(
        &mut ldap,
        "CN=a+SN=b,DC=lab,DC=example",
        Scope::Base,
        "(objectClass=*)",
        &["cn"],
    )
    .await;
    assert_eq!(invalid.rc, 34, "{invalid}");
}

#[tokio::test]
async fn large_group_is_read_through_ranges() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let count = lab.state().read().directory.groups[&lab
        .state()
        .read()
        .directory
        .by_sam("All-Staff")
        .expect("group")]
        .members
        .len();
    assert!(count > 1500);

    let handle = ldap.clone();
    let read = move |attribute: &str| {
        let attribute = attribute.to_string();
        let mut ldap = handle.clone();
        async move {
            let (entries, result) = search(
                &mut ldap,
                ALL_STAFF,
                Scope::Base,
                "(objectClass=*)",
                &[attribute.as_str()],
            )
            .await;
            assert_eq!(result.rc, 0, "{attribute}: {result}");
            let entry = entries.into_iter().next().expect("the group exists");
            let mut attrs: Vec<(String, Vec<String>)> = entry.attrs.into_iter().collect();
            assert_eq!(attrs.len(), 1, "{attribute}");
            attrs.pop().expect("one attribute")
        }
    };

    let (name, first) = read("member").await;
    assert_eq!(name, "member;range=0-1499");
    assert_eq!(first.len(), 1500);
    let (name, rest) = read("member;range=1500-*").await;
    assert_eq!(name, "member;range=1500-*");
    assert_eq!(rest.len(), count - 1500);
    let (name, small) = read("member;range=300-599").await;
    assert_eq!(name, "member;range=300-599");
    assert_eq!(small, first[300..600]);
    let (name, _) = read(&format!("member;range=1000-{}", count + 10)).await;
    assert_eq!(
        name, "member;range=1000-*",
        "the range holding the last value ends in *"
    );

    let mut all: Vec<String> = first.into_iter().chain(rest).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "ranges neither repeat nor skip values");

    // Past the last value: operationsError, or nothing with the no-error control.
    let past = format!("member;range={count}-*");
    let (_, result) = search(
        &mut ldap,
        ALL_STAFF,
        Scope::Base,
        "(objectClass=*)",
        &[past.as_str()],
    )
    .await;
    assert_eq!(result.rc, 1, "{result}");
    let no_error = RawControl {
        ctype: "1.2.840.113556.1.4.1948".into(),
        crit: true,
        val: None,
    };
    let ldap3::SearchResult(entries, result) = ldap
        .with_controls(no_error)
        .search(
            ALL_STAFF,
            Scope::Base,
            "(objectClass=*)",
            vec![past.as_str()],
        )
        .await
        .expect("the search request should be sent");
    assert_eq!(result.rc, 0, "{result}");
    assert!(
        SearchEntry::construct(entries.into_iter().next().expect("the group"))
            .attrs
            .is_empty()
    );
}

/// Adds `count` contacts and a group that contains them all, over one connection.
async fn add_large_group(ldap: &Ldap, count: usize) -> String {
    let mut admin = ldap.clone();
    let ou = "OU=Conformance,DC=lab,DC=example";
    admin
        .add(ou, vec![attribute("objectClass", &["organizationalUnit"])])
        .await
        .expect("the add request should be sent")
        .success()
        .expect("the OU should be added");
    let contacts: Vec<String> = (0..count)
        .map(|i| format!("CN=contact-{i:04},{ou}"))
        .collect();
    futures::stream::iter(contacts.clone())
        .map(|dn| {
            let mut ldap = ldap.clone();
            async move {
                ldap.add(&dn, vec![attribute("objectClass", &["contact"])])
                    .await
                    .expect("the add request should be sent")
                    .success()
                    .expect("the contact should be added");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let group = format!("CN=large,{ou}");
    let members: Vec<&str> = contacts.iter().map(String::as_str).collect();
    admin
        .add(
            &group,
            vec![
                attribute("objectClass", &["group"]),
                attribute("sAMAccountName", &["large"]),
                attribute("member", &members),
            ],
        )
        .await
        .expect("the add request should be sent")
        .success()
        .expect("the group should be added");
    group
}

#[tokio::test]
async fn large_contact_group_reads_in_ranges() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let group = add_large_group(&ldap, 2000).await;

    let mut collected = Vec::new();
    let mut next = Some("member".to_string());
    let mut requests = 0;
    while let Some(attribute) = next.take() {
        let (entries, result) = search(
            &mut ldap,
            &group,
            Scope::Base,
            "(objectClass=*)",
            &[attribute.as_str()],
        )
        .await;
        assert_eq!(result.rc, 0, "{result}");
        requests += 1;
        let (name, values) = entries[0].attrs.iter().next().expect("one attribute");
        let range = name.split_once(";range=").expect("a ranged answer").1;
        let (low, high) = range.split_once('-').expect("LOW-HIGH");
        assert_eq!(low.parse::<usize>().expect("low"), collected.len());
        collected.extend(values.iter().cloned());
        if high != "*" {
            next = Some(format!("member;range={}-*", collected.len()));
        }
    }
    assert_eq!(requests, 2);
    assert_eq!(collected.len(), 2000);

    // The in-chain rule returns the same members, over paged results.
    let filter = format!("(memberOf:1.2.840.113556.1.4.1941:={group})");
    let mut found = Vec::new();
    let mut cookie = Vec::new();
    let mut pages = 0;
    loop {
        let ldap3::SearchResult(entries, result) = ldap
            .with_controls(PagedResults {
                size: 500,
                cookie: cookie.clone(),
            })
            .search(BASE, Scope::Subtree, &filter, vec!["objectClass"])
            .await
            .expect("the search request should be sent");
        assert_eq!(result.rc, 0, "{result}");
        pages += 1;
        found.extend(entries.into_iter().map(SearchEntry::construct));
        cookie = result
            .ctrls
            .iter()
            .find_map(|control| match control {
                Control(Some(ControlType::PagedResults), raw) => {
                    Some(raw.parse::<PagedResults>().cookie)
                }
                _ => None,
            })
            .expect("every page carries the paged results control");
        if cookie.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(found.len(), 2000);
    assert!(
        found
            .iter()
            .all(|e| e.attrs["objectClass"].iter().any(|c| c == "contact"))
    );
}

#[tokio::test]
async fn unpaged_search_stops_at_max_page_size() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let (entries, result) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        "(objectClass=user)",
        &["1.1"],
    )
    .await;
    assert_eq!(result.rc, 4, "{result}");
    assert_eq!(entries.len(), 1000);

    let ldap3::SearchResult(entries, result) = ldap
        .search(BASE, Scope::Subtree, "(sAMAccountName=staff*)", vec!["cn"])
        .await
        .expect("sent");
    assert_eq!(result.rc, 4);
    assert_eq!(entries.len(), 1000);

    // A client size limit below MaxPageSize applies too.
    let mut limited = ldap.clone();
    let ldap3::SearchResult(entries, result) = limited
        .with_search_options(ldap3::SearchOptions::new().sizelimit(5))
        .search(BASE, Scope::Subtree, "(objectClass=user)", vec!["cn"])
        .await
        .expect("sent");
    assert_eq!(result.rc, 4, "{result}");
    assert_eq!(entries.len(), 5);

    // Paging returns every user, in pages capped at MaxPageSize.
    let mut cookie = Vec::new();
    let mut total = 0;
    let mut largest_page = 0;
    loop {
        let ldap3::SearchResult(entries, result) = ldap
            .with_controls(PagedResults {
                size: 5000,
                cookie: cookie.clone(),
            })
            .search(BASE, Scope::Subtree, "(objectClass=user)", vec!["1.1"])
            .await
            .expect("sent");
        assert_eq!(result.rc, 0, "{result}");
        total += entries.len();
        largest_page = largest_page.max(entries.len());
        cookie = result
            .ctrls
            .iter()
            .find_map(|control| match control {
                Control(Some(ControlType::PagedResults), raw) => {
                    Some(raw.parse::<PagedResults>().cookie)
                }
                _ => None,
            })
            .expect("the paged results control");
        if cookie.is_empty() {
            break;
        }
    }
    let users = lab.state().read().directory.users.len();
    assert_eq!(total, users);
    assert_eq!(largest_page, 1000);

    // A cookie this connection never issued is rejected.
    let ldap3::SearchResult(_, result) = ldap
        .with_controls(PagedResults {
            size: 10,
            cookie: b"forged".to_vec(),
        })
        .search(BASE, Scope::Subtree, "(objectClass=user)", vec!["1.1"])
        .await
        .expect("sent");
    assert_eq!(result.rc, 2, "{result}");
}

#[tokio::test]
async fn user_created_over_ldaps_can_bind() {
    let lab = start().await;
    let mut ldap = admin(&lab, true).await;
    let escaped_dn = "CN=New\\, Service\\+1,OU=Service Accounts,DC=lab,DC=example";
    let password = "Generated-Passw0rd-For-Tests";
    let result = ldap
        .add(
            escaped_dn,
            vec![
                attribute(
                    "objectClass",
                    &["top", "person", "organizationalPerson", "user"],
                ),
                attribute("sAMAccountName", &["svc-new"]),
                attribute("userPrincipalName", &["svc-new@lab.example"]),
                attribute("displayName", &["New service"]),
                (
                    b"unicodePwd".to_vec(),
                    HashSet::from([unicode_pwd(password)]),
                ),
                attribute("userAccountControl", &["512"]),
            ],
        )
        .await
        .expect("the add request should be sent");
    assert_eq!(result.rc, 0, "{result}");

    let (entries, _) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        "(sAMAccountName=svc-new)",
        &[
            "cn",
            "userAccountControl",
            "pwdLastSet",
            "distinguishedName",
        ],
    )
    .await;
    assert_eq!(entries[0].dn, escaped_dn);
    assert_eq!(entries[0].attrs["cn"], ["New, Service+1"]);
    assert_eq!(entries[0].attrs["userAccountControl"], ["512"]);
    assert_ne!(entries[0].attrs["pwdLastSet"], ["0"]);

    for name in ["svc-new@lab.example", escaped_dn, "LAB\\svc-new"] {
        let mut user = connect(&lab, false, false).await;
        let result = bind(&mut user, name, password).await;
        assert_eq!(result.rc, 0, "bind as {name}: {result}");
    }
}

#[tokio::test]
async fn bind_accepts_upn_with_dn_specials() {
    let lab = start().await;
    let mut ldap = admin(&lab, true).await;
    // `=` and `+` are valid in a UPN's local part, so the bind name looks like a DN but is
    // not one.
    let upn = "#svc+ops=1@lab.example";
    let dn = "CN=\\#svc\\+ops\\=1,OU=Service Accounts,DC=lab,DC=example";
    let password = "Generated-Passw0rd-For-Tests";
    let result = ldap
        .add(
            dn,
            vec![
                attribute("objectClass", &["user"]),
                attribute("sAMAccountName", &["svc-ops-1"]),
                attribute("userPrincipalName", &[upn]),
                (
                    b"unicodePwd".to_vec(),
                    HashSet::from([unicode_pwd(password)]),
                ),
                attribute("userAccountControl", &["512"]),
            ],
        )
        .await
        .expect("the add request should be sent");
    assert_eq!(result.rc, 0, "{result}");

    for name in [upn, dn, "LAB\\svc-ops-1"] {
        let mut user = connect(&lab, false, false).await;
        let result = bind(&mut user, name, password).await;
        assert_eq!(result.rc, 0, "bind as {name}: {result}");
    }
    let mut user = connect(&lab, false, false).await;
    let result = bind(&mut user, upn, "wrong password").await;
    assert_eq!(
        result.rc, 49,
        "bind as {upn} with a wrong password: {result}"
    );
}

#[tokio::test]
async fn new_users_start_disabled_and_passwords_need_tls() {
    let lab = start().await;
    let mut plain = admin(&lab, false).await;
    let dn = "CN=plain,CN=Users,DC=lab,DC=example";
    plain
        .add(
            dn,
            vec![
                attribute("objectClass", &["user"]),
                attribute("sAMAccountName", &["plain"]),
            ],
        )
        .await
        .expect("sent")
        .success()
        .expect("a user without a password is added");
    let (entries, _) = search(
        &mut plain,
        dn,
        Scope::Base,
        "(objectClass=*)",
        &[
            "userAccountControl",
            "pwdLastSet",
            "objectClass",
            "userPrincipalName",
            "displayName",
        ],
    )
    .await;
    assert!(!entries[0].attrs.contains_key("userPrincipalName"));
    assert!(!entries[0].attrs.contains_key("displayName"));
    assert_eq!(entries[0].attrs["userAccountControl"], ["546"]);
    assert_eq!(entries[0].attrs["pwdLastSet"], ["0"]);
    assert_eq!(
        entries[0].attrs["objectClass"],
        ["top", "person", "organizationalPerson", "user"]
    );

    let set_password = |ldap: &mut Ldap| {
        let mut ldap = ldap.clone();
        async move {
            ldap.modify(
                dn,
                vec![Mod::Replace(
                    b"unicodePwd".to_vec(),
                    HashSet::from([unicode_pwd("Sturdy-Passw0rd-1")]),
                )],
            )
            .await
            .expect("sent")
        }
    };
    let rejected = set_password(&mut plain).await;
    assert_eq!(rejected.rc, 53, "{rejected}");
    assert_eq!(
        rejected.text,
        "0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0\n\0"
    );

    // Enabling an account without a password fails as it does in AD.
    let enable = plain
        .modify(
            dn,
            vec![Mod::Replace("userAccountControl", HashSet::from(["512"]))],
        )
        .await
        .expect("sent");
    assert_eq!(enable.rc, 53, "{enable}");
    assert!(enable.text.starts_with("0000052D:"), "{enable}");

    // After StartTLS the same password write succeeds, and the account can be enabled.
    let mut start_tls = connect(&lab, false, true).await;
    bind(&mut start_tls, ADMIN_UPN, &admin_password(&lab))
        .await
        .success()
        .expect("bind");
    set_password(&mut start_tls)
        .await
        .success()
        .expect("the password is set over StartTLS");
    start_tls
        .modify(
            dn,
            vec![Mod::Replace("userAccountControl", HashSet::from(["512"]))],
        )
        .await
        .expect("sent")
        .success()
        .expect("the account is enabled");
    let mut user = connect(&lab, false, false).await;
    bind(&mut user, "LAB\\plain", "Sturdy-Passw0rd-1")
        .await
        .success()
        .expect("the new account binds");

    // Weak passwords fail the domain policy.
    let weak = start_tls
        .modify(
            dn,
            vec![Mod::Replace(
                b"unicodePwd".to_vec(),
                HashSet::from([unicode_pwd("plain")]),
            )],
        )
        .await
        .expect("sent");
    assert_eq!(weak.rc, 19, "{weak}");
    assert!(weak.text.contains("Att 9005a (unicodePwd)"), "{weak}");

    // The user changes its own password: delete the old value, add the new one.
    let mut user = connect(&lab, true, false).await;
    bind(&mut user, "plain", "Sturdy-Passw0rd-1")
        .await
        .success()
        .expect("bind");
    let change = |old: &str, new: &str| {
        vec![
            Mod::Delete(b"unicodePwd".to_vec(), HashSet::from([unicode_pwd(old)])),
            Mod::Add(b"unicodePwd".to_vec(), HashSet::from([unicode_pwd(new)])),
        ]
    };
    let wrong = user
        .modify(dn, change("Wrong-Password-1", "Changed-Password-2"))
        .await
        .expect("sent");
    assert_eq!(wrong.rc, 19, "{wrong}");
    assert!(wrong.text.starts_with("00000056:"), "{wrong}");
    user.modify(dn, change("Sturdy-Passw0rd-1", "Changed-Password-2"))
        .await
        .expect("sent")
        .success()
        .expect("a user changes its own password");
    let description = user
        .modify(
            dn,
            vec![Mod::Replace("description", HashSet::from(["mine"]))],
        )
        .await
        .expect("sent");
    assert_eq!(
        description.rc, 50,
        "only the password is the user's own to change"
    );
}

#[tokio::test]
async fn add_errors_match_ad() {
    let lab = start().await;
    let ldap = admin(&lab, true).await;
    let handle = ldap.clone();
    let add = move |dn: &str, attributes: Vec<(Vec<u8>, HashSet<Vec<u8>>)>| {
        let mut ldap = handle.clone();
        let dn = dn.to_string();
        async move {
            ldap.add(&dn, attributes)
                .await
                .expect("the add request should be sent")
        }
    };
    let user = |sam: &str, upn: &str| {
        vec![
            attribute("objectClass", &["user"]),
            attribute("sAMAccountName", &[sam]),
            attribute("userPrincipalName", &[upn]),
        ]
    };

    let existing = add(
        "CN=Alice Archer,CN=Users,DC=lab,DC=example",
        user("x1", "x1@lab.example"),
    )
    .await;
    assert_eq!(existing.rc, 68, "{existing}");
    assert!(existing.text.starts_with("00002071:"));
    let same_sam = add(
        "CN=Another Alice,CN=Users,DC=lab,DC=example",
        user("ALICE", "x2@lab.example"),
    )
    .await;
    assert_eq!(same_sam.rc, 68, "{same_sam}");
    assert!(same_sam.text.starts_with("00000524:"));
    let same_upn = add(
        "CN=Third Alice,CN=Users,DC=lab,DC=example",
        user("x3", "alice@lab.example"),
    )
    .await;
    assert_eq!(same_upn.rc, 19, "{same_upn}");
    assert!(same_upn.text.contains("(userPrincipalName)"), "{same_upn}");
    let orphan = add(
        "CN=x4,OU=Missing,DC=lab,DC=example",
        user("x4", "x4@lab.example"),
    )
    .await;
    assert_eq!(orphan.rc, 32, "{orphan}");
    assert_eq!(orphan.matched, BASE);
    let unknown = add(
        "CN=x5,CN=Users,DC=lab,DC=example",
        vec![
            attribute("objectClass", &["user"]),
            attribute("x-lab-unknown", &["1"]),
        ],
    )
    .await;
    assert_eq!(unknown.rc, 16, "{unknown}");
    let system = add(
        "CN=x6,CN=Users,DC=lab,DC=example",
        vec![
            attribute("objectClass", &["user"]),
            attribute("objectSid", &["S-1-5-21-1-2-3-4"]),
        ],
    )
    .await;
    assert_eq!(system.rc, 53, "{system}");

    // Writes need Domain Admins.
    prepare_user(&lab, "bob", "Bob-Password-1", |_| {});
    let mut bob = connect(&lab, true, false).await;
    bind(&mut bob, "bob@lab.example", "Bob-Password-1")
        .await
        .success()
        .expect("bind");
    let denied = bob
        .add(
            "CN=x7,CN=Users,DC=lab,DC=example",
            user("x7", "x7@lab.example"),
        )
        .await
        .expect("sent");
    assert_eq!(denied.rc, 50, "{denied}");
    assert_eq!(
        denied.text,
        "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0\n\0"
    );
}

#[tokio::test]
async fn group_membership_and_account_changes() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let pilot = "CN=SIU-Pilot,OU=Groups,DC=lab,DC=example";
    let erin = "CN=Erin Ellis,CN=Users,DC=lab,DC=example";
    let handle = ldap.clone();
    let modify = move |dn: &str, mods: Vec<Mod<&'static str>>| {
        let mut ldap = handle.clone();
        let dn = dn.to_string();
        async move {
            ldap.modify(&dn, mods)
                .await
                .expect("the modify request should be sent")
        }
    };

    modify(pilot, vec![Mod::Add("member", HashSet::from([erin]))])
        .await
        .success()
        .expect("add a member");
    let again = modify(pilot, vec![Mod::Add("member", HashSet::from([erin]))]).await;
    assert_eq!(again.rc, 68, "{again}");
    assert!(again.text.starts_with("00000562:"), "{again}");
    let (entries, _) = search(
        &mut ldap,
        erin,
        Scope::Base,
        "(objectClass=*)",
        &["memberOf"],
    )
    .await;
    assert!(entries[0].attrs["memberOf"].iter().any(|dn| dn == pilot));
    modify(pilot, vec![Mod::Delete("member", HashSet::from([erin]))])
        .await
        .success()
        .expect("remove the member");
    let gone = modify(pilot, vec![Mod::Delete("member", HashSet::from([erin]))]).await;
    assert_eq!(gone.rc, 53, "{gone}");
    assert!(gone.text.starts_with("00000561:"), "{gone}");
    let permissive = RawControl {
        ctype: "1.2.840.113556.1.4.1413".into(),
        crit: true,
        val: None,
    };
    let mut with_control = ldap.clone();
    with_control
        .with_controls(permissive)
        .modify(pilot, vec![Mod::Delete("member", HashSet::from([erin]))])
        .await
        .expect("sent")
        .success()
        .expect("permissive modify ignores an absent member");

    // Mail attributes and the account state.
    modify(
        erin,
        vec![Mod::Add(
            "proxyAddresses",
            HashSet::from(["smtp:e.ellis@lab.example"]),
        )],
    )
    .await
    .success()
    .expect("add an address");
    modify(
        erin,
        vec![Mod::Replace(
            "mail",
            HashSet::from(["erin.ellis@lab.example"]),
        )],
    )
    .await
    .success()
    .expect("replace mail");
    prepare_user(&lab, "erin", "Erin-Password-1", |_| {});
    modify(
        erin,
        vec![Mod::Replace("userAccountControl", HashSet::from(["514"]))],
    )
    .await
    .success()
    .expect("disable");
    let mut user = connect(&lab, false, false).await;
    let disabled = bind(&mut user, "erin@lab.example", "Erin-Password-1").await;
    assert!(disabled.text.contains("data 533"), "{disabled}");
    let (entries, _) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        "(proxyAddresses=smtp:E.ELLIS@lab.example)",
        &["mail"],
    )
    .await;
    assert_eq!(entries[0].attrs["mail"], ["erin.ellis@lab.example"]);
    modify(
        erin,
        vec![Mod::Replace("title", HashSet::from(["Engineer"]))],
    )
    .await
    .success()
    .expect("replace title");
    let world = lab.state().read();
    let id = world.directory.by_sam("erin").expect("erin");
    assert_eq!(
        world.directory.users[&id].title.as_deref(),
        Some("Engineer"),
        "title is the world's field, which signatures read"
    );
    assert!(
        world.directory.by_smtp("e.ellis@lab.example").is_some(),
        "the world's address index follows"
    );
}

#[tokio::test]
async fn primary_group_change_moves_the_membership() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let dave = "CN=Dave Dunn,CN=Users,DC=lab,DC=example";
    let finance = "CN=Finance,OU=Groups,DC=lab,DC=example";
    let (entries, _) = search(
        &mut ldap,
        finance,
        Scope::Base,
        "(objectClass=*)",
        &["objectSid"],
    )
    .await;
    let sid = &binary(&entries[0], "objectSid");
    let rid = u32::from_le_bytes(sid[sid.len() - 4..].try_into().expect("four bytes"));

    let result = ldap
        .modify(
            dave,
            vec![Mod::Replace(
                "primaryGroupID",
                HashSet::from([rid.to_string().as_str()]),
            )],
        )
        .await
        .expect("sent");
    assert_eq!(result.rc, 0, "{result}");
    let (entries, _) = search(
        &mut ldap,
        dave,
        Scope::Base,
        "(objectClass=*)",
        &["primaryGroupID", "memberOf"],
    )
    .await;
    assert_eq!(entries[0].attrs["primaryGroupID"], [rid.to_string()]);
    assert!(
        entries[0].attrs["memberOf"]
            .iter()
            .any(|dn| dn.starts_with("CN=Domain Users,")),
        "the old primary group lists the account"
    );
    assert!(
        !entries[0].attrs["memberOf"].iter().any(|dn| dn == finance),
        "the new primary group does not"
    );
    let (found, _) = search(
        &mut ldap,
        BASE,
        Scope::Subtree,
        &format!("(primaryGroupID={rid})"),
        &["cn"],
    )
    .await;
    assert_eq!(found.len(), 1);

    // A group the account is not a member of cannot become its primary group.
    let sales_rid = lab.state().read().directory.groups
        [&lab.state().read().directory.by_sam("Sales").expect("Sales")]
        .rid;
    let rejected = ldap
        .modify(
            dave,
            vec![Mod::Replace(
                "primaryGroupID",
                HashSet::from([sales_rid.to_string().as_str()]),
            )],
        )
        .await
        .expect("sent");
    assert_eq!(rejected.rc, 53, "{rejected}");
}

#[tokio::test]
async fn delete_removes_entries_and_memberships() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let group = add_large_group(&ldap, 3).await;
    let ou = "OU=Conformance,DC=lab,DC=example";

    let leaf = ldap.delete(ou).await.expect("sent");
    assert_eq!(leaf.rc, 66, "{leaf}");
    ldap.delete("CN=contact-0000,OU=Conformance,DC=lab,DC=example")
        .await
        .expect("sent")
        .success()
        .expect("delete a contact");
    let (entries, _) = search(
        &mut ldap,
        &group,
        Scope::Base,
        "(objectClass=*)",
        &["member"],
    )
    .await;
    assert_eq!(
        entries[0].attrs["member"].len(),
        2,
        "the deleted contact left the group"
    );

    let tree_delete = RawControl {
        ctype: "1.2.840.113556.1.4.805".into(),
        crit: true,
        val: None,
    };
    ldap.with_controls(tree_delete)
        .delete(ou)
        .await
        .expect("sent")
        .success()
        .expect("tree delete removes the subtree");
    let (_, result) = search(&mut ldap, &group, Scope::Base, "(objectClass=*)", &["cn"]).await;
    assert_eq!(result.rc, 32);

    let critical = ldap
        .delete("CN=Domain Users,CN=Users,DC=lab,DC=example")
        .await
        .expect("sent");
    assert_eq!(critical.rc, 53, "{critical}");
}

#[tokio::test]
async fn many_clients_at_once() {
    let lab = start().await;
    let password = admin_password(&lab);
    let clients = (0..40).map(|i| {
        let lab = &lab;
        let password = password.clone();
        async move {
            let mut ldap = connect(lab, i % 2 == 0, false).await;
            bind(&mut ldap, ADMIN_UPN, &password)
                .await
                .success()
                .expect("bind");
            let (entries, result) = search(
                &mut ldap,
                BASE,
                Scope::Subtree,
                &format!("(sAMAccountName=staff{:04})", i + 1),
                &["cn"],
            )
            .await;
            assert_eq!(result.rc, 0);
            assert_eq!(entries.len(), 1);
            ldap.unbind().await.expect("unbind");
        }
    });
    futures::future::join_all(clients).await;
    assert!(lab.journal().count(Service::Ldap, "search") >= 40);
}

/// Reads LDAP messages from a raw socket until the server closes it.
#[tokio::test]
async fn unbind_over_ldaps_ends_with_close_notify() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let lab = start().await;
    let url = &lab.endpoints().ldaps;
    let address = (
        url.host_str().expect("the LDAPS URL has a host"),
        url.port().expect("the LDAPS URL has a port"),
    );
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("the LDAPS port should accept connections");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("a valid server name");
    let mut tls = tokio_rustls::TlsConnector::from(tls_config(&lab))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake should succeed");

    // UnbindRequest with message ID 1 (RFC 4511 section 4.3): SEQUENCE { INTEGER 1,
    // [APPLICATION 2] NULL }.
    tls.write_all(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x42, 0x00])
        .await
        .expect("the unbind request should be sent");
    let mut rest = Vec::new();
    let read = tls.read_to_end(&mut rest).await;

    // rustls reports a close without close_notify as an UnexpectedEof error.
    assert!(
        read.is_ok(),
        "the server should end TLS with close_notify after an unbind: {read:?}"
    );
    assert!(rest.is_empty(), "an unbind gets no response: {rest:?}");
}

fn read_messages(stream: &mut std::net::TcpStream) -> Vec<ldap3_proto::proto::LdapMsg> {
    use tokio_util::codec::Decoder;
    let mut buffer = bytes::BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let mut codec = ldap3_proto::LdapCodec::default();
    let mut messages = Vec::new();
    while let Ok(Some(message)) = codec.decode(&mut buffer) {
        messages.push(message);
    }
    messages
}

#[tokio::test]
async fn malformed_input_gets_disconnection_notice() {
    let lab = start().await;
    let addr = format!(
        "{}:{}",
        lab.endpoints().ldap.host_str().expect("host"),
        lab.endpoints().ldap.port().expect("port")
    );
    // Each case: the bytes, and how many zero bytes follow them.
    let cases: [(&[u8], usize); 3] = [
        // BER, but an OCTET STRING instead of an LDAPMessage.
        (b"\x04\x03abc", 0),
        // A SEQUENCE whose protocol operation is not an LDAP operation.
        (&[0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0x00], 0),
        // A message announcing 2 GiB, and more than MaxReceiveBuffer of it.
        (
            &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01],
            10 * 1024 * 1024 + 4096,
        ),
    ];
    for (bytes, padding) in cases {
        let addr = addr.clone();
        let shown = format!("{bytes:02x?}");
        let mut bytes = bytes.to_vec();
        bytes.resize(bytes.len() + padding, 0);
        let messages = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            // The server may stop reading before the last bytes; it still sends the notice.
            let _ = stream.write_all(&bytes);
            read_messages(&mut stream)
        })
        .await
        .expect("the reader thread");
        let notice = messages
            .last()
            .unwrap_or_else(|| panic!("{shown}: a notice should arrive"));
        assert_eq!(notice.msgid, 0);
        let ldap3_proto::proto::LdapOp::ExtendedResponse(response) = &notice.op else {
            panic!("{shown}: expected an extended response, got {notice:?}");
        };
        assert_eq!(response.name.as_deref(), Some("1.3.6.1.4.1.1466.20036"));
        assert_eq!(
            response.res.code,
            ldap3_proto::proto::LdapResultCode::ProtocolError
        );
    }
    // The server still serves other connections.
    let mut ldap = connect(&lab, false, false).await;
    let (_, result) = search(
        &mut ldap,
        "",
        Scope::Base,
        "(objectClass=*)",
        &["dnsHostName"],
    )
    .await;
    assert_eq!(result.rc, 0);
}

#[tokio::test]
async fn injected_faults_shape_responses() {
    let lab = start().await;
    let mut ldap = admin(&lab, false).await;
    let rule = |operation: &str, fault: FaultKind| FaultRule {
        service: Service::Ldap,
        operation: Some(operation.into()),
        fault,
        probability: 1.0,
        remaining: Some(1),
    };
    lab.faults()
        .add(rule("search", FaultKind::ServerBusy { back_off_ms: 10 }));
    let (_, busy) = search(&mut ldap, BASE, Scope::Base, "(objectClass=*)", &["dc"]).await;
    assert_eq!(busy.rc, 51, "{busy}");
    assert!(busy.text.starts_with("0000200E:"), "{busy}");

    lab.faults()
        .add(rule("search", FaultKind::Status { code: 503 }));
    let (_, unavailable) = search(&mut ldap, BASE, Scope::Base, "(objectClass=*)", &["dc"]).await;
    assert_eq!(unavailable.rc, 52, "{unavailable}");

    lab.faults().add(rule(
        "bind",
        FaultKind::TooManyRequests {
            retry_after_secs: 1,
        },
    ));
    let mut other = connect(&lab, false, false).await;
    let throttled = bind(&mut other, ADMIN_UPN, &admin_password(&lab)).await;
    assert_eq!(throttled.rc, 51, "{throttled}");

    lab.faults().add(rule("modify", FaultKind::Drop));
    let dropped = ldap
        .modify(
            SALES,
            vec![Mod::Replace("description", HashSet::from(["x"]))],
        )
        .await;
    assert!(
        dropped.is_err(),
        "a dropped connection fails the request: {dropped:?}"
    );

    let (_, ok) = search(&mut other, "", Scope::Base, "(objectClass=*)", &["dc"]).await;
    assert_eq!(ok.rc, 0, "faults with a count stop after it");
    let statuses: Vec<(String, u16)> = lab
        .journal()
        .recent()
        .into_iter()
        .filter(|entry| entry.service == Service::Ldap)
        .map(|entry| (entry.operation, entry.status))
        .collect();
    for expected in [("search", 51), ("search", 52), ("bind", 51), ("modify", 52)] {
        assert!(
            statuses.contains(&(expected.0.to_string(), expected.1)),
            "{expected:?} in {statuses:?}"
        );
    }
}

/// Runs `ldapsearch` with the lab CA, or returns `None` and prints why when it is missing.
fn ldapsearch(lab: &Lab, args: &[&str]) -> Option<String> {
    if Command::new("ldapsearch").arg("-VV").output().is_err() {
        eprintln!("skipping the ldapsearch checks: install ldap-utils (scripts/setup.sh does)");
        return None;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, lab.ca_pem()).expect("write the CA");
    let output = Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", &ca)
        .env("LDAPTLS_REQCERT", "demand")
        // Keep the user's own ldaprc out of the way.
        .env("HOME", dir.path())
        .args(args)
        .output()
        .expect("ldapsearch runs");
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldapsearch_sees_ad_shapes() {
    let lab = start().await;
    let ldap_url = lab.endpoints().ldap.to_string();
    let ldaps_url = lab.endpoints().ldaps.to_string();
    let password = admin_password(&lab);

    let run = |args: Vec<String>| {
        let lab = &lab;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tokio::task::block_in_place(|| ldapsearch(lab, &args))
        }
    };
    let Some(root) = run(vec![
        "-x".into(),
        "-H".into(),
        ldap_url.clone(),
        "-b".into(),
        "".into(),
        "-s".into(),
        "base".into(),
        "(objectClass=*)".into(),
    ])
    .await
    else {
        return;
    };
    assert!(
        root.contains("defaultNamingContext: DC=lab,DC=example"),
        "{root}"
    );
    assert!(
        root.contains("supportedControl: 1.2.840.113556.1.4.319"),
        "{root}"
    );
    assert!(root.contains("result: 0 Success"), "{root}");

    let anonymous = run(vec![
        "-x".into(),
        "-H".into(),
        ldap_url.clone(),
        "-b".into(),
        BASE.into(),
        "(sAMAccountName=alice)".into(),
    ])
    .await
    .expect("ldapsearch");
    assert!(
        anonymous.contains("result: 1 Operations error"),
        "{anonymous}"
    );
    assert!(anonymous.contains("000004DC"), "{anonymous}");

    let wrong = run(vec![
        "-x".into(),
        "-H".into(),
        ldap_url.clone(),
        "-D".into(),
        ADMIN_UPN.into(),
        "-w".into(),
        "Wrong-Password-1".into(),
        "-b".into(),
        BASE.into(),
    ])
    .await
    .expect("ldapsearch");
    assert!(wrong.contains("Invalid credentials (49)"), "{wrong}");
    assert!(wrong.contains("data 52e"), "{wrong}");

    // Over LDAPS, as the down-level name, with paging, the whole staff OU.
    let paged = run(vec![
        "-x".into(),
        "-H".into(),
        ldaps_url.clone(),
        "-D".into(),
        "LAB\\Administrator".into(),
        "-w".into(),
        password.clone(),
        "-b".into(),
        "OU=Staff,DC=lab,DC=example".into(),
        "-E".into(),
        "pr=400/noprompt".into(),
        "(objectClass=user)".into(),
        "sAMAccountName".into(),
    ])
    .await
    .expect("ldapsearch");
    assert_eq!(
        paged.matches("\nsAMAccountName: staff").count(),
        1600,
        "{}",
        &paged[..paged.len().min(2000)]
    );
    assert!(paged.contains("result: 0 Success"));

    // StartTLS with the in-chain rule, and the ranged member attribute.
    let ranged = run(vec![
        "-x".into(),
        "-ZZ".into(),
        "-H".into(),
        ldap_url.clone(),
        "-D".into(),
        ADMIN_DN.into(),
        "-w".into(),
        password.clone(),
        "-b".into(),
        ALL_STAFF.into(),
        "-s".into(),
        "base".into(),
        "(objectClass=*)".into(),
        "member".into(),
    ])
    .await
    .expect("ldapsearch");
    assert!(
        ranged.contains("member;range=0-1499: "),
        "{}",
        &ranged[..ranged.len().min(2000)]
    );
}
