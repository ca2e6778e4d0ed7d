//! OData query options as Graph reads them: `$filter`, `$select`, `$top`, `$skip`,
//! `$skiptoken` and `$expand`, and the `@odata.nextLink` paging built on them.
//!
//! `$filter` is parsed into an expression tree and evaluated against the JSON form of each
//! resource, so string literals with doubled quotes (`'O''Brien'`), `and`/`or`/`not`,
//! parentheses, `startswith` and lambda operators (`proxyAddresses/any(p:p eq 'smtp:...')`)
//! behave as in Graph. Directory string comparisons ignore case, as Graph's do.
//! See <https://learn.microsoft.com/graph/filter-query-parameter>.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::errors::GraphError;

/// Page size when the request has no `$top`, for directory resources.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest `$top` that directory resources accept.
pub const MAX_PAGE_SIZE: usize = 999;

/// The query options of one request.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// `$filter`, parsed.
    pub filter: Option<Filter>,
    /// `$select`, property names as sent.
    pub select: Option<Vec<String>>,
    /// `$top`.
    pub top: Option<usize>,
    /// `$skip`.
    pub skip: Option<usize>,
    /// `$skiptoken`.
    pub skip_token: Option<String>,
    /// `$expand`, unparsed.
    pub expand: Option<String>,
}

impl QueryOptions {
    /// Parses the query string of a request (`None` when there is none).
    pub fn parse(query: Option<&str>) -> Result<Self, GraphError> {
        let mut options = QueryOptions::default();
        let Some(query) = query else {
            return Ok(options);
        };
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.to_ascii_lowercase().as_str() {
                "$filter" => options.filter = Some(Filter::parse(&value)?),
                "$select" => {
                    let names = value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    options.select = Some(names);
                }
                "$top" => options.top = Some(parse_count("$top", &value)?),
                "$skip" => options.skip = Some(parse_count("$skip", &value)?),
                "$skiptoken" => options.skip_token = Some(value.into_owned()),
                "$expand" => options.expand = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(options)
    }

    /// Computes the page size for a directory collection: `$top` within 1..=999, 100 by
    /// default.
    pub fn directory_page_size(&self) -> Result<usize, GraphError> {
        match self.top {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(top) if (1..=MAX_PAGE_SIZE).contains(&top) => Ok(top),
            Some(top) => Err(GraphError::for_directory_bad_request(format!(
                "Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE_SIZE} inclusive."
            ))),
        }
    }

    /// Checks whether `item` passes `$filter` (every item passes without one).
    pub fn matches(&self, item: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(item))
    }

    /// Keeps only the `$select`ed properties of `item`, and `@odata.type` when present.
    pub fn project(&self, item: Value) -> Value {
        project(item, self.select.as_deref())
    }
}

fn parse_count(name: &str, value: &str) -> Result<usize, GraphError> {
    value.trim().parse().map_err(|_| {
        GraphError::for_bad_request(format!(
            "Invalid value '{value}' for query option {name}: expected a non-negative integer."
        ))
    })
}

