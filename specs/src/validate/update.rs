//! Validation of `scope`, `options`, `reconcile` and `updateLoop`.

use std::collections::HashMap;
use std::time::Duration;

use super::{Validator, values};
use crate::desired::{GroupRef, Scope, UpdateLoop, UpdateOptions};
use crate::source_map::join_index;
use crate::spec::{
    OptionsSpec, ReconcileSpec, ScopeMode, ScopeSpec, SendAsMailbox, UpdateLoopSpec,
};

const DELAY_DEFAULT: Duration = Duration::from_secs(5);
const DELAY_MAX: Duration = Duration::from_secs(3600);
const ORIGINAL_WAIT_DEFAULT: Duration = Duration::from_secs(15 * 60);
const ORIGINAL_WAIT_MIN: Duration = Duration::from_secs(1);
const ORIGINAL_WAIT_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
const RECONCILE_DEFAULT: Duration = Duration::from_secs(10 * 60);
const RECONCILE_MIN: Duration = Duration::from_secs(30);
const RECONCILE_MAX: Duration = Duration::from_secs(24 * 3600);

const CONCURRENCY_DEFAULT: i64 = 8;
const CONCURRENCY_MAX: i64 = 256;
const PER_MAILBOX_CONCURRENCY_DEFAULT: i64 = 1;
const PER_MAILBOX_CONCURRENCY_MAX: i64 = 16;

