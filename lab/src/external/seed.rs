//! Seeding: writing the world's users and groups into the external directory.
//!
//! Every object of the world's domain keeps its place relative to the domain: a user at
//! `CN=Alice Archer,CN=Users,DC=lab,DC=example` goes to
//! `CN=Alice Archer,CN=Users,OU=siu-lab,<base DN>`, with the same sAMAccountName, UPN, mail,
//! proxyAddresses, title and enabled state, and the password the world keeps for it. Users
//! without a password in the world (the generated bulk users) get none in the directory
//! either, with `PASSWD_NOTREQD` set so that AD accepts them enabled. That keeps seeding
//! fast: deriving the password hashes and Kerberos keys of an account costs Samba 4.17
//! about 40 ms, nine tenths of an add (measured with ldapmodify on the 2-core development
//! machine). Such an account cannot sign in to the lab's EWS either, because the lab rejects
//! empty Basic passwords. Groups keep their nesting, and their members are written in
//! batches.
//!
//! Seeding compares before it writes, so a second run with the same world changes nothing.
//! It reads everything below the seed root in one paged search, checks each known password
//! with a bind as its user, and only adds, replaces or removes what differs. Built-in groups
//! (Domain Users, Domain Admins) and accounts from other directories are not seeded. A user
//! or group whose name the external domain already uses outside the seed root, such as the
//! fixture's `Administrator`, is skipped and listed in [`SeedReport::skipped`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ldap3::{Ldap, Mod, Scope, SearchEntry};

use super::connection::{
    ENTRY_ALREADY_EXISTS, INVALID_CREDENTIALS, NO_SUCH_OBJECT, SUCCESS, check, first_value, values,
};
use super::lookup::logon_failure;
use super::{ExternalClient, ExternalError};
use crate::world::World;
use crate::world::directory::{normalize_dn, uac};

/// The `userAccountControl` flags that seeding writes and compares. Other flags, which the
/// directory or an administrator may set, keep their values.
const MANAGED_FLAGS: u32 = uac::ACCOUNT_DISABLE
    | uac::PASSWORD_NOT_REQUIRED
    | uac::NORMAL_ACCOUNT
    | uac::DONT_EXPIRE_PASSWORD;

/// Groups whose RID is below this are built into every domain and are not seeded.
const FIRST_ORDINARY_RID: u32 = 1000;

/// Requests in flight at once on the seeding connection. The server then spends its time on
/// the writes rather than waiting for the next request.
const CONCURRENT_REQUESTS: usize = 16;

/// Values per modify request when changing a group's members.
const MEMBERS_PER_REQUEST: usize = 1000;

/// LDAP result code `constraintViolation`, which Samba 4.17 returns for a UPN already in use.
const CONSTRAINT_VIOLATION: u32 = 19;

