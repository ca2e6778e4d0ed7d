//! Search filters: decoding from BER with binary assertion values, and evaluation against
//! entries with AD's comparison rules and matching rules.
//!
//! `ldap3_proto` decodes assertion values into `String` and rejects the whole message when a
//! value is not UTF-8, but AD clients put binary values into filters (`objectSid`,
//! `objectGUID`), so the lab decodes filters itself and keeps values as bytes.
//!
//! Evaluation is three-valued as RFC 4511 section 4.5.1.7 requires: a comparison that
//! cannot be made (an integer attribute against text, an unknown matching rule) is
//! Undefined, and `!` of Undefined stays Undefined, so it never matches.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use ldap3_lber::common::TagClass;
use ldap3_lber::structure::{PL, StructureTag};
use uuid::Uuid;

use super::dn;
use super::entries::{Entry, ObjectId, sid_bytes};
use super::schema::{self, Syntax};
use crate::world::directory::Directory;

/// LDAP_MATCHING_RULE_BIT_AND: every bit of the assertion is set in the value.
pub(super) const BIT_AND: &str = "1.2.840.113556.1.4.803";
/// LDAP_MATCHING_RULE_BIT_OR: any bit of the assertion is set in the value.
pub(super) const BIT_OR: &str = "1.2.840.113556.1.4.804";
/// LDAP_MATCHING_RULE_IN_CHAIN: follows `member` / `memberOf` links to any depth.
pub(super) const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// Maximum nesting of `&`, `|` and `!`.
const MAX_DEPTH: usize = 64;

/// A search filter with its assertion values as bytes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Filter {
    /// `(&...)`: every part matches.
    And(Vec<Filter>),
    /// `(|...)`: any part matches.
    Or(Vec<Filter>),
    /// `(!...)`.
    Not(Box<Filter>),
    /// `(attr=value)`.
    Equality(String, Vec<u8>),
    /// `(attr=ini*any*fin)`.
    Substrings(String, Substrings),
    /// `(attr>=value)`.
    GreaterOrEqual(String, Vec<u8>),
    /// `(attr<=value)`.
    LessOrEqual(String, Vec<u8>),
    /// `(attr=*)`.
    Present(String),
    /// `(attr~=value)`, which AD evaluates as equality.
    Approx(String, Vec<u8>),
    /// `(attr:rule:=value)`.
    Extensible {
        /// The matching rule OID.
        rule: Option<String>,
        /// The attribute.
        attribute: Option<String>,
        /// The assertion value.
        value: Vec<u8>,
    },
}

/// The parts of a substring assertion.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Substrings {
    /// The value starts with this.
    pub initial: Option<Vec<u8>>,
    /// The value contains these, in order.
    pub any: Vec<Vec<u8>>,
    /// The value ends with this.
    pub last: Option<Vec<u8>>,
}

/// Returns the tag that replaces a filter the lab decodes itself: `(objectClass=*)`.
pub(super) fn placeholder() -> StructureTag {
    StructureTag {
        class: TagClass::Context,
        id: 7,
        payload: PL::P(b"objectClass".to_vec()),
    }
}

/// Decodes a filter from its BER structure (RFC 4511 section 4.5.1).
pub(super) fn decode(tag: StructureTag) -> Result<Filter, String> {
    decode_at(tag, MAX_DEPTH)
}

