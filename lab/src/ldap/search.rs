//! Search as AD performs it: scopes over the domain, filters, attribute selection, paged
//! results, server-side sort, AD's MaxPageSize for searches without paging, and range
//! retrieval of multi-valued attributes above MaxValRange.
//!
//! Range retrieval follows MS-ADTS section 3.1.1.3.1.3.3
//! (<https://learn.microsoft.com/openspecs/windows_protocols/ms-adts/e27b48db-6f82-44cd-9038-2e54f790cc1f>):
//! a request for `member` on a group with more than MaxValRange values gets
//! `member;range=0-1499`, a request for `member;range=LOW-HIGH` gets at most MaxValRange
//! values from LOW, and the range of the response that contains the last value ends in
//! `*`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use ldap3_proto::control::{LdapControl, ServerSortResult};
use ldap3_proto::proto::{
    LdapPartialAttribute, LdapResult, LdapResultCode, LdapSearchRequest, LdapSearchResultEntry,
    LdapSearchScope,
};

use super::controls::{PageRequest, RequestControls, SortKey};
use super::diagnostics::{self, Failure};
use super::dn::{self, Dn};
use super::entries::{self, Entry, ObjectId};
use super::filter::{Filter, Matcher};
use super::rootdse;
use super::schema;
use super::session::{PagedSearch, Session};
use super::{MAX_PAGE_SIZE, MAX_VAL_RANGE};
use crate::LabState;
use crate::world::directory::Directory;

/// The response of a search: the entries, then the result and controls of SearchResultDone.
#[derive(Debug)]
pub(super) struct SearchOutcome {
    /// Entries in result order.
    pub entries: Vec<LdapSearchResultEntry>,
    /// The result of the search.
    pub result: LdapResult,
    /// Response controls (paged results cookie, sort result).
    pub controls: Vec<LdapControl>,
}

impl SearchOutcome {
    fn failed(failure: Failure) -> Self {
        SearchOutcome {
            entries: Vec::new(),
            result: failure.into_result(),
            controls: Vec::new(),
        }
    }
}

/// Runs one search request with its filter and controls.
pub(super) fn handle(
    state: &LabState,
    session: &mut Session,
    request: &LdapSearchRequest,
    filter: &Filter,
    controls: &RequestControls,
) -> SearchOutcome {
    // 1. The root DSE, which anonymous clients may read.
    if request.base.trim().is_empty() && request.scope == LdapSearchScope::Base {
        let entry = rootdse::entry(&state.read().directory, &request.attrs);
        return SearchOutcome {
            entries: vec![entry],
            result: diagnostics::success(),
            controls: page_response(controls, Vec::new()),
        };
    }
    if let Err(failure) = session.require_bind() {
        return SearchOutcome::failed(failure);
    }

    // 2. Everything else works on one consistent view of the world.
    let world = state.read();
    let directory = &world.directory;
    let selection = Selection::parse(&request.attrs);
    let matched = match &controls.page {
        Some(page) if !page.cookie.is_empty() => {
            match continue_paged(session, request, filter, page) {
                Ok(Some(paged)) => paged,
                Ok(None) => {
                    return SearchOutcome {
                        entries: Vec::new(),
                        result: diagnostics::success(),
                        controls: page_response(controls, Vec::new()),
                    };
                }
                Err(failure) => return SearchOutcome::failed(failure),
            }
        }
        _ => match find_matches(directory, request, filter, controls.sort.as_ref()) {
            Ok(entries) => PagedSearch {
                cookie: Vec::new(),
                fingerprint: fingerprint(request, filter),
                entries,
                position: 0,
            },
            Err(failure) => return SearchOutcome::failed(failure),
        },
    };

    // 3. The page: paged searches return up to the page size (capped at MaxPageSize), the
    // others up to MaxPageSize. Either way the client's size limit counts every entry of the
    // search, and reaching it (or MaxPageSize without paging) ends the search with
    // sizeLimitExceeded.
    let mut paged = matched;
    let (page_size, paging) = match &controls.page {
        Some(page) => (
            usize::try_from(page.size).unwrap_or(0).min(MAX_PAGE_SIZE),
            true,
        ),
        None => (MAX_PAGE_SIZE, false),
    };
    let allowed = match usize::try_from(request.sizelimit).unwrap_or(0) {
        0 => usize::MAX,
        limit => limit.saturating_sub(paged.position),
    };
    let end = (paged.position + page_size.min(allowed)).min(paged.entries.len());
    let base_scope = request.scope == LdapSearchScope::Base;
    let mut entries = Vec::with_capacity(end - paged.position);
    for id in &paged.entries[paged.position..end] {
        let Some(entry) = Entry::get(directory, id) else {
            // Deleted since the first page.
            continue;
        };
        match render(&entry, &selection, base_scope, request.typesonly, controls) {
            Ok(rendered) => entries.push(rendered),
            Err(failure) => return SearchOutcome::failed(failure),
        }
    }
    paged.position = end;
    let more = paged.position < paged.entries.len();
    let limit_reached = more && (!paging || allowed <= page_size);

    let mut response_controls = Vec::new();
    let result = if limit_reached {
        diagnostics::size_limit_exceeded().into_result()
    } else {
        diagnostics::success()
    };
    if paging {
        let cookie = if more && !limit_reached && page_size > 0 {
            session.keep_paged(paged)
        } else {
            Vec::new()
        };
        response_controls.extend(page_response(controls, cookie));
    }
    if controls.sort.is_some() {
        response_controls.push(LdapControl::ServerSortResult {
            sort_result: ServerSortResult {
                result_code: LdapResultCode::Success,
                attribute_type: None,
            },
        });
    }
    SearchOutcome {
        entries,
        result,
        controls: response_controls,
    }
}