/// The changes of one seeding run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Organizational units and containers added.
    pub containers_added: usize,
    /// Users added.
    pub users_added: usize,
    /// Existing users whose attributes were replaced.
    pub users_updated: usize,
    /// Existing users whose password was set again because it no longer matched.
    pub passwords_set: usize,
    /// Groups added.
    pub groups_added: usize,
    /// Existing groups whose attributes were replaced.
    pub groups_updated: usize,
    /// Member values added to groups.
    pub members_added: usize,
    /// Member values removed from groups.
    pub members_removed: usize,
    /// Users and groups that were already as the world describes them.
    pub unchanged: usize,
    /// Objects that were not seeded, each with the reason.
    pub skipped: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl SeedReport {
    /// Returns the number of writes the run made, 0 when the directory already matched.
    pub fn changes(&self) -> usize {
        self.containers_added
            + self.users_added
            + self.users_updated
            + self.passwords_set
            + self.groups_added
            + self.groups_updated
            + self.members_added
            + self.members_removed
    }
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users added, {} updated, {} passwords set; {} groups added, {} updated; \
             {} members added, {} removed; {} containers added; {} unchanged; {} skipped; \
             in {:.1} s",
            self.users_added,
            self.users_updated,
            self.passwords_set,
            self.groups_added,
            self.groups_updated,
            self.members_added,
            self.members_removed,
            self.containers_added,
            self.unchanged,
            self.skipped.len(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// A user as seeding writes it.
#[derive(Debug, Clone)]
struct SeedUser {
    dn: String,
    sam: String,
    upn: String,
    display_name: String,
    title: Option<String>,
    mail: Option<String>,
    proxy_addresses: Vec<String>,
    uac: u32,
    password: Option<String>,
}

/// A group as seeding writes it, with its members' DNs in the external directory.
#[derive(Debug, Clone)]
struct SeedGroup {
    dn: String,
    sam: String,
    group_type: i32,
    mail: Option<String>,
    members: Vec<String>,
}

/// Everything seeding writes, computed from the world without touching the directory.
#[derive(Debug, Default)]
struct Plan {
    /// Containers below and including the seed root, parents first.
    containers: Vec<String>,
    users: Vec<SeedUser>,
    groups: Vec<SeedGroup>,
}

/// Writes the world's users and groups into the external directory below
/// [`ExternalDirectory::seed_root`](super::ExternalDirectory::seed_root) and returns the
/// changes. Objects that join the world after the call are not seeded.
pub async fn seed(client: &ExternalClient, world: &World) -> Result<SeedReport, ExternalError> {
    let started = Instant::now();
    let root = client.directory().seed_root();
    let plan = plan(world, &root);
    tracing::info!(
        url = %client.directory().url,
        root,
        users = plan.users.len(),
        groups = plan.groups.len(),
        "seeding the external directory"
    );
    let mut report = SeedReport::default();
    let mut ldap = client.admin().await?;

    // 1. Containers, parents first.
    let existing = search_below(
        client,
        &mut ldap,
        &root,
        "(|(objectClass=organizationalUnit)(objectClass=container))",
        &["1.1"],
    )
    .await?;
    let existing: HashSet<String> = existing.keys().cloned().collect();
    for dn in &plan.containers {
        if existing.contains(&normalize_dn(dn)) {
            continue;
        }
        let class = if dn.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("OU=")) {
            "organizationalUnit"
        } else {
            "container"
        };
        let result = add(
            client,
            &mut ldap,
            dn,
            vec![attribute("objectClass", [class])],
        )
        .await?;
        if result != ENTRY_ALREADY_EXISTS {
            report.containers_added += 1;
        }
    }

    // 2. What is already there.
    let mut present = search_below(
        client,
        &mut ldap,
        &root,
        "(|(&(objectCategory=person)(objectClass=user))(objectClass=group))",
        &[
            "objectClass",
            "sAMAccountName",
            "userPrincipalName",
            "displayName",
            "title",
            "mail",
            "proxyAddresses",
            "userAccountControl",
            "groupType",
            "member",
        ],
    )
    .await?;

    // 3. Users, several requests in flight at once.
    let outcomes: Vec<(&SeedUser, Result<Outcome, ExternalError>)> =
        futures::stream::iter(plan.users.iter())
            .map(|user| {
                let ldap = ldap.clone();
                let entry = present.get(&normalize_dn(&user.dn)).cloned();
                async move { (user, seed_user(client, ldap, user, entry.as_ref()).await) }
            })
            .buffer_unordered(CONCURRENT_REQUESTS)
            .collect()
            .await;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis(),
        "seeded the users"
    );
    let mut seeded: HashSet<String> = HashSet::new();
    for (user, outcome) in outcomes {
        let outcome = outcome?;
        if !matches!(outcome, Outcome::Skipped(_)) {
            seeded.insert(normalize_dn(&user.dn));
        }
        report.count_user(outcome, &user.dn);
    }

    // 4. Groups without their members, so that nesting can refer to any of them.
    for group in &plan.groups {
        let key = normalize_dn(&group.dn);
        let outcome = seed_group(client, &mut ldap, group, present.get(&key)).await?;
        if !matches!(outcome, Outcome::Skipped(_)) {
            seeded.insert(key);
        }
        report.count_group(outcome, &group.dn);
    }

    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis(),
        "seeded the groups"
    );

    // 5. Members: add what is missing and remove what the world does not list.
    for group in &plan.groups {
        let key = normalize_dn(&group.dn);
        if !seeded.contains(&key) {
            continue;
        }
        let current = match present.remove(&key) {
            Some(entry) => client.all_values(&mut ldap, &entry, "member").await?,
            None => Vec::new(),
        };
        let current_keys: HashSet<String> = current.iter().map(|dn| normalize_dn(dn)).collect();
        let expected: Vec<&String> = group
            .members
            .iter()
            .filter(|dn| seeded.contains(&normalize_dn(dn)))
            .collect();
        let expected_keys: HashSet<String> = expected.iter().map(|dn| normalize_dn(dn)).collect();
        let missing: Vec<&String> = expected
            .into_iter()
            .filter(|dn| !current_keys.contains(&normalize_dn(dn)))
            .collect();
        let extra: Vec<&String> = current
            .iter()
            .filter(|dn| !expected_keys.contains(&normalize_dn(dn)))
            .collect();
        for chunk in missing.chunks(MEMBERS_PER_REQUEST) {
            modify(
                client,
                &mut ldap,
                &group.dn,
                vec![Mod::Add(b("member"), set(chunk.iter().copied()))],
            )
            .await?;
        }
        for chunk in extra.chunks(MEMBERS_PER_REQUEST) {
            modify(
                client,
                &mut ldap,
                &group.dn,
                vec![Mod::Delete(b("member"), set(chunk.iter().copied()))],
            )
            .await?;
        }
        report.members_added += missing.len();
        report.members_removed += extra.len();
    }

    let _ = ldap.unbind().await;
    report.elapsed = started.elapsed();
    tracing::info!(root, %report, "seeded the external directory");
    Ok(report)
}

