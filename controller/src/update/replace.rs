//! The rewrite of one message in one mailbox: find the original, create the replacement,
//! delete the original, so that a replay at any point rewrites nothing twice.
//!
//! Every replacement carries the marker ([`SOURCE_PROPERTY`](super::store::SOURCE_PROPERTY))
//! with the message's source key. The search that looks for the original also returns the
//! marked replacements of it, so the steps below decide from what Sent Items holds:
//!
//! 1. A replacement with this key exists: the message was rewritten before (a crash between
//!    creating and finishing, a duplicate spool file, a second instance). Only an original
//!    left behind by a crash between create and delete is deleted: the item that the
//!    replacement names in `siuctl-replaced-item`, or that the state file recorded. Extra
//!    replacements with the same key, which only a race between two instances can create,
//!    are deleted so that one remains.
//! 2. Otherwise the original is picked (by send time and size when several items share its
//!    Message-ID) and recorded in the state file, synced to disk, and on the replacement, so
//!    that a replay deletes that original and no other.
//! 3. A split copy whose original another copy already replaced takes its times from that
//!    copy's replacement.
//! 4. No original and no sibling: the original has not reached Sent Items yet.

use chrono::Utc;
use tracing::{debug, info, warn};

use super::message::SpoolMessage;
use super::state::{MessageState, Phase, StateError};
use super::store::{Deleted, FoundItem, Replacement, SentItemsStore, StoreError};
use super::throttle::Gates;

/// The result of a rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceOutcome {
    /// The replacement was created now and the original deleted.
    Replaced,
    /// The replacement was created now and the original kept (`keepOriginal`).
    KeptOriginal,
    /// A replacement existed already; a leftover original or duplicate was deleted.
    AlreadyReplaced {
        /// Items deleted now: originals left by a crash and duplicate replacements.
        cleaned_up: usize,
    },
    /// Neither the original nor a replacement of a sibling copy is in Sent Items yet.
    OriginalMissing,
}

/// Errors that stop a rewrite.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// A request to the mailbox failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state file could not be written before creating the replacement.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The mailbox, store and settings of a rewrite.
#[derive(Debug)]
pub struct ReplaceContext<'a> {
    /// The mailbox's Sent Items.
    pub store: &'a dyn SentItemsStore,
    /// The shared back-off gates.
    pub gates: &'a Gates,
    /// The gates to pass before each request.
    pub gate_keys: [&'a str; 2],
    /// The mailbox's primary SMTP address.
    pub mailbox: &'a str,
    /// Keep the original next to the replacement.
    pub keep_original: bool,
}