fn decode_at(tag: StructureTag, depth: usize) -> Result<Filter, String> {
    if depth == 0 {
        return Err("the filter nests too deeply".into());
    }
    if tag.class != TagClass::Context {
        return Err(format!("filter tag of class {:?}", tag.class));
    }
    let children = |payload: PL| match payload {
        PL::C(children) => Ok(children),
        PL::P(_) => Err(format!("filter choice [{}] is not constructed", tag.id)),
    };
    match tag.id {
        0 | 1 => {
            let parts = children(tag.payload)?
                .into_iter()
                .map(|t| decode_at(t, depth - 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if tag.id == 0 {
                Filter::And(parts)
            } else {
                Filter::Or(parts)
            })
        }
        2 => {
            let mut inner = children(tag.payload)?;
            if inner.len() != 1 {
                return Err("a not filter holds one filter".into());
            }
            let inner = inner.pop().expect("length checked");
            Ok(Filter::Not(Box::new(decode_at(inner, depth - 1)?)))
        }
        3 | 5 | 6 | 8 => {
            let (attribute, value) = assertion(children(tag.payload)?)?;
            Ok(match tag.id {
                3 => Filter::Equality(attribute, value),
                5 => Filter::GreaterOrEqual(attribute, value),
                6 => Filter::LessOrEqual(attribute, value),
                _ => Filter::Approx(attribute, value),
            })
        }
        4 => {
            let mut parts = children(tag.payload)?.into_iter();
            let attribute = text(primitive(parts.next())?)?;
            let sequence = match parts.next().map(|t| t.payload) {
                Some(PL::C(items)) => items,
                _ => return Err("a substring filter without substrings".into()),
            };
            let mut substrings = Substrings::default();
            for item in sequence {
                let value = primitive(Some(item.clone()))?;
                match item.id {
                    0 if substrings.initial.is_none() && substrings.any.is_empty() => {
                        substrings.initial = Some(value)
                    }
                    1 if substrings.last.is_none() => substrings.any.push(value),
                    2 if substrings.last.is_none() => substrings.last = Some(value),
                    _ => return Err("substrings out of order".into()),
                }
            }
            Ok(Filter::Substrings(attribute, substrings))
        }
        7 => match tag.payload {
            PL::P(bytes) => Ok(Filter::Present(text(bytes)?)),
            PL::C(_) => Err("a present filter is primitive".into()),
        },
        9 => {
            let mut rule = None;
            let mut attribute = None;
            let mut value = None;
            for part in children(tag.payload)? {
                let id = part.id;
                let bytes = primitive(Some(part))?;
                match id {
                    1 => rule = Some(text(bytes)?),
                    2 => attribute = Some(text(bytes)?),
                    3 => value = Some(bytes),
                    4 => {}
                    other => return Err(format!("matching rule assertion part [{other}]")),
                }
            }
            let value = value.ok_or("a matching rule assertion without a value")?;
            if rule.is_none() && attribute.is_none() {
                return Err("a matching rule assertion without a rule or an attribute".into());
            }
            Ok(Filter::Extensible {
                rule,
                attribute,
                value,
            })
        }
        other => Err(format!("unknown filter choice [{other}]")),
    }
}

fn assertion(parts: Vec<StructureTag>) -> Result<(String, Vec<u8>), String> {
    let mut parts = parts.into_iter();
    let attribute = text(primitive(parts.next())?)?;
    let value = primitive(parts.next())?;
    Ok((attribute, value))
}

fn primitive(tag: Option<StructureTag>) -> Result<Vec<u8>, String> {
    match tag.map(|t| t.payload) {
        Some(PL::P(bytes)) => Ok(bytes),
        _ => Err("a filter part is missing or constructed".into()),
    }
}

fn text(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|_| "an attribute description is not UTF-8".to_string())
}

/// The result of a filter for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Truth {
    True,
    False,
    Undefined,
}

impl From<bool> for Truth {
    fn from(value: bool) -> Self {
        if value { Truth::True } else { Truth::False }
    }
}

/// A filter prepared for one search: the in-chain assertions are resolved once into the
/// set of objects they match, instead of walking the groups for every entry.
pub(super) struct Matcher<'w> {
    directory: &'w Directory,
    filter: &'w Filter,
    in_chain: HashMap<(bool, String), HashSet<Uuid>>,
    /// Assertion values converted to their attribute's syntax, by the addresses of the
    /// filter's attribute and value, so each is converted once per search, not per entry.
    assertions: RefCell<HashMap<(usize, usize), Option<Assertion>>>,
}

impl<'w> Matcher<'w> {
    /// Prepares `filter` for searches of `directory`.
    pub fn new(directory: &'w Directory, filter: &'w Filter) -> Self {
        let mut matcher = Matcher {
            directory,
            filter,
            in_chain: HashMap::new(),
            assertions: RefCell::new(HashMap::new()),
        };
        matcher.resolve_in_chain(filter);
        matcher
    }

    fn resolve_in_chain(&mut self, filter: &Filter) {
        match filter {
            Filter::And(parts) | Filter::Or(parts) => {
                for part in parts {
                    self.resolve_in_chain(part);
                }
            }
            Filter::Not(inner) => self.resolve_in_chain(inner),
            Filter::Extensible {
                rule: Some(rule),
                attribute: Some(attribute),
                value,
            } if rule == IN_CHAIN => {
                let Some(member_of) = in_chain_direction(attribute) else {
                    return;
                };
                let key = dn::key_of(&String::from_utf8_lossy(value));
                let set = match self.directory.by_dn(&key) {
                    // Entries whose memberOf chain reaches the group: its transitive members.
                    Some(group) if member_of => self
                        .directory
                        .transitive_members(group)
                        .into_iter()
                        .collect(),
                    // Groups whose member chain reaches the object.
                    Some(object) => self
                        .directory
                        .transitive_member_of(object)
                        .into_iter()
                        .collect(),
                    None => HashSet::new(),
                };
                self.in_chain.insert((member_of, key), set);
            }
            _ => {}
        }
    }