/// The result of seeding one user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Added,
    /// Attributes replaced, and whether the password was set again.
    Updated {
        attributes: bool,
        password: bool,
    },
    Unchanged,
    Skipped(String),
}

impl SeedReport {
    fn count_user(&mut self, outcome: Outcome, dn: &str) {
        match outcome {
            Outcome::Added => self.users_added += 1,
            Outcome::Updated {
                attributes,
                password,
            } => {
                self.users_updated += usize::from(attributes);
                self.passwords_set += usize::from(password);
            }
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Skipped(reason) => self.skipped.push(format!("{dn}: {reason}")),
        }
    }

    fn count_group(&mut self, outcome: Outcome, dn: &str) {
        match outcome {
            Outcome::Added => self.groups_added += 1,
            Outcome::Updated { .. } => self.groups_updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Skipped(reason) => self.skipped.push(format!("{dn}: {reason}")),
        }
    }
}

/// Builds the plan: what the world's domain looks like below `root`.
fn plan(world: &World, root: &str) -> Plan {
    let base = &world.directory.base_dn;
    let rebase = |dn: &str| rebase(dn, base, root);
    let mut plan = Plan::default();

    let mut users: Vec<_> = world.directory.users.values().collect();
    users.sort_by(|a, b| a.sam.cmp(&b.sam));
    for user in users {
        let Some(dn) = rebase(&user.dn) else {
            continue;
        };
        plan.users.push(SeedUser {
            dn,
            sam: user.sam.clone(),
            upn: user.upn.clone(),
            display_name: user.display_name.clone(),
            title: user.title.clone(),
            mail: user.mail.clone(),
            proxy_addresses: user.proxy_addresses.clone(),
            uac: match user.password {
                Some(_) => user.uac & MANAGED_FLAGS,
                None => (user.uac & MANAGED_FLAGS) | uac::PASSWORD_NOT_REQUIRED,
            },
            password: user.password.clone(),
        });
    }

    let mut groups: Vec<_> = world
        .directory
        .groups
        .values()
        .filter(|g| g.rid >= FIRST_ORDINARY_RID)
        .collect();
    groups.sort_by(|a, b| a.sam.cmp(&b.sam));
    let seeded_groups: HashSet<_> = groups.iter().map(|g| g.id).collect();
    for group in groups {
        let Some(dn) = rebase(&group.dn) else {
            continue;
        };
        let members = group
            .members
            .iter()
            .filter(|id| world.directory.users.contains_key(id) || seeded_groups.contains(id))
            .filter_map(|id| world.directory.dn_of(*id))
            .filter_map(rebase)
            .collect();
        plan.groups.push(SeedGroup {
            dn,
            sam: group.sam.clone(),
            group_type: group.group_type(),
            mail: group.mail.clone(),
            members,
        });
    }

    // Every container the objects need, and those the world lists, parents first.
    let mut containers: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut add_with_parents = |dn: &str| {
        let mut current = Some(dn.to_string());
        while let Some(dn) = current {
            if dn.len() < root.len() {
                break;
            }
            current = parent(&dn).map(str::to_string);
            containers.insert((rdn_count(&dn), dn));
        }
    };
    add_with_parents(root);
    for dn in world.directory.containers.iter().filter_map(|c| rebase(c)) {
        add_with_parents(&dn);
    }
    for dn in plan
        .users
        .iter()
        .map(|u| &u.dn)
        .chain(plan.groups.iter().map(|g| &g.dn))
    {
        if let Some(container) = parent(dn) {
            add_with_parents(container);
        }
    }
    plan.containers = containers.into_iter().map(|(_, dn)| dn).collect();
    plan
}