/// Keeps the `select`ed properties of an object, matched case-insensitively, and its
/// `@odata.type`. Without a selection the object is returned as is.
pub fn project(item: Value, select: Option<&[String]>) -> Value {
    let (Some(select), Value::Object(map)) = (select, &item) else {
        return item;
    };
    let mut out = Map::new();
    if let Some(kind) = map.get("@odata.type") {
        out.insert("@odata.type".into(), kind.clone());
    }
    for name in select {
        if let Some((key, value)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op literal`.
    Compare {
        /// Property path, `/`-separated; the first element may be a lambda variable.
        path: Vec<String>,
        /// Comparison operator.
        op: CompareOp,
        /// The literal on the right.
        value: Literal,
    },
    /// `startswith(path, 'prefix')`.
    StartsWith {
        /// Property path.
        path: Vec<String>,
        /// The prefix.
        prefix: String,
    },
    /// `path/any(v: inner)` or `path/all(v: inner)`.
    Lambda {
        /// The collection property.
        path: Vec<String>,
        /// `true` for `any`, `false` for `all`.
        any: bool,
        /// The range variable.
        variable: String,
        /// The condition on each element.
        inner: Box<Filter>,
    },
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
    /// `not a`.
    Not(Box<Filter>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A quoted string (quotes removed, `''` unescaped) or a bare GUID.
    String(String),
    /// A number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    String(String),
    Number(f64),
    Open,
    Close,
    Comma,
    Colon,
    Slash,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            '/' => {
                tokens.push(Token::Slash);
                i += 1;
            }
            '\'' => {
                // A string literal; a doubled quote stands for one quote character.
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            value.push(*other);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::String(value));
            }
            _ if c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '-' || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '_' | '@' | '-' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.parse::<f64>() {
                    Ok(number) if !looks_like_guid(&word) => tokens.push(Token::Number(number)),
                    _ => tokens.push(Token::Ident(word)),
                }
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(tokens)
}

fn looks_like_guid(word: &str) -> bool {
    Uuid::parse_str(word).is_ok()
}

/// Deepest nesting of parentheses, `not` and lambda operators in a `$filter`.
// NOTE: the lab's own bound, because the parser and the evaluation recurse once per level.
const MAX_FILTER_DEPTH: usize = 32;

/// Maximum number of operators and comparisons in a `$filter`, which bounds the size and the
/// depth of the expression tree. ASP.NET OData's `MaxNodeCount` defaults to 100 too (it
/// counts property and literal nodes as well); what Graph allows is not documented.
const MAX_FILTER_NODES: usize = 100;

struct Parser {
    tokens: VecDeque<Token>,
    /// Nesting of the expression being read.
    depth: usize,
    /// Operators and comparisons read so far.
    nodes: usize,
}

impl Parser {
    /// Counts one operator or comparison of the tree.
    fn count_node(&mut self) -> Result<(), String> {
        self.nodes += 1;
        if self.nodes > MAX_FILTER_NODES {
            return Err(format!(
                "the expression has more than {MAX_FILTER_NODES} operators and comparisons"
            ));
        }
        Ok(())
    }

    /// Enters one level of parentheses, `not` or a lambda; [`Parser::leave`] ends it.
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(format!(
                "the expression nests deeper than {MAX_FILTER_DEPTH} levels"
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.front(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn expect(&mut self, token: Token) -> Result<(), String> {
        match self.tokens.pop_front() {
            Some(t) if t == token => Ok(()),
            Some(t) => Err(format!("expected {token:?}, found {t:?}")),
            None => Err(format!("expected {token:?}, found the end of the filter")),
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.tokens.pop_front();
            self.count_node()?;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.tokens.pop_front();
            self.count_node()?;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_keyword("not") {
            self.tokens.pop_front();
            self.count_node()?;
            self.enter()?;
            let inner = self.unary()?;
            self.leave();
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.tokens.front() == Some(&Token::Open) {
            self.tokens.pop_front();
            self.enter()?;
            let inner = self.or()?;
            self.leave();
            self.expect(Token::Close)?;
            return Ok(inner);
        }
        if self.peek_keyword("startswith") {
            self.tokens.pop_front();
            self.count_node()?;
            self.expect(Token::Open)?;
            let path = self.path()?;
            self.expect(Token::Comma)?;
            let prefix = match self.tokens.pop_front() {
                Some(Token::String(s)) => s,
                other => {
                    return Err(format!(
                        "startswith needs a string literal, found {other:?}"
                    ));
                }
            };
            self.expect(Token::Close)?;
            return Ok(Filter::StartsWith { path, prefix });
        }
        self.comparison_or_lambda()
    }

    fn path(&mut self) -> Result<Vec<String>, String> {
        let mut path = Vec::new();
        match self.tokens.pop_front() {
            Some(Token::Ident(name)) => path.push(name),
            other => return Err(format!("expected a property name, found {other:?}")),
        }
        while self.tokens.front() == Some(&Token::Slash) {
            // `any(` and `all(` after a slash start a lambda, handled by the caller.
            let is_lambda = matches!(
                (self.tokens.get(1), self.tokens.get(2)),
                (Some(Token::Ident(w)), Some(Token::Open))
                    if w.eq_ignore_ascii_case("any") || w.eq_ignore_ascii_case("all")
            );
            if is_lambda {
                break;
            }
            self.tokens.pop_front();
            match self.tokens.pop_front() {
                Some(Token::Ident(name)) => path.push(name),
                other => {
                    return Err(format!(
                        "expected a property name after '/', found {other:?}"
                    ));
                }
            }
        }
        Ok(path)
    }

    fn comparison_or_lambda(&mut self) -> Result<Filter, String> {
        let path = self.path()?;
        if self.tokens.front() == Some(&Token::Slash) {
            self.tokens.pop_front();
            let any = match self.tokens.pop_front() {
                Some(Token::Ident(w)) => w.eq_ignore_ascii_case("any"),
                other => return Err(format!("expected any or all, found {other:?}")),
            };
            self.expect(Token::Open)?;
            let variable = match self.tokens.pop_front() {
                Some(Token::Ident(v)) => v,
                other => return Err(format!("expected a range variable, found {other:?}")),
            };
            self.expect(Token::Colon)?;
            self.count_node()?;
            self.enter()?;
            let inner = self.or()?;
            self.leave();
            self.expect(Token::Close)?;
            return Ok(Filter::Lambda {
                path,
                any,
                variable,
                inner: Box::new(inner),
            });
        }
        let op = match self.tokens.pop_front() {
            Some(Token::Ident(w)) => match w.to_ascii_lowercase().as_str() {
                "eq" => CompareOp::Eq,
                "ne" => CompareOp::Ne,
                "gt" => CompareOp::Gt,
                "ge" => CompareOp::Ge,
                "lt" => CompareOp::Lt,
                "le" => CompareOp::Le,
                other => return Err(format!("unsupported operator '{other}'")),
            },
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        let value = match self.tokens.pop_front() {
            Some(Token::String(s)) => Literal::String(s),
            Some(Token::Number(n)) => Literal::Number(n),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Token::Ident(w)) if looks_like_guid(&w) => Literal::String(w),
            other => return Err(format!("expected a literal, found {other:?}")),
        };
        self.count_node()?;
        Ok(Filter::Compare { path, op, value })
    }
}

impl Filter {
    /// Parses a `$filter` expression.
    pub fn parse(text: &str) -> Result<Self, GraphError> {
        let invalid = |reason: String| {
            GraphError::for_bad_request(format!("Invalid filter clause: {reason}."))
        };
        let tokens = tokenize(text).map_err(invalid)?;
        let mut parser = Parser {
            tokens: tokens.into(),
            depth: 0,
            nodes: 0,
        };
        let filter = parser.or().map_err(invalid)?;
        if let Some(extra) = parser.tokens.front() {
            return Err(invalid(format!(
                "unexpected {extra:?} after the expression"
            )));
        }
        Ok(filter)
    }

    /// Checks whether `item` satisfies the expression.
    pub fn matches(&self, item: &Value) -> bool {
        self.evaluate(item, &HashMap::new())
    }

    fn evaluate(&self, item: &Value, variables: &HashMap<String, Value>) -> bool {
        match self {
            Filter::And(a, b) => a.evaluate(item, variables) && b.evaluate(item, variables),
            Filter::Or(a, b) => a.evaluate(item, variables) || b.evaluate(item, variables),
            Filter::Not(a) => !a.evaluate(item, variables),
            Filter::Compare { path, op, value } => {
                let actual = resolve(item, path, variables);
                compare(actual.as_ref(), *op, value)
            }
            Filter::StartsWith { path, prefix } => match resolve(item, path, variables) {
                Some(Value::String(s)) => s.to_lowercase().starts_with(&prefix.to_lowercase()),
                _ => false,
            },
            Filter::Lambda {
                path,
                any,
                variable,
                inner,
            } => {
                let Some(Value::Array(elements)) = resolve(item, path, variables) else {
                    return !any;
                };
                let mut scope = variables.clone();
                let mut results = elements.iter().map(|element| {
                    scope.insert(variable.clone(), element.clone());
                    inner.evaluate(item, &scope)
                });
                if *any {
                    results.any(|r| r)
                } else {
                    results.all(|r| r)
                }
            }
        }
    }

    /// Rewrites every string literal compared with the property `name` through `rewrite`,
    /// so that callers can compare canonical forms (extended property IDs).
    pub fn rewrite_literals(&mut self, name: &str, rewrite: &dyn Fn(&str) -> String) {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.rewrite_literals(name, rewrite);
                b.rewrite_literals(name, rewrite);
            }
            Filter::Not(a) => a.rewrite_literals(name, rewrite),
            Filter::Lambda { inner, .. } => inner.rewrite_literals(name, rewrite),
            Filter::Compare {
                path,
                value: Literal::String(text),
                ..
            } if path.len() == 1 && path[0].eq_ignore_ascii_case(name) => {
                *text = rewrite(text);
            }
            Filter::Compare { .. } | Filter::StartsWith { .. } => {}
        }
    }

    /// Returns the string that property `name` must equal when the expression is a plain
    /// `name eq 'value'`, so that callers can serve common filters from an index.
    pub fn equality_on(&self, name: &str) -> Option<&str> {
        match self {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Literal::String(value),
            } if path.len() == 1 && path[0].eq_ignore_ascii_case(name) => Some(value),
            _ => None,
        }
    }
}

/// Follows a property path; the first element may name a lambda variable.
fn resolve(item: &Value, path: &[String], variables: &HashMap<String, Value>) -> Option<Value> {
    let (mut current, rest) = match variables.get(&path[0]) {
        Some(bound) => (bound.clone(), &path[1..]),
        None => (item.clone(), path),
    };
    for name in rest {
        let Value::Object(map) = &current else {
            return None;
        };
        current = map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())?;
    }
    Some(current)
}

fn compare(actual: Option<&Value>, op: CompareOp, expected: &Literal) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, expected) {
        (None | Some(Value::Null), Literal::Null) => Some(Ordering::Equal),
        (None | Some(Value::Null), _) | (Some(_), Literal::Null) => None,
        (Some(Value::String(a)), Literal::String(b)) => {
            Some(a.to_lowercase().cmp(&b.to_lowercase()))
        }
        (Some(Value::Number(a)), Literal::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        (Some(Value::Bool(a)), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        CompareOp::Eq => ordering == Some(Ordering::Equal),
        CompareOp::Ne => ordering != Some(Ordering::Equal),
        CompareOp::Gt => ordering == Some(Ordering::Greater),
        CompareOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        CompareOp::Lt => ordering == Some(Ordering::Less),
        CompareOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
    }
}

/// Snapshots of collections being paged, so that every page of one listing comes from the
/// same list of IDs even when the directory changes in between, as a server-side cursor.
#[derive(Debug, Default)]
pub struct Cursors {
    snapshots: Mutex<VecDeque<(u64, Arc<Vec<Uuid>>)>>,
}

/// How many listings can be paged at once; the oldest snapshot is forgotten first.
const MAX_CURSORS: usize = 256;

impl Cursors {
    /// Stores a snapshot and returns its number.
    pub fn insert(&self, ids: Arc<Vec<Uuid>>) -> u64 {
        let number: u64 = rand::random();
        let mut snapshots = self.snapshots.lock().expect("cursor lock");
        if snapshots.len() == MAX_CURSORS {
            snapshots.pop_front();
        }
        snapshots.push_back((number, ids));
        number
    }

    /// Looks up the snapshot with this number, while it is kept.
    pub fn get(&self, number: u64) -> Option<Arc<Vec<Uuid>>> {
        self.snapshots
            .lock()
            .expect("cursor lock")
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, ids)| ids.clone())
    }
}

/// A `$skiptoken`: which snapshot and where in it the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipToken {
    /// Snapshot number.
    pub snapshot: u64,
    /// Index of the first item of the page.
    pub offset: usize,
}

impl SkipToken {
    /// Encodes the opaque text form.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("lab1:{:x}:{}", self.snapshot, self.offset))
    }

    /// Parses the text form.
    pub fn decode(text: &str) -> Result<Self, GraphError> {
        let invalid = || GraphError::for_directory_bad_request("Invalid skip token.");
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.split(':');
        if parts.next() != Some("lab1") {
            return Err(invalid());
        }
        let snapshot = parts
            .next()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(invalid)?;
        let offset = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid)?;
        Ok(Self { snapshot, offset })
    }
}

/// One page of a paged directory listing.
#[derive(Debug)]
pub struct Page {
    /// IDs on this page.
    pub ids: Vec<Uuid>,
    /// The skip token of the next page, when there is one.
    pub next: Option<SkipToken>,
}

/// Takes the page that `options` requests from the IDs that `list` builds. The first page
/// stores the list as a snapshot, and the pages after it reuse that snapshot.
pub fn page_of(
    cursors: &Cursors,
    options: &QueryOptions,
    list: impl FnOnce() -> Vec<Uuid>,
) -> Result<Page, GraphError> {
    let size = options.directory_page_size()?;
    let (snapshot, ids, offset) = match options.skip_token.as_deref() {
        Some(text) => {
            let token = SkipToken::decode(text)?;
            match cursors.get(token.snapshot) {
                // Every skip token the lab issues points inside its snapshot.
                Some(ids) if token.offset >= ids.len() => {
                    return Err(GraphError::for_directory_bad_request("Invalid skip token."));
                }
                Some(ids) => (token.snapshot, ids, token.offset),
                None => {
                    // NOTE: a forgotten snapshot is rebuilt from the current directory, so a
                    // listing paged across more than MAX_CURSORS concurrent listings can see
                    // changes made since its first page.
                    let ids = Arc::new(list());
                    (cursors.insert(ids.clone()), ids, token.offset)
                }
            }
        }
        None => {
            let ids = Arc::new(list());
            if ids.len() <= size {
                return Ok(Page {
                    ids: ids.to_vec(),
                    next: None,
                });
            }
            (cursors.insert(ids.clone()), ids, 0)
        }
    };
    let end = offset.saturating_add(size).min(ids.len());
    let page = ids.get(offset..end).unwrap_or_default().to_vec();
    let next = (end < ids.len()).then_some(SkipToken {
        snapshot,
        offset: end,
    });
    Ok(Page { ids: page, next })
}

/// Replaces (or adds) one query option in a query string, keeping the others as sent.
pub fn with_query_option(query: Option<&str>, name: &str, value: &str) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    if let Some(query) = query {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if !k.eq_ignore_ascii_case(name) {
                serializer.append_pair(&k, &v);
            }
        }
    }
    serializer.append_pair(name, value);
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doubled_quote_is_one_quote() {
        let filter = Filter::parse("displayName eq 'O''Brien'").expect("parses");
        assert!(filter.matches(&json!({"displayName": "O'Brien"})));
        assert!(!filter.matches(&json!({"displayName": "O''Brien"})));
    }

    #[test]
    fn equality_ignores_case() {
        let filter = Filter::parse("mail eq 'ALICE@lab.example'").expect("parses");
        assert!(filter.matches(&json!({"mail": "alice@lab.example"})));
        assert!(!filter.matches(&json!({"mail": null})));
    }

    #[test]
    fn lambda_matches_any_element() {
        let filter = Filter::parse("proxyAddresses/any(p:p eq 'smtp:robert.baker@lab.example')")
            .expect("parses");
        let bob =
            json!({"proxyAddresses": ["SMTP:bob@lab.example", "smtp:robert.baker@lab.example"]});
        assert!(filter.matches(&bob));
        assert!(!filter.matches(&json!({"proxyAddresses": ["SMTP:alice@lab.example"]})));
    }

    #[test]
    fn precedence_binds_and_before_or() {
        let filter = Filter::parse("a eq 'x' or b eq 'y' and c eq 'z'").expect("parses");
        assert!(filter.matches(&json!({"a": "x", "b": "n", "c": "n"})));
        assert!(!filter.matches(&json!({"a": "n", "b": "y", "c": "n"})));
        let grouped = Filter::parse("(a eq 'x' or b eq 'y') and not (c eq 'z')").expect("parses");
        assert!(grouped.matches(&json!({"a": "n", "b": "y", "c": "n"})));
        assert!(!grouped.matches(&json!({"a": "x", "b": "y", "c": "z"})));
    }

    #[test]
    fn quote_inside_literal_does_not_end_the_filter() {
        let filter = Filter::parse("displayName eq 'a'' or displayName eq ''b'").expect("parses");
        assert_eq!(
            filter,
            Filter::Compare {
                path: vec!["displayName".into()],
                op: CompareOp::Eq,
                value: Literal::String("a' or displayName eq 'b".into()),
            }
        );
    }

    #[test]
    fn malformed_filters_are_rejected() {
        for text in [
            "appId eq 'x",
            "appId eq",
            "appId xx 'a'",
            "(appId eq 'a'",
            "appId eq 'a' 'b'",
        ] {
            let error = Filter::parse(text).expect_err(text);
            assert_eq!(error.code, "BadRequest", "{text}");
        }
    }

    #[test]
    fn filter_nesting_and_size_are_bounded() {
        let nested = |depth: usize| {
            format!(
                "{}displayName eq 'x'{}",
                "(".repeat(depth),
                ")".repeat(depth)
            )
        };
        assert!(Filter::parse(&nested(MAX_FILTER_DEPTH)).is_ok());
        let too_deep = Filter::parse(&nested(MAX_FILTER_DEPTH + 1)).expect_err("too deep");
        assert!(
            too_deep.message.contains("nests deeper"),
            "{}",
            too_deep.message
        );

        let nots = format!("{}a eq 1", "not ".repeat(MAX_FILTER_DEPTH + 1));
        assert!(Filter::parse(&nots).is_err());

        // `a eq 1` and `and` count one node each: 50 comparisons make 99 nodes.
        let chain = |comparisons: usize| vec!["a eq 1"; comparisons].join(" and ");
        assert!(Filter::parse(&chain(50)).is_ok());
        let too_big = Filter::parse(&chain(51)).expect_err("too many nodes");
        assert!(too_big.message.contains("more than"), "{}", too_big.message);
    }

    #[test]
    fn bare_guid_is_a_string_literal() {
        let filter =
            Filter::parse("appId eq 6f1c0a3e-2b7d-4e59-9c0f-1a2b3c4d5e6f").expect("parses");
        assert!(filter.matches(&json!({"appId": "6f1c0a3e-2b7d-4e59-9c0f-1a2b3c4d5e6f"})));
    }

    #[test]
    fn skip_token_round_trips() {
        let token = SkipToken {
            snapshot: 0xdead_beef,
            offset: 4200,
        };
        assert_eq!(SkipToken::decode(&token.encode()).expect("decodes"), token);
        assert!(SkipToken::decode("garbage").is_err());
    }

    #[test]
    fn pages_cover_the_snapshot_once() {
        let cursors = Cursors::default();
        let all: Vec<Uuid> = (0..250).map(|_| Uuid::new_v4()).collect();
        let mut options = QueryOptions {
            top: Some(100),
            ..QueryOptions::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = page_of(&cursors, &options, || all.clone()).expect("page");
            seen.extend(page.ids);
            match page.next {
                Some(next) => options.skip_token = Some(next.encode()),
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn skip_token_past_snapshot_is_rejected() {
        let cursors = Cursors::default();
        let all: Vec<Uuid> = (0..250).map(|_| Uuid::new_v4()).collect();
        let first = page_of(&cursors, &QueryOptions::default(), || all.clone()).expect("page");
        let snapshot = first.next.expect("a second page").snapshot;
        for offset in [250, usize::MAX] {
            let options = QueryOptions {
                skip_token: Some(SkipToken { snapshot, offset }.encode()),
                ..QueryOptions::default()
            };
            let error = page_of(&cursors, &options, || all.clone()).expect_err("forged offset");
            assert_eq!(error.status, 400, "offset {offset}");
        }
    }

    #[test]
    fn page_size_outside_limits_is_rejected() {
        let options = QueryOptions {
            top: Some(1000),
            ..QueryOptions::default()
        };
        assert!(options.directory_page_size().is_err());
    }

    #[test]
    fn select_keeps_named_properties() {
        let item = json!({"@odata.type": "#microsoft.graph.user", "id": "1", "mail": "a", "displayName": "A"});
        let projected = project(item, Some(&["ID".to_string(), "mail".to_string()]));
        assert_eq!(
            projected,
            json!({"@odata.type": "#microsoft.graph.user", "id": "1", "mail": "a"})
        );
    }
}
