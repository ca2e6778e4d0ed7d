//! The update loop's settings as comparable view lines.
//!
//! `plan` compares the lines of the spec with the lines of `applied.json`. The settings
//! resource therefore changes exactly when something the update loop works with has
//! changed: the scope, the options, the directories, the endpoints or the credentials it
//! signs in with. Paths of the spec file itself, and the directory its shell commands run in, are
//! left out, so that an exported copy of a spec plans no change.

use siu_specs::DesiredState;
use siu_specs::desired::{
    AppRegistrationMode, ClientCredential, ExchangeAuth, GeneratedCredential, GroupRef, MailAccess,
    ScopeMode, SendAsMailbox,
};
use url::Url;

use super::view::Value;

/// Builds the settings lines of `desired`, with the EWS URL that was discovered for it and
/// the application's client ID when it is known.
pub fn settings_lines(
    desired: &DesiredState,
    ews_url: Option<&Url>,
    client_id: Option<&str>,
) -> Vec<(String, Value)> {
    let mut lines = Vec::new();
    let mut line = |key: &str, value: Value| lines.push((format!("settings.{key}"), value));

    line("account.upn", Value::of(&desired.account.upn));
    line(
        "exchange.auth",
        Value::of(match desired.exchange.auth {
            ExchangeAuth::Ntlm => "ntlm",
            ExchangeAuth::Basic => "basic",
        }),
    );
    line(
        "exchange.ewsUrl",
        match ews_url {
            Some(url) => Value::of(url),
            None => Value::Unknown("not discovered".to_owned()),
        },
    );

    let scope = &desired.scope;
    line(
        "scope.mode",
        Value::of(match scope.mode {
            ScopeMode::All => "all",
            ScopeMode::Only => "only",
            ScopeMode::AllExcept => "allExcept",
        }),
    );
    line("scope.users", list(scope.users.iter().map(String::as_str)));
    let groups: Vec<String> = scope.groups.iter().map(group_name).collect();
    line("scope.groups", list(groups.iter().map(String::as_str)));

    let options = &desired.options;
    line("options.enabled", Value::flag(options.enabled));
    line("options.keepOriginal", Value::flag(options.keep_original));
    line(
        "options.updateAllSplitCopies",
        Value::flag(options.update_all_split_copies),
    );
    line(
        "options.sendAsMailbox",
        Value::of(match options.send_as_mailbox {
            SendAsMailbox::Submitter => "submitter",
            SendAsMailbox::From => "from",
        }),
    );
    line("options.delay", duration(options.delay));
    line(
        "options.originalWaitTimeout",
        duration(options.original_wait_timeout),
    );
    line("reconcile.interval", duration(desired.reconcile_interval));

    let update_loop = &desired.update_loop;
    line(
        "updateLoop.spoolDir",
        Value::of(update_loop.spool_dir.display()),
    );
    line(
        "updateLoop.stateDir",
        Value::of(update_loop.state_dir.display()),
    );
    line("updateLoop.concurrency", Value::of(update_loop.concurrency));
    line(
        "updateLoop.perMailboxConcurrency",
        Value::of(update_loop.per_mailbox_concurrency),
    );

    if let Some(registration) = &desired.app_registration {
        line("cloud.tenantId", Value::of(registration.tenant_id));
        line(
            "cloud.clientId",
            match client_id {
                Some(id) => Value::of(id.to_ascii_lowercase()),
                None => Value::of("(registered by apply)"),
            },
        );
        line(
            "cloud.mailAccess",
            Value::of(match registration.mail_access {
                MailAccess::Ews => "ews",
                MailAccess::Graph => "graph",
                MailAccess::Auto => "auto",
            }),
        );
        let credential = match &registration.mode {
            AppRegistrationMode::Automatic { credential, .. } => match credential {
                GeneratedCredential::Certificate { key_file } => {
                    format!("certificate in {}", key_file.display())
                }
                GeneratedCredential::ClientSecret { secret_file } => {
                    format!("client secret in {}", secret_file.display())
                }
            },
            AppRegistrationMode::Manual { credential, .. } => match credential {
                ClientCredential::Certificate {
                    thumbprint,
                    key_file,
                } => format!("certificate {thumbprint} in {}", key_file.display()),
                ClientCredential::ClientSecret(reference) => {
                    format!("client secret in {reference}")
                }
            },
        };
        line("cloud.credential", Value::of(credential));
        line("cloud.graph", Value::of(&registration.endpoints.graph));
        line(
            "cloud.exchangeOnlineEws",
            Value::of(&registration.endpoints.exchange_online_ews),
        );
    }
    lines
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        Value::of("(none)")
    } else {
        Value::of(items.join(", "))
    }
}

fn duration(duration: std::time::Duration) -> Value {
    Value::of(humantime::format_duration(duration))
}

/// Returns the group as the spec names it.
pub fn group_name(group: &GroupRef) -> String {
    match group {
        GroupRef::Address(value) | GroupRef::Dn(value) | GroupRef::Name(value) => value.clone(),
    }
}