/// Moves a DN from below `base` to below `root`. Returns `None` for `base` itself and for a DN
/// outside it, such as an account that came from another directory.
fn rebase(dn: &str, base: &str, root: &str) -> Option<String> {
    let base = normalize_dn(base);
    let mut rest = dn;
    while let Some(above) = parent(rest) {
        if normalize_dn(above) == base {
            let relative = &dn[..dn.len() - above.len() - 1];
            return Some(format!("{relative},{root}"));
        }
        rest = above;
    }
    None
}

/// Returns the parent of a DN: everything after the first comma that a backslash does not
/// escape.
fn parent(dn: &str) -> Option<&str> {
    let mut escaped = false;
    for (index, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return Some(&dn[index + 1..]),
            _ => escaped = false,
        }
    }
    None
}

fn rdn_count(dn: &str) -> usize {
    let mut count = 1;
    let mut rest = dn;
    while let Some(parent) = parent(rest) {
        count += 1;
        rest = parent;
    }
    count
}

/// Searches the subtree below `root` and returns the entries by normalized DN, or an empty
/// map when `root` does not exist yet.
async fn search_below(
    client: &ExternalClient,
    ldap: &mut Ldap,
    root: &str,
    filter: &str,
    attributes: &[&str],
) -> Result<HashMap<String, SearchEntry>, ExternalError> {
    match client
        .search(ldap, root, Scope::Subtree, filter, attributes)
        .await
    {
        Ok(entries) => Ok(entries
            .into_iter()
            .map(|entry| (normalize_dn(&entry.dn), entry))
            .collect()),
        Err(ExternalError::Rejected { code, .. }) if code == NO_SUCH_OBJECT => Ok(HashMap::new()),
        Err(error) => Err(error),
    }
}

type Attribute = (Vec<u8>, HashSet<Vec<u8>>);

fn b(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn attribute<'a>(name: &str, values: impl IntoIterator<Item = &'a str>) -> Attribute {
    (b(name), values.into_iter().map(b).collect())
}

fn set<'a>(values: impl IntoIterator<Item = &'a String>) -> HashSet<Vec<u8>> {
    values.into_iter().map(|v| b(v)).collect()
}

/// Encodes a password as `unicodePwd` takes it: the password in double quotes, in UTF-16LE.
fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Adds an entry and returns `SUCCESS`, or the result code when the DN, sAMAccountName or
/// UPN is taken (`ENTRY_ALREADY_EXISTS`, `CONSTRAINT_VIOLATION`). Other results fail.
async fn add(
    client: &ExternalClient,
    ldap: &mut Ldap,
    dn: &str,
    attributes: Vec<Attribute>,
) -> Result<u32, ExternalError> {
    let attributes = attributes
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .collect();
    let result = ldap
        .add(dn, attributes)
        .await
        .map_err(|source| ExternalError::Connection {
            action: format!("add {dn}"),
            url: client.directory().url.clone(),
            source: Box::new(source),
        })?;
    match result.rc {
        ENTRY_ALREADY_EXISTS | CONSTRAINT_VIOLATION => Ok(result.rc),
        _ => check(result, "adding", dn).map(|_| SUCCESS),
    }
}