    /// Returns the entries that can match when an indexed assertion narrows them down, or
    /// `None` when every entry has to be tested.
    pub fn candidates(&self) -> Option<Vec<ObjectId>> {
        self.candidates_of(self.filter)
    }

    fn candidates_of(&self, filter: &Filter) -> Option<Vec<ObjectId>> {
        let directory = self.directory;
        match filter {
            Filter::Equality(attribute, value) => {
                let value = String::from_utf8_lossy(value);
                let found = match schema::canonical_name(attribute) {
                    "distinguishedName" => {
                        Entry::find(directory, &dn::key_of(&value)).map(|e| e.id())
                    }
                    "sAMAccountName" => directory.by_sam(&value).map(ObjectId::Object),
                    "userPrincipalName" => directory
                        .user_by_upn(&value)
                        .map(|u| ObjectId::Object(u.id)),
                    _ => return None,
                };
                Some(found.into_iter().collect())
            }
            Filter::Extensible {
                rule: Some(rule),
                attribute: Some(attribute),
                value,
            } if rule == IN_CHAIN => {
                let member_of = in_chain_direction(attribute)?;
                let key = dn::key_of(&String::from_utf8_lossy(value));
                let set = self.in_chain.get(&(member_of, key))?;
                Some(set.iter().map(|id| ObjectId::Object(*id)).collect())
            }
            Filter::And(parts) => parts
                .iter()
                .filter_map(|part| self.candidates_of(part))
                .min_by_key(Vec::len),
            Filter::Or(parts) => {
                let mut all = Vec::new();
                for part in parts {
                    all.extend(self.candidates_of(part)?);
                }
                let mut seen = HashSet::new();
                all.retain(|id| seen.insert(id.clone()));
                Some(all)
            }
            _ => None,
        }
    }

    /// Tells whether the entry matches the filter.
    pub fn matches(&self, entry: &Entry<'_>) -> bool {
        self.evaluate(self.filter, entry) == Truth::True
    }

