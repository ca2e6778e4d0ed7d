//! Semantic validation: from a parsed [`Spec`] to a [`DesiredState`].
//!
//! Validation checks every rule and collects every problem before it returns, so one run
//! of `siuctl validate` lists everything to fix. Each problem points at the value that
//! breaks the rule, or at the key or block where a required value is missing. The
//! sections live in their own modules. This one contains the shared [`Validator`] and
//! the checks used by several sections: paths, secrets, URLs and commands. Validation
//! does not read the files that the spec names, because they may exist only on the host
//! that runs siuctl.

mod app_registration;
mod on_premises;
mod update;
pub(crate) mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::desired::{DesiredState, ShellCommand};
use crate::diagnostic::{Problem, Span};
use crate::secret::{SecretRef, SecretSpec};
use crate::source_map::{SourceMap, join_index, join_key};
use crate::spec::{Environment, ShellSpec, Spec};

/// Default and range of a command's `timeout`.
const SHELL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(120);
const SHELL_TIMEOUT_MIN: Duration = Duration::from_secs(1);
const SHELL_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// Checks `spec` and builds its desired state, or returns every problem found.
///
/// `spec_path` is the absolute path of the spec file; relative paths in the spec are
/// resolved against its directory.
pub(crate) fn validate(
    spec: &Spec,
    map: &SourceMap,
    spec_path: &Path,
) -> Result<DesiredState, Vec<Problem>> {
    let spec_dir = spec_path.parent().unwrap_or(Path::new("/"));
    let mut validator = Validator {
        map,
        spec_dir,
        problems: Vec::new(),
    };

    if let Err(message) = values::check_name(&spec.metadata.name) {
        validator.error(
            "metadata.name",
            format!("invalid `metadata.name`: {message}"),
        );
    }
    validator.check_environment(spec);

    let directory = validator.directory(&spec.on_premises.directory);
    let account = validator.account(
        &spec.account,
        &spec.on_premises.directory,
        directory.as_ref(),
    );
    let exchange = validator.exchange(&spec.on_premises.exchange, &spec.account);
    let app_registration = match (&spec.app_registration, spec.environment) {
        (Some(registration), Environment::Hybrid) => {
            validator.app_registration(registration, &spec.metadata.name)
        }
        _ => None,
    };
    let scope = validator.scope(spec.scope.as_ref());
    let options = validator.options(spec.options.as_ref());
    let reconcile_interval = validator.reconcile_interval(spec.reconcile.as_ref());
    let update_loop = validator.update_loop(&spec.update_loop);

    let mut problems = validator.problems;
    if !problems.is_empty() {
        problems.sort_by_key(|problem| {
            problem.span.map_or((usize::MAX, usize::MAX), |span| {
                (span.start.line, span.start.column)
            })
        });
        return Err(problems);
    }

    // Every section returned a value, because a section that returns `None` records at
    // least one problem.
    let missing = || {
        vec![Problem::new(
            None,
            "internal error: a section failed without a problem",
        )]
    };
    Ok(DesiredState {
        spec_path: spec_path.to_path_buf(),
        name: spec.metadata.name.clone(),
        environment: spec.environment,
        exchange: exchange.ok_or_else(missing)?,
        directory: directory.ok_or_else(missing)?,
        account: account.ok_or_else(missing)?,
        app_registration,
        scope: scope.ok_or_else(missing)?,
        options: options.ok_or_else(missing)?,
        reconcile_interval: reconcile_interval.ok_or_else(missing)?,
        update_loop: update_loop.ok_or_else(missing)?,
    })
}