async fn modify(
    client: &ExternalClient,
    ldap: &mut Ldap,
    dn: &str,
    modifications: Vec<Mod<Vec<u8>>>,
) -> Result<(), ExternalError> {
    let result =
        ldap.modify(dn, modifications)
            .await
            .map_err(|source| ExternalError::Connection {
                action: format!("modify {dn}"),
                url: client.directory().url.clone(),
                source: Box::new(source),
            })?;
    check(result, "modifying", dn).map(|_| ())
}

/// Returns replacements for the attributes of `entry` that differ from `expected`. An
/// expected attribute without values is deleted.
fn differences(entry: &SearchEntry, expected: &[(&str, Vec<String>)]) -> Vec<Mod<Vec<u8>>> {
    expected
        .iter()
        .filter(|(name, expected_values)| {
            let mut current = values(entry, name);
            let mut expected_values = expected_values.clone();
            current.sort();
            expected_values.sort();
            current != expected_values
        })
        .map(|(name, expected_values)| Mod::Replace(b(name), set(expected_values.iter())))
        .collect()
}

fn user_attributes(user: &SeedUser) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("userPrincipalName", vec![user.upn.clone()]),
        ("displayName", vec![user.display_name.clone()]),
        ("title", user.title.iter().cloned().collect()),
        ("mail", user.mail.iter().cloned().collect()),
        ("proxyAddresses", user.proxy_addresses.clone()),
    ]
}

async fn seed_user(
    client: &ExternalClient,
    mut ldap: Ldap,
    user: &SeedUser,
    entry: Option<&SearchEntry>,
) -> Result<Outcome, ExternalError> {
    let Some(entry) = entry else {
        let mut attributes: Vec<Attribute> = vec![
            attribute("objectClass", ["user"]),
            attribute("sAMAccountName", [user.sam.as_str()]),
            attribute("userAccountControl", [user.uac.to_string().as_str()]),
        ];
        for (name, values) in user_attributes(user) {
            attributes.push((b(name), set(values.iter())));
        }
        if let Some(password) = &user.password {
            attributes.push((b("unicodePwd"), HashSet::from([unicode_pwd(password)])));
        }
        return Ok(match add(client, &mut ldap, &user.dn, attributes).await? {
            SUCCESS => Outcome::Added,
            code => Outcome::Skipped(format!(
                "the external domain already uses the name (result code {code})"
            )),
        });
    };

    let mut modifications = differences(entry, &user_attributes(user));
    let current_flags = first_value(entry, "userAccountControl")
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(0, |v| v as u32);
    if current_flags & MANAGED_FLAGS != user.uac {
        let flags = (current_flags & !MANAGED_FLAGS) | user.uac;
        modifications.push(Mod::Replace(
            b("userAccountControl"),
            HashSet::from([b(&flags.to_string())]),
        ));
    }
    let password = match &user.password {
        Some(password) if !password_matches(client, &user.dn, password).await? => {
            modifications.push(Mod::Replace(
                b("unicodePwd"),
                HashSet::from([unicode_pwd(password)]),
            ));
            true
        }
        _ => false,
    };
    if modifications.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    let attributes = modifications.len() > usize::from(password);
    modify(client, &mut ldap, &user.dn, modifications).await?;
    Ok(Outcome::Updated {
        attributes,
        password,
    })
}

/// Checks a password with a bind as its user. A bind with the right password to a disabled
/// account, or one that must change its password, fails with its own reason, which still
/// means the password matches.
async fn password_matches(
    client: &ExternalClient,
    dn: &str,
    password: &str,
) -> Result<bool, ExternalError> {
    let mut ldap = client.connect().await?;
    let result = client.bind(&mut ldap, dn, password).await?;
    let _ = ldap.unbind().await;
    Ok(match result.rc {
        SUCCESS => true,
        INVALID_CREDENTIALS => !matches!(
            logon_failure(&result.text),
            "wrong password" | "no such user" | "invalid credentials"
        ),
        _ => false,
    })
}