    fn evaluate(&self, filter: &Filter, entry: &Entry<'_>) -> Truth {
        match filter {
            Filter::And(parts) => {
                let mut result = Truth::True;
                for part in parts {
                    match self.evaluate(part, entry) {
                        Truth::False => return Truth::False,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::True => {}
                    }
                }
                result
            }
            Filter::Or(parts) => {
                let mut result = Truth::False;
                for part in parts {
                    match self.evaluate(part, entry) {
                        Truth::True => return Truth::True,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::False => {}
                    }
                }
                result
            }
            Filter::Not(inner) => match self.evaluate(inner, entry) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Undefined => Truth::Undefined,
            },
            Filter::Present(attribute) => {
                let name = schema::canonical_name(attribute);
                (name == "objectClass" || !entry.values(name).is_empty()).into()
            }
            Filter::Equality(attribute, value) | Filter::Approx(attribute, value) => {
                self.compare(entry, attribute, value, |ordering| ordering.is_eq())
            }
            Filter::GreaterOrEqual(attribute, value) => {
                self.compare(entry, attribute, value, |ordering| ordering.is_ge())
            }
            Filter::LessOrEqual(attribute, value) => {
                self.compare(entry, attribute, value, |ordering| ordering.is_le())
            }
            Filter::Substrings(attribute, substrings) => entry
                .values(attribute)
                .iter()
                .any(|value| substrings_match(value, substrings))
                .into(),
            Filter::Extensible {
                rule,
                attribute,
                value,
            } => self.extensible(entry, rule.as_deref(), attribute.as_deref(), value),
        }
    }

    /// Compares every value of the attribute with the assertion by the attribute's syntax;
    /// True when `accept` holds for any of them.
    fn compare(
        &self,
        entry: &Entry<'_>,
        attribute: &str,
        assertion: &[u8],
        accept: impl Fn(std::cmp::Ordering) -> bool,
    ) -> Truth {
        let key = (attribute.as_ptr() as usize, assertion.as_ptr() as usize);
        let mut assertions = self.assertions.borrow_mut();
        let prepared = assertions.entry(key).or_insert_with(|| {
            Assertion::new(self.directory, schema::syntax_of(attribute), assertion)
        });
        let Some(prepared) = prepared else {
            return Truth::Undefined;
        };
        if let Assertion::Category(category) = prepared {
            return accept(entry.category().to_ascii_lowercase().cmp(category)).into();
        }
        entry
            .values(attribute)
            .iter()
            .filter_map(|value| prepared.order(value))
            .any(accept)
            .into()
    }

    fn extensible(
        &self,
        entry: &Entry<'_>,
        rule: Option<&str>,
        attribute: Option<&str>,
        value: &[u8],
    ) -> Truth {
        let Some(attribute) = attribute else {
            return Truth::Undefined;
        };
        match rule {
            None => self.compare(entry, attribute, value, |ordering| ordering.is_eq()),
            Some(BIT_AND) | Some(BIT_OR) => {
                let Some(mask) = parse_integer(value).map(|m| m as u64) else {
                    return Truth::Undefined;
                };
                let all_bits = rule == Some(BIT_AND);
                entry
                    .values(attribute)
                    .iter()
                    .filter_map(|v| parse_integer(v).map(|v| v as u64))
                    .any(|v| {
                        if all_bits {
                            v & mask == mask
                        } else {
                            v & mask != 0
                        }
                    })
                    .into()
            }
            Some(IN_CHAIN) => match in_chain_direction(attribute) {
                Some(member_of) => {
                    let key = dn::key_of(&String::from_utf8_lossy(value));
                    let set = self.in_chain.get(&(member_of, key));
                    entry
                        .object_id()
                        .is_some_and(|id| set.is_some_and(|s| s.contains(&id)))
                        .into()
                }
                // Other DN attributes: the lab models no chains through them, so the rule
                // falls back to the attribute's own equality.
                None => self.compare(entry, attribute, value, |ordering| ordering.is_eq()),
            },
            Some(_) => Truth::Undefined,
        }
    }
}

/// For the in-chain rule: `Some(true)` for `memberOf`, `Some(false)` for `member`.
fn in_chain_direction(attribute: &str) -> Option<bool> {
    match schema::canonical_name(attribute) {
        "memberOf" => Some(true),
        "member" => Some(false),
        _ => None,
    }
}

/// An assertion value in the form its attribute's values compare with.
enum Assertion {
    /// The lowercase CN of a category in this directory's schema container, compared with
    /// the entry's category without building DNs.
    Category(String),
    Text(String),
    Dn(String),
    Integer(i64),
    Octets(Vec<u8>),
    Time(String),
}

impl Assertion {
    fn new(directory: &Directory, syntax: Syntax, value: &[u8]) -> Option<Assertion> {
        let text = || String::from_utf8_lossy(value).into_owned();
        Some(match syntax {
            Syntax::Text => Assertion::Text(text().to_lowercase()),
            Syntax::Dn => Assertion::Dn(dn::key_of(&text())),
            Syntax::Integer => Assertion::Integer(parse_integer(value)?),
            Syntax::Octets => Assertion::Octets(value.to_vec()),
            Syntax::Sid => {
                let text = text();
                match text.starts_with("S-").then(|| sid_bytes(&text)).flatten() {
                    Some(bytes) => Assertion::Octets(bytes),
                    None => Assertion::Octets(value.to_vec()),
                }
            }
            Syntax::Time => Assertion::Time(time_digits(&text())?),
            // `(objectCategory=person)` names a class; AD replaces it with the class's
            // default category DN before comparing.
            Syntax::Category => {
                let text = text();
                let category = if text.contains('=') {
                    let key = dn::key_of(&text);
                    let suffix = format!(
                        ",cn=schema,cn=configuration,{}",
                        dn::key_of(&directory.base_dn)
                    );
                    match key
                        .strip_prefix("cn=")
                        .and_then(|k| k.strip_suffix(suffix.as_str()))
                    {
                        Some(cn) if !cn.contains(',') => cn.to_string(),
                        _ => return Some(Assertion::Dn(key)),
                    }
                } else {
                    schema::category_of_class(&text)?.to_ascii_lowercase()
                };
                Assertion::Category(category)
            }
        })
    }

