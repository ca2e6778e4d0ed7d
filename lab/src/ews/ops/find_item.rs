//! `FindItem`: a shallow search of a folder with a restriction, sort order and paging.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/finditem-operation>.

use std::cmp::Ordering;
use std::fmt::Write as _;

use super::{enumerated, required};
use crate::World;
use crate::ews::mailbox::Principal;
use crate::ews::props::{ItemContext, ItemShape, PathError, PropertyPath, value_of, write_message};
use crate::ews::restriction::{Restriction, RestrictionError};
use crate::ews::soap::{self, Fault, ResponseError};
use crate::ews::xml::Element;
use crate::world::exchange::Item;

/// The slice of the matching items that a request selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paging {
    /// Every item.
    All,
    /// `IndexedPageItemView`.
    Indexed {
        max: Option<usize>,
        offset: usize,
        from_end: bool,
    },
    /// `FractionalPageItemView`.
    Fractional {
        max: Option<usize>,
        numerator: usize,
        denominator: usize,
    },
}

pub fn execute(world: &World, principal: &Principal, operation: &Element) -> Result<String, Fault> {
    let traversal = enumerated(
        operation,
        "Traversal",
        &["Shallow", "SoftDeleted", "Associated"],
        None,
        "ItemQueryTraversalType",
    )?;
    let shape = match ItemShape::parse(required(operation, "ItemShape")?) {
        Ok(shape) => Some(shape),
        Err(PathError::Schema(fault)) => return Err(fault),
        Err(PathError::Invalid) => None,
    };
    let paging = paging(operation)?;
    let restriction = match operation
        .child("Restriction")
        .map(Restriction::parse_container)
    {
        None => Ok(None),
        Some(Ok(restriction)) => Ok(Some(restriction)),
        Some(Err(RestrictionError::Schema(fault))) => return Err(fault),
        Some(Err(RestrictionError::Path(error))) => Err(error.into_result()?),
    };
    let sort = sort_order(operation)?;
    let folders = required(operation, "ParentFolderIds")?;

    let mut out = String::with_capacity(4096);
    soap::open_response(&mut out, "FindItem");
    for folder_id in &folders.children {
        let result = match (&shape, &restriction) {
            (None, _) => Err(PathError::Invalid.into_result()?),
            (_, Err(error)) => Err(error.clone()),
            (Some(shape), _) if shape.find_item_unsupported().is_some() => Err(ResponseError::new(
                "ErrorInvalidPropertyRequest",
                "This property was requested, but it isn't supported.",
            )),
            (Some(shape), Ok(restriction)) => {
                principal.folder(world, folder_id)?.map(|(owner, which)| {
                    let folder = world.exchange.mailboxes[&owner].folder(which);
                    // Only the shallow traversal finds items, because the lab keeps no
                    // soft-deleted or associated items.
                    let mut matching: Vec<&Item> = if traversal == "Shallow" {
                        folder
                            .items
                            .iter()
                            .filter(|item| restriction.as_ref().is_none_or(|r| r.matches(item)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    sort_items(&mut matching, &sort);
                    (owner, which, shape, matching)
                })
            }
        };
        match result {
            Ok((owner, which, shape, matching)) => {
                let context = ItemContext {
                    world,
                    owner,
                    folder: which,
                };
                soap::write_success_open(&mut out, "FindItemResponseMessage");
                write_page(&mut out, &context, shape, &matching, paging);
                out.push_str("</m:FindItemResponseMessage>");
            }
            Err(error) => {
                error.write_open(&mut out, "FindItemResponseMessage");
                out.push_str("</m:FindItemResponseMessage>");
            }
        }
    }
    soap::close_response(&mut out, "FindItem");
    Ok(out)
}

fn write_page(
    out: &mut String,
    context: &ItemContext<'_>,
    shape: &ItemShape,
    items: &[&Item],
    paging: Paging,
) {
    let total = items.len();
    let (start, end) = match paging {
        Paging::All => (0, total),
        Paging::Indexed {
            max,
            offset,
            from_end,
        } => {
            let offset = offset.min(total);
            let count = max.unwrap_or(total).min(total - offset);
            if from_end {
                (total - offset - count, total - offset)
            } else {
                (offset, offset + count)
            }
        }
        Paging::Fractional {
            max,
            numerator,
            denominator,
        } => {
            let offset = (total * numerator / denominator.max(1)).min(total);
            let count = max.unwrap_or(total).min(total - offset);
            (offset, offset + count)
        }
    };
    let last = match paging {
        Paging::Indexed { from_end: true, .. } => start == 0,
        _ => end == total,
    };
    match paging {
        Paging::Fractional { denominator, .. } => {
            let _ = write!(
                out,
                r#"<m:RootFolder NumeratorOffset="{}" AbsoluteDenominator="{denominator}" IncludesLastItemInRange="{last}" TotalItemsInView="{total}">"#,
                end * denominator.max(1) / total.max(1)
            );
        }
        _ => {
            let next = match paging {
                Paging::Indexed { from_end: true, .. } => total - start,
                _ => end,
            };
            let _ = write!(
                out,
                r#"<m:RootFolder IndexedPagingOffset="{next}" TotalItemsInView="{total}" IncludesLastItemInRange="{last}">"#
            );
        }
    }
    if start == end {
        out.push_str("<t:Items/>");
    } else {
        out.push_str("<t:Items>");
        for item in &items[start..end] {
            write_message(out, context, item, shape, true);
        }
        out.push_str("</t:Items>");
    }
    out.push_str("</m:RootFolder>");
}

fn paging(operation: &Element) -> Result<Paging, Fault> {
    let max = |view: &Element| -> Result<Option<usize>, Fault> {
        match view.attribute("MaxEntriesReturned") {
            None => Ok(None),
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(Fault::schema_violation(
                    view,
                    format!(
                        "The 'MaxEntriesReturned' attribute is invalid - The value '{text}' is invalid according to its datatype 'Int'."
                    ),
                )),
            },
        }
    };
    let number = |view: &Element, name: &str| -> Result<usize, Fault> {
        let text = view.attribute(name).ok_or_else(|| {
            Fault::schema_violation(view, format!("The required attribute '{name}' is missing."))
        })?;
        text.trim().parse().map_err(|_| {
            Fault::schema_violation(view, format!("The '{name}' attribute is invalid - The value '{text}' is invalid according to its datatype 'Int'."))
        })
    };
    if let Some(view) = operation.child("IndexedPageItemView") {
        let base = enumerated(
            view,
            "BasePoint",
            &["Beginning", "End"],
            None,
            "IndexBasePointType",
        )?;
        return Ok(Paging::Indexed {
            max: max(view)?,
            offset: number(view, "Offset")?,
            from_end: base == "End",
        });
    }
    if let Some(view) = operation.child("FractionalPageItemView") {
        let denominator = number(view, "Denominator")?;
        if denominator == 0 {
            return Err(Fault::schema_violation(
                view,
                "The 'Denominator' attribute must be positive.".into(),
            ));
        }
        return Ok(Paging::Fractional {
            max: max(view)?,
            numerator: number(view, "Numerator")?,
            denominator,
        });
    }
    Ok(Paging::All)
}

/// Sort keys and whether each is descending.
fn sort_order(operation: &Element) -> Result<Vec<(PropertyPath, bool)>, Fault> {
    let Some(order) = operation.child("SortOrder") else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for field in order.children_named("FieldOrder") {
        let descending = enumerated(
            field,
            "Order",
            &["Ascending", "Descending"],
            None,
            "SortDirectionType",
        )? == "Descending";
        let Some(path) = field.children.first().and_then(PropertyPath::parse) else {
            return Err(Fault::schema_violation(
                field,
                "The element 'FieldOrder' has no property path.".into(),
            ));
        };
        match path {
            Ok(path) => keys.push((path, descending)),
            Err(PathError::Schema(fault)) => return Err(fault),
            Err(PathError::Invalid) => {
                return Err(Fault::new(
                    "ErrorInvalidExtendedProperty",
                    "The extended property attribute combination is invalid.",
                ));
            }
        }
    }
    Ok(keys)
}

/// Sorts by the requested keys; without keys, newest first by receive time, as a folder's
/// default view in Exchange lists them.
fn sort_items(items: &mut [&Item], keys: &[(PropertyPath, bool)]) {
    if keys.is_empty() {
        items.sort_by(|a, b| {
            let received = |i: &Item| i.delivered.unwrap_or(i.created);
            received(b).cmp(&received(a)).then(b.id.cmp(&a.id))
        });
        return;
    }
    items.sort_by(|a, b| {
        for (path, descending) in keys {
            let order = match (value_of(a, path), value_of(b, path)) {
                (Some(x), Some(y)) => x.compare(&y).unwrap_or(Ordering::Equal),
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            let order = if *descending { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        a.id.cmp(&b.id)
    });
}