/// Rewrites `message` in the context's mailbox. `save_state` persists the state, synced to
/// disk, before the replacement is created.
pub async fn replace(
    context: &ReplaceContext<'_>,
    message: &SpoolMessage,
    state: &mut MessageState,
    save_state: &mut (dyn FnMut(&MessageState) -> Result<(), StateError> + Send),
) -> Result<ReplaceOutcome, ReplaceError> {
    let key = message.source_key();
    let store = context.store;
    let mailbox = context.mailbox;

    // 1. What Sent Items holds for this original.
    context.gates.pass(&context.gate_keys).await;
    let items = store.find(mailbox, &message.original_message_id).await?;
    let (mut ours, rest): (Vec<FoundItem>, Vec<FoundItem>) = items
        .into_iter()
        .partition(|item| item.source_key.as_deref() == Some(key.as_str()));
    let (siblings, originals): (Vec<FoundItem>, Vec<FoundItem>) =
        rest.into_iter().partition(FoundItem::is_marked);
    debug!(
        replacements = ours.len(),
        siblings = siblings.len(),
        originals = originals.len(),
        "searched Sent Items"
    );

    // 2. Already rewritten: clean up what a crash or a race left.
    if !ours.is_empty() {
        ours.sort_by(|a, b| a.id.cmp(&b.id));
        let kept = ours.remove(0);
        state.phase = Phase::Created;
        state.created_item = Some(kept.id.clone());
        let mut cleaned_up = 0;
        for duplicate in &ours {
            warn!(item = %duplicate.id, "deleting a second replacement of the same message");
            cleaned_up += delete(context, &duplicate.id).await?;
        }
        if !context.keep_original {
            for original in leftover_originals(&originals, &kept, state.original_item.as_deref()) {
                info!(item = %original.id, "deleting the original that an interrupted run left");
                cleaned_up += delete(context, &original.id).await?;
            }
        }
        return Ok(ReplaceOutcome::AlreadyReplaced { cleaned_up });
    }

    // 3. The times come from the original, or from a sibling copy's replacement.
    let (original, sent, delivered) = match pick_original(&originals, message) {
        Some(original) => {
            if originals.len() > 1 {
                info!(
                    candidates = originals.len(),
                    picked = %original.id,
                    sent = ?original.sent,
                    size = ?original.size,
                    "several items share the original's Message-ID; picked the one closest in send time and size"
                );
            }
            (Some(original), original.sent, original.delivered)
        }
        None => match siblings.iter().find(|item| item.sent.is_some()) {
            Some(sibling) => {
                debug!(sibling = %sibling.id, "another split copy replaced the original; using its times");
                (None, sibling.sent, sibling.delivered)
            }
            None => return Ok(ReplaceOutcome::OriginalMissing),
        },
    };
    let sent = sent.or(message.date).unwrap_or_else(Utc::now);

    // 4. Record the pick before creating, so that a replay deletes this original only.
    state.phase = Phase::Creating;
    state.original_item = original.map(|item| item.id.clone());
    save_state(state)?;

    // 5. Create the replacement, then delete the original.
    context.gates.pass(&context.gate_keys).await;
    let created = store
        .create(
            mailbox,
            &Replacement {
                mime: &message.mime,
                sent,
                delivered,
                source_key: &key,
                original_message_id: &message.original_message_id,
                replaced_item: original.map(|item| item.id.as_str()),
            },
        )
        .await?;
    state.phase = Phase::Created;
    state.created_item = Some(created.clone());
    debug!(item = %created, "created the replacement");

    match original {
        Some(original) if !context.keep_original => {
            delete(context, &original.id).await?;
            Ok(ReplaceOutcome::Replaced)
        }
        Some(_) => Ok(ReplaceOutcome::KeptOriginal),
        None => Ok(ReplaceOutcome::Replaced),
    }
}

async fn delete(context: &ReplaceContext<'_>, item: &str) -> Result<usize, ReplaceError> {
    context.gates.pass(&context.gate_keys).await;
    match context.store.delete(context.mailbox, item).await? {
        Deleted::Now => Ok(1),
        Deleted::AlreadyGone => {
            debug!(%item, "the item was deleted already");
            Ok(0)
        }
    }
}

/// Picks the original to replace among unmarked items with its Message-ID: the one whose
/// send time is closest to the message's Date, then the one whose size is closest to the
/// processed message's (the rules engine only adds to it).
fn pick_original<'a>(originals: &'a [FoundItem], message: &SpoolMessage) -> Option<&'a FoundItem> {
    let processed_size = message.mime.len() as u64;
    originals.iter().min_by_key(|item| {
        let time_distance = match (item.sent, message.date) {
            (Some(sent), Some(date)) => (sent - date).num_seconds().unsigned_abs(),
            _ => u64::MAX,
        };
        let size_distance = item
            .size
            .map_or(u64::MAX, |size| size.abs_diff(processed_size));
        (time_distance, size_distance, item.id.clone())
    })
}