/// Collects problems while the sections are checked.
pub(crate) struct Validator<'a> {
    map: &'a SourceMap,
    spec_dir: &'a Path,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    /// Records a problem with the value at `path`.
    fn error(&mut self, path: &str, message: impl Into<String>) -> &mut Problem {
        self.push(self.map.value_span(path), path, message)
    }

    /// Records a problem with the key at `path`, for fields that must not be there.
    fn error_at_key(&mut self, path: &str, message: impl Into<String>) -> &mut Problem {
        self.push(self.map.key_span(path), path, message)
    }

    /// Records a problem with the value at `path` whose snippets mask that value, because
    /// it may contain a secret.
    fn error_hiding_value(&mut self, path: &str, message: impl Into<String>) -> &mut Problem {
        let span = self.map.value_span(path);
        let problem = self.push(span, path, message);
        if let Some(span) = span {
            problem.hidden.push(span.start.byte..span.end.byte);
        }
        problem
    }

    fn push(&mut self, span: Option<Span>, path: &str, message: impl Into<String>) -> &mut Problem {
        self.problems
            .push(Problem::new(span, message).with_field(path));
        self.problems.last_mut().expect("a problem was just pushed")
    }

    /// Checks the rules that tie `environment` to `appRegistration`.
    fn check_environment(&mut self, spec: &Spec) {
        match (spec.environment, &spec.app_registration) {
            (Environment::Hybrid, None) => {
                self.error("environment", "environment `hybrid` requires `appRegistration`")
                    .help = Some(
                    "add an `appRegistration` block for Exchange Online, or set `environment: onPremises`"
                        .to_owned(),
                );
            }
            (Environment::OnPremises, Some(_)) => {
                self.error_at_key(
                    "appRegistration",
                    "`appRegistration` applies only to `environment: hybrid`",
                )
                .help = Some(
                    "remove the `appRegistration` block, or set `environment: hybrid`".to_owned(),
                );
            }
            _ => {}
        }
    }

    /// Resolves a path from the spec against the spec file's directory.
    fn path(&mut self, field: &str, path: &Path) -> Option<PathBuf> {
        if let Err(message) = values::check_path(path) {
            self.error(field, format!("invalid `{field}`: {message}"));
            return None;
        }
        Some(self.spec_dir.join(path))
    }

    /// Resolves an optional path from the spec.
    fn optional_path(&mut self, field: &str, path: Option<&PathBuf>) -> Option<Option<PathBuf>> {
        match path {
            None => Some(None),
            Some(path) => self.path(field, path).map(Some),
        }
    }

    /// Checks a secret field and resolves a `fromFile` path. An inline secret is rejected
    /// with help that shows both reference forms for this field.
    fn secret(&mut self, field: &str, secret: &SecretSpec) -> Option<SecretRef> {
        match secret {
            SecretSpec::Inline => {
                let name = field.rsplit('.').next().unwrap_or(field);
                let (env, file) = secret_examples(field);
                self.error(
                    field,
                    format!("`{field}` contains a secret written inline; a spec may only reference secrets"),
                )
                .help = Some(format!(
                    "keep the secret out of the spec and reference it, with one of:\n  {name}: {{ fromEnv: {env} }}\n  {name}: {{ fromFile: {file} }}"
                ));
                None
            }
            SecretSpec::Reference(SecretRef::FromEnv(variable)) => {
                let path = join_key(field, "fromEnv");
                if let Err(message) = values::check_env_name(variable) {
                    let (example, _) = secret_examples(field);
                    self.error_hiding_value(
                        &path,
                        format!("invalid `{path}`: {message}, for example `{example}`"),
                    )
                    .help = Some(
                        "`fromEnv` takes the name of the environment variable that contains the secret; the value is not shown because it may be the secret itself"
                            .to_owned(),
                    );
                    return None;
                }
                Some(SecretRef::FromEnv(variable.clone()))
            }
            SecretSpec::Reference(SecretRef::FromFile(file)) => {
                let path = join_key(field, "fromFile");
                self.path(&path, file).map(SecretRef::FromFile)
            }
        }
    }

    /// Parses a URL field and checks its scheme. `http` passes only with
    /// `allow_http`; the caller names the setting that allows it in `http_help`.
    fn https_url(
        &mut self,
        field: &str,
        text: &str,
        allow_http: bool,
        http_help: &str,
    ) -> Option<Url> {
        let has_userinfo = values::userinfo_range(text).is_some();
        // The URL parser drops tabs and line breaks, so a URL split across lines would
        // silently become another URL.
        if text.contains(char::is_control) {
            self.error(
                field,
                format!(
                    "invalid `{field}`: `{}` contains a control character such as a tab or line break",
                    values::redact_userinfo(text)
                ),
            )
            .help = Some("write the URL on one line, without tabs".to_owned());
            return None;
        }
        let url = match Url::parse(text) {
            Ok(url) => url,
            Err(error) => {
                let message = format!(
                    "invalid `{field}`: `{}` is not a URL ({error})",
                    values::redact_userinfo(text)
                );
                let problem = if has_userinfo {
                    self.error_hiding_value(field, message)
                } else {
                    self.error(field, message)
                };
                problem.help = Some(
                    "write a full URL such as `https://mail.contoso.com/EWS/Exchange.asmx`"
                        .to_owned(),
                );
                return None;
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            self.error_hiding_value(field, format!("`{field}` contains a user name or password"))
                .help = Some(
                "remove the credentials from the URL; siuctl signs in with the configured account"
                    .to_owned(),
            );
            return None;
        }
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => {
                self.error(
                    field,
                    format!("`{field}` uses http, which sends credentials unencrypted"),
                )
                .help = Some(http_help.to_owned());
                return None;
            }
            scheme => {
                self.error(
                    field,
                    format!("`{field}` has scheme `{scheme}`; expected https"),
                );
                return None;
            }
        }
        // The URL parser reads `https:///EWS` as the host `ews`.
        if url.host().is_none() || text.contains(":///") {
            self.error(field, format!("`{field}` has no host"));
            return None;
        }
        if url.port() == Some(0) {
            self.error(field, format!("`{field}` has port 0")).help =
                Some("remove the port to use 443, or give the port that serves it".to_owned());
            return None;
        }
        Some(url)
    }

    /// Parses an optional duration field and checks its range.
    fn duration(
        &mut self,
        field: &str,
        text: Option<&String>,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        match values::parse_duration(text, min, max) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(field, format!("invalid `{field}`: {message}"));
                None
            }
        }
    }

    /// Checks a command and resolves its program against the spec file's directory when
    /// the program is a path.
    fn shell(&mut self, field: &str, shell: &ShellSpec) -> Option<ShellCommand> {
        let command_path = join_key(field, "command");
        let timeout = self.duration(
            &join_key(field, "timeout"),
            shell.timeout.as_ref(),
            SHELL_TIMEOUT_DEFAULT,
            SHELL_TIMEOUT_MIN,
            SHELL_TIMEOUT_MAX,
        );
        let Some((program, args)) = shell.command.split_first() else {
            self.error(&command_path, format!("`{command_path}` is empty"))
                .help = Some("give the program and its arguments, for example `[pwsh, -NoProfile, -NonInteractive, -File, scripts/exchange-onprem-shell.ps1, -Server, mail.contoso.com]`".to_owned());
            return None;
        };
        let program_path = format!("{command_path}[0]");
        if program.trim().is_empty() {
            self.error(
                &program_path,
                format!("the program in `{command_path}` is empty"),
            );
            return None;
        }
        if program.starts_with('-') {
            self.error(
                &program_path,
                format!("invalid `{program_path}`: the program `{program}` starts with `-`, so it looks like an option"),
            )
            .help = Some("the first item of `command` is the program, such as `pwsh`, and its arguments follow".to_owned());
            return None;
        }
        // The operating system passes arguments as NUL-terminated strings.
        if let Some(index) = shell.command.iter().position(|item| item.contains('\0')) {
            let item_path = join_index(&command_path, index);
            self.error(
                &item_path,
                format!("invalid `{item_path}`: contains a NUL character, which a command line cannot contain"),
            );
            return None;
        }
        let program = if program.contains('/') {
            self.spec_dir.join(program)
        } else {
            PathBuf::from(program)
        };
        Some(ShellCommand {
            program,
            args: args.to_vec(),
            working_dir: self.spec_dir.to_path_buf(),
            timeout: timeout?,
        })
    }
}

/// Returns an example environment variable and file for a secret field, for the help of
/// an inline-secret error.
fn secret_examples(field: &str) -> (&'static str, &'static str) {
    match field {
        "onPremises.directory.bindPassword" => ("AD_BIND_PASSWORD", "secrets/ad-bind.password"),
        "account.password" => ("SIU_ACCOUNT_PASSWORD", "secrets/svc-siu.password"),
        "appRegistration.credential.clientSecret" => {
            ("SIU_APP_CLIENT_SECRET", "secrets/siu-app.secret")
        }
        "appRegistration.provisioner.credential.clientSecret" => {
            ("SIU_PROVISIONER_SECRET", "secrets/provisioner.secret")
        }
        _ => ("SIU_SECRET", "secrets/siu.secret"),
    }
}
