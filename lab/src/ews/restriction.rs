//! `Restriction`: the search filter of FindItem, parsed once and evaluated per item.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/restriction>.

use super::props::{PathError, PropertyPath, Value, value_of};
use super::soap::Fault;
use super::xml::Element;
use crate::world::exchange::Item;

/// A comparison operator of a restriction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `IsEqualTo`.
    Equal,
    /// `IsNotEqualTo`.
    NotEqual,
    /// `IsGreaterThan`.
    Greater,
    /// `IsGreaterThanOrEqualTo`.
    GreaterOrEqual,
    /// `IsLessThan`.
    Less,
    /// `IsLessThanOrEqualTo`.
    LessOrEqual,
}

/// The right-hand side of a comparison (`FieldURIOrConstant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// `Constant/@Value`.
    Constant(String),
    /// Another property of the same item.
    Property(PropertyPath),
}

/// A parsed restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    /// A comparison of a property with a constant or another property.
    Compare(Comparison, PropertyPath, Operand),
    /// `Exists`.
    Exists(PropertyPath),
    /// `Contains` with its `ContainmentMode` and whether case is ignored.
    Contains {
        /// The property.
        path: PropertyPath,
        /// The text to look for.
        value: String,
        /// `ContainmentMode`.
        mode: ContainmentMode,
        /// Whether `ContainmentComparison` ignores case.
        ignore_case: bool,
    },
    /// `And`.
    And(Vec<Restriction>),
    /// `Or`.
    Or(Vec<Restriction>),
    /// `Not`.
    Not(Box<Restriction>),
}

/// `ContainmentMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainmentMode {
    /// The whole value.
    FullString,
    /// A prefix of the value.
    Prefixed,
    /// Anywhere in the value.
    Substring,
    /// A prefix of any word.
    PrefixOnWords,
    /// A phrase of whole words.
    ExactPhrase,
}

/// An unusable restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestrictionError {
    /// The restriction breaks the schema.
    Schema(Fault),
    /// A path is invalid (`ErrorInvalidExtendedProperty`).
    Path(PathError),
}

impl From<PathError> for RestrictionError {
    fn from(error: PathError) -> Self {
        match error {
            PathError::Schema(fault) => RestrictionError::Schema(fault),
            other => RestrictionError::Path(other),
        }
    }
}

impl Restriction {
    /// Reads the content of a `Restriction` element (its single child).
    pub fn parse_container(element: &Element) -> Result<Restriction, RestrictionError> {
        match element.children.as_slice() {
            [only] => Self::parse(only),
            _ => Err(RestrictionError::Schema(Fault::schema_violation(
                element,
                "The element 'Restriction' must contain exactly one search expression.".into(),
            ))),
        }
    }