/// Returns the original that a run interrupted between create and delete left: the item the
/// replacement names, or the one the state recorded. Another item with the same Message-ID
/// (a second message that reused it) is never deleted here.
fn leftover_originals<'a>(
    originals: &'a [FoundItem],
    replacement: &FoundItem,
    recorded: Option<&str>,
) -> Vec<&'a FoundItem> {
    let named = replacement.replaced_item.as_deref().or(recorded);
    originals
        .iter()
        .filter(|item| Some(item.id.as_str()) == named)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::store::ErrorClass;
    use crate::update::test_support::MemoryStore;

    fn message(headers: &str) -> SpoolMessage {
        let file = format!(
            "{headers}From: alice@lab.example\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nprocessed body with signature\r\n"
        );
        SpoolMessage::parse(file.as_bytes()).expect("message parses")
    }

    async fn run(
        store: &MemoryStore,
        message: &SpoolMessage,
        state: &mut MessageState,
        keep_original: bool,
    ) -> Result<ReplaceOutcome, ReplaceError> {
        let gates = Gates::new();
        let context = ReplaceContext {
            store,
            gates: &gates,
            gate_keys: ["server", "mailbox"],
            mailbox: "alice@lab.example",
            keep_original,
        };
        replace(&context, message, state, &mut |_| Ok(())).await
    }

    fn new_state() -> MessageState {
        MessageState::new("1.1_1.host", Utc::now())
    }

    #[tokio::test]
    async fn original_is_replaced_once() {
        let store = MemoryStore::with_original("orig", "<m@lab>", "2026-12-01T10:00:00Z", 100);
        let message = message("Message-ID: <m@lab>\r\n");
        let mut state = new_state();

        let first = run(&store, &message, &mut state, false)
            .await
            .expect("runs");
        let second = run(&store, &message, &mut new_state(), false)
            .await
            .expect("replays");

        assert_eq!(first, ReplaceOutcome::Replaced);
        assert_eq!(second, ReplaceOutcome::AlreadyReplaced { cleaned_up: 0 });
        assert_eq!(store.ids(), ["created-1"]);
        let marked = store.marked();
        assert_eq!(marked[0].source_key.as_deref(), Some("<m@lab>"));
        assert_eq!(
            marked[0].sent,
            Some("2026-12-01T10:00:00Z".parse().expect("time"))
        );
        assert_eq!(state.original_item.as_deref(), Some("orig"));
    }

    #[tokio::test]
    async fn missing_original_is_reported() {
        let store = MemoryStore::default();
        let message = message("Message-ID: <late@lab>\r\n");

        let outcome = run(&store, &message, &mut new_state(), false)
            .await
            .expect("runs");

        assert_eq!(outcome, ReplaceOutcome::OriginalMissing);
        assert!(store.ids().is_empty());
    }

    #[tokio::test]
    async fn keep_original_leaves_it_in_place() {
        let store = MemoryStore::with_original("orig", "<k@lab>", "2026-12-01T10:00:00Z", 100);
        let message = message("Message-ID: <k@lab>\r\n");

        let outcome = run(&store, &message, &mut new_state(), true)
            .await
            .expect("runs");
        let replay = run(&store, &message, &mut new_state(), true)
            .await
            .expect("replays");

        assert_eq!(outcome, ReplaceOutcome::KeptOriginal);
        assert_eq!(replay, ReplaceOutcome::AlreadyReplaced { cleaned_up: 0 });
        assert_eq!(store.ids(), ["orig", "created-1"]);
    }

    #[tokio::test]
    async fn crash_before_delete_is_finished_by_the_replay() {
        let store = MemoryStore::with_original("orig", "<c@lab>", "2026-12-01T10:00:00Z", 100);
        let message = message("Message-ID: <c@lab>\r\n");
        let mut state = new_state();
        *store.fail_next_delete.lock().unwrap() = true;

        let interrupted = run(&store, &message, &mut state, false).await;
        let replay = run(&store, &message, &mut state, false)
            .await
            .expect("replays");

        assert!(matches!(
            interrupted.map_err(|error| match error {
                ReplaceError::Store(error) => error.class(),
                ReplaceError::State(_) => unreachable!(),
            }),
            Err(ErrorClass::Transient)
        ));
        assert_eq!(replay, ReplaceOutcome::AlreadyReplaced { cleaned_up: 1 });
        assert_eq!(store.ids(), ["created-1"]);
        assert_eq!(*store.creates.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn replay_without_state_spares_a_resend() {
        // Two sends with one Message-ID: the first was replaced, the crash lost the state.
        let store = MemoryStore::with_original("first", "<r@lab>", "2026-12-01T10:00:00Z", 100);
        store.add_original("resend", "<r@lab>", "2026-12-01T11:30:00Z", 100);
        let message = message("Message-ID: <r@lab>\r\n");
        *store.fail_next_delete.lock().unwrap() = true;
        let _ = run(&store, &message, &mut new_state(), false).await;

        let replay = run(&store, &message, &mut new_state(), false)
            .await
            .expect("replays");

        assert_eq!(replay, ReplaceOutcome::AlreadyReplaced { cleaned_up: 1 });
        assert_eq!(store.ids(), ["resend", "created-1"]);
    }

    #[tokio::test]
    async fn replay_spares_a_resend_of_the_same_second() {
        let store = MemoryStore::with_original("first", "<t@lab>", "2026-12-01T10:00:00Z", 100);
        let message = message("Message-ID: <t@lab>\r\n");
        run(&store, &message, &mut new_state(), false)
            .await
            .expect("runs");
        store.add_original("resend", "<t@lab>", "2026-12-01T10:00:00Z", 100);

        let replay = run(&store, &message, &mut new_state(), false)
            .await
            .expect("replays");

        assert_eq!(replay, ReplaceOutcome::AlreadyReplaced { cleaned_up: 0 });
        assert_eq!(store.ids(), ["created-1", "resend"]);
    }

    #[tokio::test]
    async fn several_originals_pick_the_closest_send_time() {
        let store = MemoryStore::with_original("old", "<s@lab>", "2026-11-30T08:00:00Z", 100);
        store.add_original("match", "<s@lab>", "2026-12-01T10:00:02Z", 100);
        let message = message("Message-ID: <s@lab>\r\n");
        let mut state = new_state();

        let outcome = run(&store, &message, &mut state, false)
            .await
            .expect("runs");

        assert_eq!(outcome, ReplaceOutcome::Replaced);
        assert_eq!(state.original_item.as_deref(), Some("match"));
        assert_eq!(store.ids(), ["old", "created-1"]);
    }

    #[tokio::test]
    async fn split_copies_all_saved_once() {
        let store = MemoryStore::with_original("orig", "<split@lab>", "2026-12-01T10:00:00Z", 100);
        let copies: Vec<SpoolMessage> = (1..=3)
            .map(|index| {
                message(&format!(
                    "X-SIU-Original-Message-ID: <split@lab>\r\nX-SIU-Split: {index}/3\r\nMessage-ID: <copy{index}@lab>\r\n"
                ))
            })
            .collect();

        let mut outcomes = Vec::new();
        for copy in &copies {
            outcomes.push(
                run(&store, copy, &mut new_state(), false)
                    .await
                    .expect("runs"),
            );
        }
        let replays: Vec<ReplaceOutcome> = {
            let mut replays = Vec::new();
            for copy in &copies {
                replays.push(
                    run(&store, copy, &mut new_state(), false)
                        .await
                        .expect("replays"),
                );
            }
            replays
        };

        assert_eq!(outcomes, vec![ReplaceOutcome::Replaced; 3]);
        assert_eq!(
            replays,
            vec![ReplaceOutcome::AlreadyReplaced { cleaned_up: 0 }; 3]
        );
        assert_eq!(store.ids(), ["created-1", "created-2", "created-3"]);
        for item in store.marked() {
            assert_eq!(
                item.sent,
                Some("2026-12-01T10:00:00Z".parse().expect("time")),
                "{}",
                item.id
            );
        }
    }

    #[tokio::test]
    async fn duplicate_replacements_are_reduced_to_one() {
        let store = MemoryStore::default();
        for id in ["dup-b", "dup-a"] {
            store.items.lock().unwrap().push(FoundItem {
                id: id.to_owned(),
                internet_message_id: Some("<d@lab>".into()),
                sent: None,
                delivered: None,
                size: None,
                source_key: Some("<d@lab>".into()),
                marked_original: Some("<d@lab>".into()),
                replaced_item: None,
            });
        }
        let message = message("Message-ID: <d@lab>\r\n");

        let outcome = run(&store, &message, &mut new_state(), false)
            .await
            .expect("runs");

        assert_eq!(outcome, ReplaceOutcome::AlreadyReplaced { cleaned_up: 1 });
        assert_eq!(store.ids(), ["dup-a"]);
    }
}