    /// Orders a value against the assertion, or returns `None` when the value does not parse.
    fn order(&self, value: &[u8]) -> Option<std::cmp::Ordering> {
        let text = || String::from_utf8_lossy(value);
        Some(match self {
            Assertion::Category(category) => {
                let key = dn::key_of(&text());
                let cn = key.strip_prefix("cn=")?.split(',').next()?.to_string();
                cn.cmp(category)
            }
            Assertion::Text(assertion) => text().to_lowercase().cmp(assertion),
            Assertion::Dn(assertion) => dn::key_of(&text()).cmp(assertion),
            Assertion::Integer(assertion) => parse_integer(value)?.cmp(assertion),
            Assertion::Octets(assertion) => value.cmp(assertion.as_slice()),
            Assertion::Time(assertion) => time_digits(&text())?.cmp(assertion),
        })
    }
}

/// Parses a decimal integer as AD writes them; `groupType` values are signed 32-bit.
fn parse_integer(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// Extracts the `YYYYMMDDHHMMSS` digits of a GeneralizedTime, which order as the times do.
fn time_digits(value: &str) -> Option<String> {
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    (digits.len() >= 10).then(|| format!("{digits:0<14}"))
}

fn substrings_match(value: &[u8], substrings: &Substrings) -> bool {
    let value = String::from_utf8_lossy(value).to_lowercase();
    let lower = |part: &[u8]| String::from_utf8_lossy(part).to_lowercase();
    let mut rest = value.as_str();
    if let Some(initial) = &substrings.initial {
        let initial = lower(initial);
        match rest.strip_prefix(initial.as_str()) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    for any in &substrings.any {
        let any = lower(any);
        match rest.find(any.as_str()) {
            Some(at) => rest = &rest[at + any.len()..],
            None => return false,
        }
    }
    match &substrings.last {
        Some(last) => rest.ends_with(lower(last).as_str()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;
    use crate::world::World;
    use ldap3_lber::structure::StructureTag;

    fn world() -> World {
        World::from_fixture(&Fixture::default_org())
            .expect("world")
            .0
    }

    fn context(id: u64, payload: PL) -> StructureTag {
        StructureTag {
            class: TagClass::Context,
            id,
            payload,
        }
    }

    fn octets(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn matching(world: &World, filter: &Filter) -> Vec<String> {
        let matcher = Matcher::new(&world.directory, filter);
        super::super::entries::all(&world.directory)
            .iter()
            .filter_map(|id| Entry::get(&world.directory, id))
            .filter(|entry| matcher.matches(entry))
            .map(|entry| entry.dn().to_string())
            .collect()
    }

    #[test]
    fn binary_equality_decodes_without_utf8() {
        let sid = [1u8, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0xff, 0xfe];
        let tag = context(3, PL::C(vec![octets(b"objectSid"), octets(&sid)]));
        assert_eq!(
            decode(tag).expect("decodes"),
            Filter::Equality("objectSid".into(), sid.to_vec())
        );
    }

    #[test]
    fn malformed_filters_are_rejected() {
        let not_with_two = context(2, PL::C(vec![placeholder(), placeholder()]));
        assert!(decode(not_with_two).is_err());
        let unknown = context(12, PL::P(Vec::new()));
        assert!(decode(unknown).is_err());
        let mut deep = placeholder();
        for _ in 0..100 {
            deep = context(2, PL::C(vec![deep]));
        }
        assert!(decode(deep).is_err(), "nesting is bounded");
    }

    #[test]
    fn object_category_accepts_class_names() {
        let world = world();
        let filter = Filter::And(vec![
            Filter::Equality("objectCategory".into(), b"person".to_vec()),
            Filter::Equality("sAMAccountName".into(), b"ALICE".to_vec()),
        ]);
        assert_eq!(
            matching(&world, &filter),
            ["CN=Alice Archer,CN=Users,DC=lab,DC=example"]
        );
        let groups = matching(
            &world,
            &Filter::Equality("objectCategory".into(), b"group".to_vec()),
        );
        assert!(
            groups
                .iter()
                .all(|dn| dn.contains("Groups") || dn.contains("CN=Users"))
        );
        assert!(groups.len() >= 8, "{groups:?}");

        let by_dn = Filter::And(vec![
            Filter::Equality(
                "objectCategory".into(),
                b"cn=person,CN=Schema,CN=Configuration,DC=lab,DC=example".to_vec(),
            ),
            Filter::Equality("sAMAccountName".into(), b"alice".to_vec()),
        ]);
        assert_eq!(matching(&world, &by_dn).len(), 1);
        let elsewhere = Filter::Equality(
            "objectCategory".into(),
            b"CN=Person,CN=Schema,DC=other".to_vec(),
        );
        assert!(matching(&world, &elsewhere).is_empty());
    }

    #[test]
    fn bit_rules_test_user_account_control() {
        let world = world();
        let disabled = Filter::Extensible {
            rule: Some(BIT_AND.into()),
            attribute: Some("userAccountControl".into()),
            value: b"2".to_vec(),
        };
        assert_eq!(
            matching(&world, &disabled),
            ["CN=Frank Foster,CN=Users,DC=lab,DC=example"]
        );
        let security = Filter::Extensible {
            rule: Some(BIT_AND.into()),
            attribute: Some("groupType".into()),
            value: b"2147483648".to_vec(),
        };
        let security_groups = matching(&world, &security);
        assert!(security_groups.iter().any(|dn| dn.starts_with("CN=Sales,")));
        assert!(
            !security_groups
                .iter()
                .any(|dn| dn.starts_with("CN=Newsletter,"))
        );
    }

    #[test]
    fn in_chain_follows_nested_groups() {
        let world = world();
        let nested = Filter::Extensible {
            rule: Some(IN_CHAIN.into()),
            attribute: Some("memberOf".into()),
            value: b"CN=Sales,OU=Groups,DC=lab,DC=example".to_vec(),
        };
        let members = matching(&world, &nested);
        for name in ["Alice Archer", "Bob Baker", "Heidi Hill", "Sales-EMEA"] {
            assert!(
                members.iter().any(|dn| dn.contains(name)),
                "{name}: {members:?}"
            );
        }
        let direct = Filter::Equality(
            "memberOf".into(),
            b"cn=sales,ou=groups,dc=lab,dc=example".to_vec(),
        );
        let direct_members = matching(&world, &direct);
        assert!(!direct_members.iter().any(|dn| dn.contains("Bob Baker")));

        let groups_of_bob = Filter::Extensible {
            rule: Some(IN_CHAIN.into()),
            attribute: Some("member".into()),
            value: b"CN=Bob Baker,CN=Users,DC=lab,DC=example".to_vec(),
        };
        let groups = matching(&world, &groups_of_bob);
        assert!(groups.iter().any(|dn| dn.starts_with("CN=Sales,")));
        assert!(groups.iter().any(|dn| dn.starts_with("CN=All-Staff,")));
    }

    #[test]
    fn not_of_undefined_stays_undefined() {
        let world = world();
        let undefined = Filter::Not(Box::new(Filter::Equality(
            "userAccountControl".into(),
            b"not a number".to_vec(),
        )));
        assert!(matching(&world, &undefined).is_empty());
    }

    #[test]
    fn substrings_ignore_case() {
        let world = world();
        let filter = Filter::Substrings(
            "userPrincipalName".into(),
            Substrings {
                initial: Some(b"ALI".to_vec()),
                any: vec![b"@".to_vec()],
                last: Some(b".EXAMPLE".to_vec()),
            },
        );
        assert_eq!(
            matching(&world, &filter),
            ["CN=Alice Archer,CN=Users,DC=lab,DC=example"]
        );
    }

    #[test]
    fn sid_assertions_accept_the_string_form() {
        let world = world();
        let sid = world.directory.sid_of(513);
        let by_string = Filter::Equality("objectSid".into(), sid.clone().into_bytes());
        let by_bytes = Filter::Equality("objectSid".into(), sid_bytes(&sid).expect("SID"));
        assert_eq!(
            matching(&world, &by_string),
            ["CN=Domain Users,CN=Users,DC=lab,DC=example"]
        );
        assert_eq!(matching(&world, &by_string), matching(&world, &by_bytes));
    }

    #[test]
    fn indexed_assertions_narrow_the_candidates() {
        let world = world();
        let filter = Filter::And(vec![
            Filter::Equality("objectClass".into(), b"user".to_vec()),
            Filter::Or(vec![
                Filter::Equality("sAMAccountName".into(), b"alice".to_vec()),
                Filter::Equality("userPrincipalName".into(), b"bob@lab.example".to_vec()),
            ]),
        ]);
        let matcher = Matcher::new(&world.directory, &filter);
        assert_eq!(matcher.candidates().map(|c| c.len()), Some(2));
        let scan = Filter::Present("mail".into());
        assert!(Matcher::new(&world.directory, &scan).candidates().is_none());
    }
}