async fn seed_group(
    client: &ExternalClient,
    ldap: &mut Ldap,
    group: &SeedGroup,
    entry: Option<&SearchEntry>,
) -> Result<Outcome, ExternalError> {
    let proxy: Vec<String> = group.mail.iter().map(|m| format!("SMTP:{m}")).collect();
    let expected = vec![
        ("groupType", vec![group.group_type.to_string()]),
        ("mail", group.mail.iter().cloned().collect()),
        ("proxyAddresses", proxy),
    ];
    let Some(entry) = entry else {
        let mut attributes = vec![
            attribute("objectClass", ["group"]),
            attribute("sAMAccountName", [group.sam.as_str()]),
        ];
        for (name, values) in &expected {
            attributes.push((b(name), set(values.iter())));
        }
        return Ok(match add(client, ldap, &group.dn, attributes).await? {
            SUCCESS => Outcome::Added,
            code => Outcome::Skipped(format!(
                "the external domain already uses the name (result code {code})"
            )),
        });
    };
    let modifications = differences(entry, &expected);
    if modifications.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    modify(client, ldap, &group.dn, modifications).await?;
    Ok(Outcome::Updated {
        attributes: true,
        password: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_move_below_the_seed_root() {
        let root = "OU=siu-lab,DC=siu,DC=test";
        let base = "DC=lab,DC=example";
        assert_eq!(
            rebase("CN=Alice Archer,CN=Users,DC=lab,DC=example", base, root).as_deref(),
            Some("CN=Alice Archer,CN=Users,OU=siu-lab,DC=siu,DC=test")
        );
        assert_eq!(
            rebase("OU=Staff,dc=lab, dc=example", base, root).as_deref(),
            Some("OU=Staff,OU=siu-lab,DC=siu,DC=test")
        );
        assert_eq!(rebase("DC=lab,DC=example", base, root), None);
        assert_eq!(rebase("CN=svc,OU=x,DC=siu,DC=test", base, root), None);
    }

    #[test]
    fn parents_skip_escaped_commas() {
        assert_eq!(
            parent("CN=Doe\\, John,OU=Staff,DC=x"),
            Some("OU=Staff,DC=x")
        );
        assert_eq!(parent("DC=x"), None);
        assert_eq!(rdn_count("CN=Doe\\, John,OU=Staff,DC=x"), 3);
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(unicode_pwd("a"), vec![b'"', 0, b'a', 0, b'"', 0]);
    }

    #[test]
    fn plan_covers_the_fixture() {
        let (world, _) = World::from_fixture(&crate::Fixture::default_org()).expect("world");
        let root = "OU=siu-lab,DC=siu,DC=test";
        let plan = plan(&world, root);

        assert_eq!(plan.containers.first().map(String::as_str), Some(root));
        for container in ["CN=Users", "OU=Staff", "OU=Groups", "OU=Service Accounts"] {
            let dn = format!("{container},{root}");
            assert!(
                plan.containers.contains(&dn),
                "{dn} in {:?}",
                plan.containers
            );
        }
        assert_eq!(plan.users.len(), world.directory.users.len());
        let frank = plan.users.iter().find(|u| u.sam == "frank").expect("frank");
        assert_ne!(frank.uac & uac::ACCOUNT_DISABLE, 0, "frank stays disabled");
        assert!(frank.password.is_some());
        let staff = plan
            .users
            .iter()
            .find(|u| u.sam == "staff0001")
            .expect("staff0001");
        assert!(staff.password.is_none());
        assert_ne!(
            staff.uac & uac::PASSWORD_NOT_REQUIRED,
            0,
            "a user without a password needs PASSWD_NOTREQD"
        );
        let heidi = plan.users.iter().find(|u| u.sam == "hhill").expect("hhill");
        assert_eq!(heidi.mail.as_deref(), Some("heidi.hill@lab.example"));

        let groups: Vec<&str> = plan.groups.iter().map(|g| g.sam.as_str()).collect();
        assert!(!groups.contains(&"Domain Users"), "{groups:?}");
        let all_staff = plan
            .groups
            .iter()
            .find(|g| g.sam == "All-Staff")
            .expect("All-Staff");
        assert!(
            all_staff.members.len() > 1500,
            "{}",
            all_staff.members.len()
        );
        let sales = plan
            .groups
            .iter()
            .find(|g| g.sam == "Sales")
            .expect("Sales");
        assert!(
            sales
                .members
                .iter()
                .any(|m| m.starts_with("CN=Sales-EMEA,OU=Groups,OU=siu-lab")),
            "{:?}",
            sales.members
        );
    }
}