/// Builds the paged-results response control with `cookie`, when the request had the
/// control.
fn page_response(controls: &RequestControls, cookie: Vec<u8>) -> Vec<LdapControl> {
    controls
        .page
        .as_ref()
        .map(|_| LdapControl::SimplePagedResults { size: 0, cookie })
        .into_iter()
        .collect()
}

/// Takes the paged search that the cookie continues. `Ok(None)` when the client abandons
/// it with a page size of 0.
fn continue_paged(
    session: &mut Session,
    request: &LdapSearchRequest,
    filter: &Filter,
    page: &PageRequest,
) -> Result<Option<PagedSearch>, Failure> {
    let paged = session
        .take_paged(&page.cookie)
        .ok_or_else(diagnostics::control_error)?;
    if paged.fingerprint != fingerprint(request, filter) {
        return Err(diagnostics::control_error());
    }
    Ok((page.size > 0).then_some(paged))
}

/// Computes a digest of what identifies a search across its pages.
fn fingerprint(request: &LdapSearchRequest, filter: &Filter) -> u64 {
    let mut hasher = DefaultHasher::new();
    request.base.to_ascii_lowercase().hash(&mut hasher);
    (request.scope.clone() as i64).hash(&mut hasher);
    format!("{filter:?}").hash(&mut hasher);
    request.attrs.hash(&mut hasher);
    hasher.finish()
}

/// Finds the entries under the base in the request's scope that match the filter, in
/// result order or sorted by the sort control.
fn find_matches(
    directory: &Directory,
    request: &LdapSearchRequest,
    filter: &Filter,
    sort: Option<&SortKey>,
) -> Result<Vec<ObjectId>, Failure> {
    let base_dn = Dn::parse(&request.base).map_err(|()| diagnostics::invalid_dn(&request.base))?;
    if base_dn.is_root() {
        // A subtree search from the root would cover every naming context, but the lab serves
        // only the domain. AD returns `noSuchObject` for the root as a base too.
        return Err(diagnostics::no_such_object(""));
    }
    let base_key = base_dn.key();
    let base = Entry::find(directory, &base_key)
        .ok_or_else(|| diagnostics::no_such_object(&entries::best_match(directory, &base_dn)))?;

    let matcher = Matcher::new(directory, filter);
    let candidates = match request.scope {
        LdapSearchScope::Base => vec![base.id()],
        _ => in_result_order(
            directory,
            matcher
                .candidates()
                .unwrap_or_else(|| entries::all(directory)),
        ),
    };
    let whole_domain = base_key == dn::key_of(&directory.base_dn);
    let subtree_suffix = format!(",{base_key}");
    let mut matched: Vec<ObjectId> = Vec::new();
    for id in candidates {
        let Some(entry) = Entry::get(directory, &id) else {
            continue;
        };
        let in_scope = match request.scope {
            LdapSearchScope::Base => true,
            LdapSearchScope::OneLevel => dn::parent_key(&entry.key()) == Some(base_key.as_str()),
            LdapSearchScope::Subtree => {
                whole_domain || {
                    let key = entry.key();
                    key == base_key || key.ends_with(&subtree_suffix)
                }
            }
            LdapSearchScope::Children => entry.key().ends_with(&subtree_suffix),
        };
        if in_scope && matcher.matches(&entry) {
            matched.push(id);
        }
    }
    if let Some(sort) = sort {
        sort_entries(directory, &mut matched, sort);
    }
    Ok(matched)
}