    fn parse(element: &Element) -> Result<Restriction, RestrictionError> {
        let comparison = match element.name.as_str() {
            "IsEqualTo" => Some(Comparison::Equal),
            "IsNotEqualTo" => Some(Comparison::NotEqual),
            "IsGreaterThan" => Some(Comparison::Greater),
            "IsGreaterThanOrEqualTo" => Some(Comparison::GreaterOrEqual),
            "IsLessThan" => Some(Comparison::Less),
            "IsLessThanOrEqualTo" => Some(Comparison::LessOrEqual),
            _ => None,
        };
        if let Some(comparison) = comparison {
            let path = first_path(element)?;
            let Some(operand) = element.child("FieldURIOrConstant") else {
                return Err(schema(element, "is missing 'FieldURIOrConstant'"));
            };
            let operand = match operand.children.first() {
                Some(constant) if constant.name == "Constant" => Operand::Constant(
                    constant
                        .attribute("Value")
                        .ok_or_else(|| schema(constant, "is missing the 'Value' attribute"))?
                        .to_string(),
                ),
                Some(other) => match PropertyPath::parse(other) {
                    Some(path) => Operand::Property(path?),
                    None => return Err(schema(other, "is not a property path or constant")),
                },
                None => return Err(schema(operand, "is empty")),
            };
            return Ok(Restriction::Compare(comparison, path, operand));
        }
        match element.name.as_str() {
            "Exists" => Ok(Restriction::Exists(first_path(element)?)),
            "Contains" => {
                let path = first_path(element)?;
                let Some(constant) = element.child("Constant") else {
                    return Err(schema(element, "is missing 'Constant'"));
                };
                let value = constant
                    .attribute("Value")
                    .ok_or_else(|| schema(constant, "is missing the 'Value' attribute"))?
                    .to_string();
                let mode = match element.attribute("ContainmentMode").unwrap_or("FullString") {
                    "FullString" => ContainmentMode::FullString,
                    "Prefixed" => ContainmentMode::Prefixed,
                    "Substring" => ContainmentMode::Substring,
                    "PrefixOnWords" => ContainmentMode::PrefixOnWords,
                    "ExactPhrase" => ContainmentMode::ExactPhrase,
                    _ => return Err(schema(element, "has an invalid 'ContainmentMode'")),
                };
                let ignore_case = match element
                    .attribute("ContainmentComparison")
                    .unwrap_or("Exact")
                {
                    "Exact" | "IgnoreNonSpacingCharacters" | "Loose" | "LooseAndIgnoreNonSpace" => {
                        false
                    }
                    "IgnoreCase"
                    | "IgnoreCaseAndNonSpacingCharacters"
                    | "LooseAndIgnoreCase"
                    | "LooseAndIgnoreCaseAndIgnoreNonSpace" => true,
                    _ => return Err(schema(element, "has an invalid 'ContainmentComparison'")),
                };
                Ok(Restriction::Contains {
                    path,
                    value,
                    mode,
                    ignore_case,
                })
            }
            "And" | "Or" => {
                if element.children.is_empty() {
                    return Err(schema(element, "needs at least one search expression"));
                }
                let parts = element
                    .children
                    .iter()
                    .map(Self::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if element.name == "And" {
                    Restriction::And(parts)
                } else {
                    Restriction::Or(parts)
                })
            }
            "Not" => Ok(Restriction::Not(Box::new(Self::parse_container(element)?))),
            other => Err(RestrictionError::Schema(Fault::schema_violation(
                element,
                format!("The element '{other}' is not a search expression."),
            ))),
        }
    }

    /// Returns whether an item matches.
    pub fn matches(&self, item: &Item) -> bool {
        match self {
            Restriction::Compare(comparison, path, operand) => {
                let Some(left) = value_of(item, path) else {
                    // A missing property matches only "not equal", as in Exchange.
                    return *comparison == Comparison::NotEqual;
                };
                let right = match operand {
                    Operand::Constant(text) => left.same_kind(text),
                    Operand::Property(other) => value_of(item, other),
                };
                let Some(order) = right.and_then(|r| left.compare(&r)) else {
                    return false;
                };
                match comparison {
                    Comparison::Equal => order.is_eq(),
                    Comparison::NotEqual => order.is_ne(),
                    Comparison::Greater => order.is_gt(),
                    Comparison::GreaterOrEqual => order.is_ge(),
                    Comparison::Less => order.is_lt(),
                    Comparison::LessOrEqual => order.is_le(),
                }
            }
            Restriction::Exists(path) => value_of(item, path).is_some(),
            Restriction::Contains {
                path,
                value,
                mode,
                ignore_case,
            } => {
                let Some(Value::Text(text)) = value_of(item, path) else {
                    return false;
                };
                let (text, value) = if *ignore_case {
                    (text.to_lowercase(), value.to_lowercase())
                } else {
                    (text, value.clone())
                };
                match mode {
                    ContainmentMode::FullString => text == value,
                    ContainmentMode::Prefixed => text.starts_with(&value),
                    ContainmentMode::Substring => text.contains(&value),
                    ContainmentMode::PrefixOnWords => {
                        text.split_whitespace().any(|word| word.starts_with(&value))
                    }
                    ContainmentMode::ExactPhrase => {
                        let words: Vec<&str> = text.split_whitespace().collect();
                        let phrase: Vec<&str> = value.split_whitespace().collect();
                        !phrase.is_empty()
                            && words.windows(phrase.len()).any(|w| w == phrase.as_slice())
                    }
                }
            }
            Restriction::And(parts) => parts.iter().all(|p| p.matches(item)),
            Restriction::Or(parts) => parts.iter().any(|p| p.matches(item)),
            Restriction::Not(inner) => !inner.matches(item),
        }
    }
}