impl Validator<'_> {
    pub(super) fn scope(&mut self, scope: Option<&ScopeSpec>) -> Option<Scope> {
        let default = ScopeSpec::default();
        let scope = scope.unwrap_or(&default);
        let mode = scope.mode.unwrap_or(ScopeMode::All);

        if mode == ScopeMode::All {
            let mut valid = true;
            for (field, listed) in [
                ("users", !scope.users.is_empty()),
                ("groups", !scope.groups.is_empty()),
            ] {
                if listed {
                    self.error_at_key(
                        &format!("scope.{field}"),
                        format!("`scope.{field}` applies only to `mode: only` or `mode: allExcept`; `mode: all` updates every mailbox"),
                    )
                    .help = Some(format!("set `mode: only` or `mode: allExcept`, or remove `{field}`"));
                    valid = false;
                }
            }
            return valid.then(|| Scope {
                mode,
                users: Vec::new(),
                groups: Vec::new(),
            });
        }

        if scope.users.is_empty() && scope.groups.is_empty() {
            let mode_name = if mode == ScopeMode::Only {
                "only"
            } else {
                "allExcept"
            };
            self.error("scope.mode", format!("`mode: {mode_name}` needs at least one entry in `scope.users` or `scope.groups`"))
                .help = Some("list users such as `alice@contoso.com` or groups such as `sales@contoso.com`, or set `mode: all`".to_owned());
            return None;
        }

        let users = self.scope_users(&scope.users);
        let groups = self.scope_groups(&scope.groups);
        Some(Scope {
            mode,
            users: users?,
            groups: groups?,
        })
    }

    fn scope_users(&mut self, users: &[String]) -> Option<Vec<String>> {
        let mut valid = true;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut normalized = Vec::with_capacity(users.len());
        for (index, user) in users.iter().enumerate() {
            let field = join_index("scope.users", index);
            match values::normalize_address(user) {
                Ok(address) => {
                    let address = address.to_lowercase();
                    if let Some(first) = seen.insert(address.clone(), index) {
                        self.error(
                            &field,
                            format!(
                                "`{user}` is listed twice in `scope.users`, first at index {first}"
                            ),
                        )
                        .help = Some("remove one of the entries".to_owned());
                        valid = false;
                    }
                    normalized.push(address);
                }
                Err(message) => {
                    self.error(&field, format!("invalid `{field}`: {message}"))
                        .help = Some(
                        "list users by UPN or SMTP address, for example `alice@contoso.com`"
                            .to_owned(),
                    );
                    valid = false;
                }
            }
        }
        valid.then_some(normalized)
    }

    fn scope_groups(&mut self, groups: &[String]) -> Option<Vec<GroupRef>> {
        let mut valid = true;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut parsed = Vec::with_capacity(groups.len());
        for (index, group) in groups.iter().enumerate() {
            let field = join_index("scope.groups", index);
            let result = if group.contains('=') {
                values::check_dn(group).map(|()| GroupRef::Dn(group.clone()))
            } else if group.contains('@') {
                values::normalize_address(group)
                    .map(|address| GroupRef::Address(address.to_lowercase()))
            } else if group.trim().is_empty() || group.chars().any(crate::diagnostic::is_invisible)
            {
                Err("is empty or contains invisible characters".to_owned())
            } else {
                Ok(GroupRef::Name(group.trim().to_owned()))
            };
            match result {
                Ok(group_ref) => {
                    let key = group.trim().to_lowercase();
                    if let Some(first) = seen.insert(key, index) {
                        self.error(&field, format!("`{group}` is listed twice in `scope.groups`, first at index {first}"))
                            .help = Some("remove one of the entries".to_owned());
                        valid = false;
                    }
                    parsed.push(group_ref);
                }
                Err(message) => {
                    self.error(&field, format!("invalid `{field}`: {message}"))
                        .help =
                        Some("name groups by SMTP address, distinguished name or name".to_owned());
                    valid = false;
                }
            }
        }
        valid.then_some(parsed)
    }

    pub(super) fn options(&mut self, options: Option<&OptionsSpec>) -> Option<UpdateOptions> {
        let default = OptionsSpec::default();
        let options = options.unwrap_or(&default);

        let delay = self.duration(
            "options.delay",
            options.delay.as_ref(),
            DELAY_DEFAULT,
            Duration::ZERO,
            DELAY_MAX,
        );
        let original_wait_timeout = self.duration(
            "options.originalWaitTimeout",
            options.original_wait_timeout.as_ref(),
            ORIGINAL_WAIT_DEFAULT,
            ORIGINAL_WAIT_MIN,
            ORIGINAL_WAIT_MAX,
        );

        Some(UpdateOptions {
            enabled: options.enabled.unwrap_or(true),
            keep_original: options.keep_original.unwrap_or(false),
            update_all_split_copies: options.update_all_split_copies.unwrap_or(false),
            send_as_mailbox: options.send_as_mailbox.unwrap_or(SendAsMailbox::Submitter),
            delay: delay?,
            original_wait_timeout: original_wait_timeout?,
        })
    }

    pub(super) fn reconcile_interval(
        &mut self,
        reconcile: Option<&ReconcileSpec>,
    ) -> Option<Duration> {
        self.duration(
            "reconcile.interval",
            reconcile.and_then(|reconcile| reconcile.interval.as_ref()),
            RECONCILE_DEFAULT,
            RECONCILE_MIN,
            RECONCILE_MAX,
        )
    }

    pub(super) fn update_loop(&mut self, update_loop: &UpdateLoopSpec) -> Option<UpdateLoop> {
        let spool_dir = self.path("updateLoop.spoolDir", &update_loop.spool_dir);
        let state_dir = self.path("updateLoop.stateDir", &update_loop.state_dir);
        if let (Some(spool_dir), Some(state_dir)) = (&spool_dir, &state_dir)
            && spool_dir == state_dir
        {
            self.error("updateLoop.stateDir", "`updateLoop.stateDir` is the same directory as `updateLoop.spoolDir`")
                    .help = Some("keep siuctl's state apart from the incoming messages, for example `/var/lib/siuctl` and `/var/spool/siuctl`".to_owned());
            return None;
        }

        let concurrency = self.count(
            "updateLoop.concurrency",
            update_loop.concurrency,
            CONCURRENCY_DEFAULT,
            CONCURRENCY_MAX,
        );
        let per_mailbox_concurrency = self.count(
            "updateLoop.perMailboxConcurrency",
            update_loop.per_mailbox_concurrency,
            PER_MAILBOX_CONCURRENCY_DEFAULT,
            PER_MAILBOX_CONCURRENCY_MAX,
        );
        if let (Some(total), Some(per_mailbox)) = (concurrency, per_mailbox_concurrency)
            && per_mailbox > total
        {
            self.error(
                    "updateLoop.perMailboxConcurrency",
                    format!("`updateLoop.perMailboxConcurrency` ({per_mailbox}) is larger than `updateLoop.concurrency` ({total})"),
                )
                .help = Some("lower `perMailboxConcurrency` or raise `concurrency`".to_owned());
            return None;
        }

        Some(UpdateLoop {
            spool_dir: spool_dir?,
            state_dir: state_dir?,
            concurrency: concurrency?,
            per_mailbox_concurrency: per_mailbox_concurrency?,
        })
    }

    /// Checks a count against 1..=`max`.
    fn count(&mut self, field: &str, value: Option<i64>, default: i64, max: i64) -> Option<u16> {
        let value = value.unwrap_or(default);
        if !(1..=max).contains(&value) {
            self.error(
                field,
                format!("`{field}` is {value}, outside the allowed range 1 to {max}"),
            );
            return None;
        }
        u16::try_from(value).ok()
    }
}