/// Orders entries as AD returns them: the domain head, containers, then objects by
/// creation.
fn in_result_order(directory: &Directory, mut ids: Vec<ObjectId>) -> Vec<ObjectId> {
    ids.sort_by_cached_key(|id| {
        let entry = Entry::get(directory, id);
        let rank = match id {
            ObjectId::Domain => 0,
            ObjectId::Container(_) => 1,
            ObjectId::Object(_) => 2,
        };
        (
            rank,
            entry.and_then(|e| e.created()),
            entry.map(|e| e.key()),
        )
    });
    ids
}

/// Sorts on the first value of one attribute, without regard to case, entries without the
/// attribute last.
fn sort_entries(directory: &Directory, ids: &mut [ObjectId], sort: &SortKey) {
    ids.sort_by_cached_key(|id| {
        let value = Entry::get(directory, id).and_then(|entry| {
            entry
                .values(&sort.attribute)
                .into_iter()
                .next()
                .map(|v| String::from_utf8_lossy(&v).to_lowercase())
        });
        (value.is_none(), value)
    });
    if sort.reverse {
        let with_value = ids
            .iter()
            .position(|id| {
                Entry::get(directory, id)
                    .is_none_or(|entry| entry.values(&sort.attribute).is_empty())
            })
            .unwrap_or(ids.len());
        ids[..with_value].reverse();
    }
}

/// A range option, `range=LOW-HIGH` or `range=LOW-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    low: usize,
    high: Option<usize>,
}

/// One requested attribute description.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requested {
    name: String,
    range: Option<Range>,
}

/// The attribute list of a search request.
#[derive(Debug, Default)]
struct Selection {
    /// `*`, or an empty list: every attribute AD returns by default.
    all: bool,
    /// `+`: the constructed attributes as well.
    operational: bool,
    /// Attributes named in the list, with their range options.
    named: Vec<Requested>,
}

impl Selection {
    fn parse(attributes: &[String]) -> Selection {
        let mut selection = Selection {
            all: attributes.is_empty(),
            ..Selection::default()
        };
        for description in attributes {
            match description.trim() {
                "*" => selection.all = true,
                "+" => selection.operational = true,
                // RFC 4511 section 4.5.1.8: `1.1` requests no attributes.
                "1.1" => {}
                description => {
                    let mut parts = description.split(';');
                    let name = parts.next().unwrap_or_default().to_string();
                    let mut range = None;
                    for option in parts {
                        if let Some(spec) = option
                            .get(..6)
                            .filter(|prefix| prefix.eq_ignore_ascii_case("range="))
                            .map(|_| &option[6..])
                        {
                            range = parse_range(spec);
                        }
                    }
                    selection.named.push(Requested { name, range });
                }
            }
        }
        selection
    }
}

fn parse_range(spec: &str) -> Option<Range> {
    let (low, high) = spec.split_once('-')?;
    let low = low.trim().parse().ok()?;
    let high = match high.trim() {
        "*" => None,
        number => Some(number.parse().ok()?),
    };
    Some(Range { low, high })
}

/// Renders an entry with the selected attributes.
fn render(
    entry: &Entry<'_>,
    selection: &Selection,
    base_scope: bool,
    types_only: bool,
    controls: &RequestControls,
) -> Result<LdapSearchResultEntry, Failure> {
    // Attribute names in response order, each once; a named request with a range replaces
    // the plain one that `*` implies.
    let mut wanted: Vec<Requested> = Vec::new();
    let mut add = |requested: Requested| {
        let canonical = schema::canonical_name(&requested.name).to_string();
        match wanted
            .iter_mut()
            .find(|w| w.name.eq_ignore_ascii_case(&canonical))
        {
            Some(existing) if requested.range.is_some() => existing.range = requested.range,
            Some(_) => {}
            None => wanted.push(Requested {
                name: canonical,
                range: requested.range,
            }),
        }
    };
    if selection.all {
        for name in entry.attribute_names() {
            add(Requested { name, range: None });
        }
    }
    if selection.operational {
        for name in entry.constructed_names() {
            add(Requested {
                name: name.to_string(),
                range: None,
            });
        }
    }
    for requested in &selection.named {
        add(requested.clone());
    }

    let mut attributes = Vec::with_capacity(wanted.len());
    for requested in wanted {
        // AD computes tokenGroups only for a base-scope search.
        if requested.name == "tokenGroups" && !base_scope {
            continue;
        }
        if requested.name.eq_ignore_ascii_case("unicodePwd") {
            continue;
        }
        let values = entry.values(&requested.name);
        if values.is_empty() {
            continue;
        }
        let linked = matches!(requested.name.as_str(), "member" | "memberOf");
        let Some(mut attribute) = ranged(&requested, values, linked, controls.range_no_error)?
        else {
            continue;
        };
        if types_only {
            attribute.vals.clear();
        }
        attributes.push(attribute);
    }
    Ok(LdapSearchResultEntry {
        dn: entry.dn().to_string(),
        attributes,
    })
}