fn first_path(element: &Element) -> Result<PropertyPath, RestrictionError> {
    let Some(path) = element.children.first().and_then(PropertyPath::parse) else {
        return Err(schema(element, "does not start with a property path"));
    };
    Ok(path?)
}

fn schema(element: &Element, what: &str) -> RestrictionError {
    RestrictionError::Schema(Fault::schema_violation(
        element,
        format!("The element '{}' {what}.", element.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::xml::parse;
    use chrono::Utc;

    fn item(message_id: &str, subject: &str) -> Item {
        Item {
            id: 1,
            change: 1,
            mime: Vec::new(),
            internet_message_id: Some(message_id.into()),
            subject: subject.into(),
            from: None,
            recipients: Vec::new(),
            sent: None,
            delivered: None,
            created: Utc::now(),
            message_flags: 0,
            extended: vec![crate::world::exchange::ExtendedProperty {
                tag: None,
                set_id: Some("00020329-0000-0000-c000-000000000046".into()),
                name: Some("Marker".into()),
                id: None,
                prop_type: "String".into(),
                value: "done".into(),
            }],
        }
    }

    fn restriction(text: &str) -> Restriction {
        Restriction::parse_container(&parse(text).expect("parses")).expect("valid restriction")
    }

    #[test]
    fn field_uri_and_tag_find_the_same_item() {
        let by_field = restriction(
            r#"<Restriction><IsEqualTo><FieldURI FieldURI="message:InternetMessageId"/><FieldURIOrConstant><Constant Value="&lt;a@x&gt;"/></FieldURIOrConstant></IsEqualTo></Restriction>"#,
        );
        let by_tag = restriction(
            r#"<Restriction><IsEqualTo><ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/><FieldURIOrConstant><Constant Value="&lt;A@X&gt;"/></FieldURIOrConstant></IsEqualTo></Restriction>"#,
        );
        let wanted = item("<a@x>", "s");
        let other = item("<b@x>", "s");
        assert!(by_field.matches(&wanted));
        assert!(by_tag.matches(&wanted));
        assert!(!by_field.matches(&other));
    }

    #[test]
    fn boolean_operators_and_named_properties_combine() {
        let text = r#"<Restriction><And><Exists><FieldURI FieldURI="message:InternetMessageId"/></Exists><Not><IsEqualTo><ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="Marker" PropertyType="String"/><FieldURIOrConstant><Constant Value="done"/></FieldURIOrConstant></IsEqualTo></Not><Or><Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><FieldURI FieldURI="item:Subject"/><Constant Value="REPORT"/></Contains><IsEqualTo><FieldURI FieldURI="item:Subject"/><FieldURIOrConstant><Constant Value="x"/></FieldURIOrConstant></IsEqualTo></Or></And></Restriction>"#;
        let filter = restriction(text);
        let mut unmarked = item("<a@x>", "Monthly report");
        unmarked.extended.clear();
        assert!(filter.matches(&unmarked));
        assert!(!filter.matches(&item("<a@x>", "Monthly report")));
        let mut other_subject = unmarked.clone();
        other_subject.subject = "Invoice".into();
        assert!(!filter.matches(&other_subject));
    }

    #[test]
    fn unknown_expression_is_a_schema_fault() {
        let error = Restriction::parse_container(
            &parse("<Restriction><Near/></Restriction>").expect("parses"),
        )
        .unwrap_err();
        assert!(matches!(error, RestrictionError::Schema(_)));
    }
}