/// Applies range retrieval to the values of one attribute.
fn ranged(
    requested: &Requested,
    values: Vec<Vec<u8>>,
    linked: bool,
    no_error: bool,
) -> Result<Option<LdapPartialAttribute>, Failure> {
    let count = values.len();
    let range = match requested.range {
        Some(range) => range,
        None if count <= MAX_VAL_RANGE => {
            return Ok(Some(LdapPartialAttribute {
                atype: requested.name.clone(),
                vals: values,
            }));
        }
        None => Range { low: 0, high: None },
    };
    if range.low >= count {
        // MS-ADTS 3.1.1.3.4.1.22: past the last value of a linked attribute, AD fails the
        // search unless the client sent LDAP_SERVER_RANGE_RETRIEVAL_NOERR_OID.
        return if linked && !no_error {
            Err(diagnostics::operations_error())
        } else {
            Ok(None)
        };
    }
    let mut last = (range.low + MAX_VAL_RANGE - 1).min(count - 1);
    if let Some(high) = range.high {
        if high < range.low {
            return Ok(None);
        }
        last = last.min(high);
    }
    let label = if last == count - 1 {
        format!("{};range={}-*", requested.name, range.low)
    } else {
        format!("{};range={}-{last}", requested.name, range.low)
    };
    Ok(Some(LdapPartialAttribute {
        atype: label,
        vals: values
            .into_iter()
            .skip(range.low)
            .take(last - range.low + 1)
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| format!("CN=m{i}").into_bytes())
            .collect()
    }

    fn member(range: Option<Range>) -> Requested {
        Requested {
            name: "member".into(),
            range,
        }
    }

    fn answer(requested: Requested, count: usize) -> (String, usize) {
        let attribute = ranged(&requested, values(count), true, false)
            .expect("no error")
            .expect("an attribute");
        (attribute.atype, attribute.vals.len())
    }

    #[test]
    fn plain_request_is_ranged_above_max_val_range() {
        assert_eq!(answer(member(None), 1500), ("member".into(), 1500));
        assert_eq!(
            answer(member(None), 2000),
            ("member;range=0-1499".into(), 1500)
        );
    }

    #[test]
    fn last_range_ends_in_a_star() {
        let range = |low, high| Some(Range { low, high });
        assert_eq!(
            answer(member(range(1500, None)), 2000),
            ("member;range=1500-*".into(), 500)
        );
        assert_eq!(
            answer(member(range(0, Some(299))), 2000),
            ("member;range=0-299".into(), 300)
        );
        assert_eq!(
            answer(member(range(1800, Some(2099))), 2000),
            ("member;range=1800-*".into(), 200)
        );
        assert_eq!(
            answer(member(range(0, None)), 10),
            ("member;range=0-*".into(), 10)
        );
        assert_eq!(
            answer(member(range(0, Some(9))), 10),
            ("member;range=0-*".into(), 10)
        );
        assert_eq!(
            answer(member(range(0, None)), 4000),
            ("member;range=0-1499".into(), 1500)
        );
    }

    #[test]
    fn range_past_the_end_fails() {
        let past = member(Some(Range {
            low: 2000,
            high: None,
        }));
        assert!(ranged(&past, values(2000), true, false).is_err());
        assert_eq!(
            ranged(&past, values(2000), true, true).expect("no error"),
            None
        );
        assert_eq!(
            ranged(&past, values(2000), false, false).expect("no error"),
            None
        );
    }

    #[test]
    fn selection_reads_ranges_and_special_names() {
        let selection = Selection::parse(&[
            "member;Range=1500-*".to_string(),
            "+".to_string(),
            "1.1".to_string(),
        ]);
        assert!(!selection.all);
        assert!(selection.operational);
        assert_eq!(
            selection.named,
            [member(Some(Range {
                low: 1500,
                high: None
            }))]
        );
        assert!(Selection::parse(&[]).all);
        assert!(Selection::parse(&["1.1".to_string()]).named.is_empty());
    }
}
