//! Validation of `onPremises.exchange`, `onPremises.directory` and `account`.

use url::Url;

use super::{Validator, values};
use crate::desired::{
    Account, AccountProvisioning, Directory, DirectoryTransport, Exchange, ExchangeConnection, Host,
};
use crate::secret::{SecretRef, SecretSpec};
use crate::spec::{
    AccountSpec, ConnectionMode, DirectorySpec, ExchangeAuth, ExchangeSpec, Impersonation,
};

impl Validator<'_> {
    pub(super) fn exchange(
        &mut self,
        exchange: &ExchangeSpec,
        account: &AccountSpec,
    ) -> Option<Exchange> {
        const BASE: &str = "onPremises.exchange";
        let allow_http = exchange.allow_insecure_http.unwrap_or(false);

        let connection = match exchange.connection {
            ConnectionMode::Manual => self.manual_connection(exchange, allow_http),
            ConnectionMode::Autodiscover => self.autodiscover_connection(exchange, account),
        };
        let ca_file = self.optional_path(&format!("{BASE}.caFile"), exchange.ca_file.as_ref());
        let management_shell = self.shell(
            &format!("{BASE}.managementShell"),
            &exchange.management_shell,
        );

        Some(Exchange {
            connection: connection?,
            auth: exchange.auth.unwrap_or(ExchangeAuth::Ntlm),
            ca_file: ca_file?,
            management_shell: management_shell?,
        })
    }

    fn manual_connection(
        &mut self,
        exchange: &ExchangeSpec,
        allow_http: bool,
    ) -> Option<ExchangeConnection> {
        if exchange.autodiscover_address.is_some() {
            self.error_at_key(
                "onPremises.exchange.autodiscoverAddress",
                "`autodiscoverAddress` applies only to `connection: autodiscover`",
            )
            .help =
                Some("remove `autodiscoverAddress`, or set `connection: autodiscover`".to_owned());
        }

        let Some(server_text) = &exchange.server else {
            self.error(
                "onPremises.exchange.connection",
                "`connection: manual` requires `onPremises.exchange.server`",
            )
            .help = Some(
                "add `server: mail.contoso.com` with the name of the server that serves EWS"
                    .to_owned(),
            );
            return None;
        };
        let server = match values::parse_host(server_text) {
            Ok(server) => server,
            Err(message) => {
                self.error(
                    "onPremises.exchange.server",
                    format!("invalid `onPremises.exchange.server`: {message}"),
                );
                return None;
            }
        };

        let ews_url = match &exchange.ews_url {
            Some(text) => self.https_url(
                "onPremises.exchange.ewsUrl",
                text,
                allow_http,
                "use https, or set `allowInsecureHttp: true` in a lab",
            )?,
            None => derived_ews_url(&server)?,
        };
        Some(ExchangeConnection::Manual { server, ews_url })
    }

    fn autodiscover_connection(
        &mut self,
        exchange: &ExchangeSpec,
        account: &AccountSpec,
    ) -> Option<ExchangeConnection> {
        let mut valid = true;
        for (field, present) in [
            ("server", exchange.server.is_some()),
            ("ewsUrl", exchange.ews_url.is_some()),
        ] {
            if present {
                self.error_at_key(
                    &format!("onPremises.exchange.{field}"),
                    format!("`{field}` applies only to `connection: manual`; Autodiscover finds the EWS URL"),
                )
                .help = Some(format!("remove `{field}`, or set `connection: manual`"));
                valid = false;
            }
        }

        let address = match &exchange.autodiscover_address {
            Some(text) => match values::normalize_address(text) {
                Ok(address) => Some(address),
                Err(message) => {
                    const FIELD: &str = "onPremises.exchange.autodiscoverAddress";
                    self.error(FIELD, format!("invalid `{FIELD}`: {message}"));
                    None
                }
            },
            // An invalid UPN is reported once, under `account.upn`.
            None => values::normalize_address(&account.upn).ok(),
        };
        if !valid {
            return None;
        }
        Some(ExchangeConnection::Autodiscover { address: address? })
    }

    pub(super) fn directory(&mut self, directory: &DirectorySpec) -> Option<Directory> {
        const BASE: &str = "onPremises.directory";

        let url_and_transport = self.directory_url(directory);
        let base_dn = match values::check_dn(&directory.base_dn) {
            Ok(()) => Some(directory.base_dn.clone()),
            Err(message) => {
                self.error(
                    &format!("{BASE}.baseDn"),
                    format!("invalid `{BASE}.baseDn`: {message}"),
                );
                None
            }
        };
        let bind_user_field = format!("{BASE}.bindUser");
        let bind_user = match values::parse_bind_user(&directory.bind_user) {
            // `DOMAIN\user:password` or `user@domain:password` puts a password in a field
            // that messages show, so the value is masked. A distinguished name may contain
            // `:` in a value and is checked as a DN.
            _ if !directory.bind_user.contains('=') && directory.bind_user.contains(':') => {
                self.error_hiding_value(
                    &bind_user_field,
                    format!("invalid `{bind_user_field}`: contains `:`, which a user name cannot contain"),
                )
                .help = Some("give the user name alone; if the text after `:` is a password, reference it in `bindPassword` instead".to_owned());
                None
            }
            Ok(user) => Some(user),
            Err(message) => {
                self.error(
                    &format!("{BASE}.bindUser"),
                    format!("invalid `{BASE}.bindUser`: {message}"),
                );
                None
            }
        };
        let bind_password = self.secret(&format!("{BASE}.bindPassword"), &directory.bind_password);
        let ca_file = self.optional_path(&format!("{BASE}.caFile"), directory.ca_file.as_ref());

        let (url, transport) = url_and_transport?;
        Some(Directory {
            url,
            transport,
            base_dn: base_dn?,
            bind_user: bind_user?,
            bind_password: bind_password?,
            ca_file: ca_file?,
        })
    }

    /// Parses the LDAP URL and works out how the connection is protected.
    fn directory_url(&mut self, directory: &DirectorySpec) -> Option<(Url, DirectoryTransport)> {
        const FIELD: &str = "onPremises.directory.url";
        let start_tls = directory.start_tls.unwrap_or(false);
        let allow_plaintext = directory.allow_plaintext.unwrap_or(false);

        let has_userinfo = values::userinfo_range(&directory.url).is_some();
        // The URL parser drops tabs and line breaks, so a URL split across lines would
        // silently become another URL.
        if directory.url.contains(char::is_control) {
            self.error(
                FIELD,
                format!(
                    "invalid `{FIELD}`: `{}` contains a control character such as a tab or line break",
                    values::redact_userinfo(&directory.url)
                ),
            )
            .help = Some("write the URL on one line, without tabs".to_owned());
            return None;
        }
        let url = match Url::parse(&directory.url) {
            Ok(url) => url,
            Err(error) => {
                let message = format!(
                    "invalid `{FIELD}`: `{}` is not a URL ({error})",
                    values::redact_userinfo(&directory.url)
                );
                let problem = if has_userinfo {
                    self.error_hiding_value(FIELD, message)
                } else {
                    self.error(FIELD, message)
                };
                problem.help = Some("write it like `ldaps://dc1.contoso.com`".to_owned());
                return None;
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            self.error_hiding_value(FIELD, format!("`{FIELD}` contains a user name or password"))
                .help = Some(
                "remove them from the URL; siuctl binds as `bindUser` with `bindPassword`"
                    .to_owned(),
            );
            return None;
        }
        if url.host().is_none() {
            self.error(FIELD, format!("`{FIELD}` has no host"));
            return None;
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            self.error(FIELD, format!("`{FIELD}` has a path or query"))
                .help = Some(
                "give only the scheme, host and port; the search base goes in `baseDn`".to_owned(),
            );
            return None;
        }

        let transport = match (url.scheme(), start_tls, allow_plaintext) {
            ("ldaps", false, _) => DirectoryTransport::Ldaps,
            ("ldaps", true, _) => {
                self.error(
                    "onPremises.directory.startTls",
                    "`startTls: true` applies only to an `ldap://` URL; `ldaps://` is already encrypted",
                )
                .help = Some("remove `startTls`, or use an `ldap://` URL".to_owned());
                return None;
            }
            ("ldap", true, _) => DirectoryTransport::StartTls,
            ("ldap", false, true) => DirectoryTransport::Plaintext,
            ("ldap", false, false) => {
                self.error(FIELD, format!("`{FIELD}` is unencrypted `ldap://`, which sends the bind password in the clear"))
                    .help = Some("use `ldaps://`, or set `startTls: true`; in a lab only, `allowPlaintext: true` accepts it".to_owned());
                return None;
            }
            (scheme, ..) => {
                self.error(
                    FIELD,
                    format!("`{FIELD}` has scheme `{scheme}`; expected `ldaps` or `ldap`"),
                );
                return None;
            }
        };
        Some((url, transport))
    }

    pub(super) fn account(
        &mut self,
        account: &AccountSpec,
        directory_spec: &DirectorySpec,
        directory: Option<&Directory>,
    ) -> Option<Account> {
        let upn = match values::normalize_address(&account.upn) {
            Ok(_) => Some(account.upn.clone()),
            Err(message) => {
                self.error("account.upn", format!("invalid `account.upn`: {message}"))
                    .help = Some(
                    "give the user principal name, for example `svc-siu@contoso.com`".to_owned(),
                );
                None
            }
        };
        let provisioning = if account.create.unwrap_or(false) {
            self.created_account(account, directory_spec, directory)
        } else {
            self.existing_account(account)
        };
        let management_scope = match &account.management_scope {
            Some(scope) if scope.trim().is_empty() => {
                self.error(
                    "account.managementScope",
                    "`account.managementScope` is empty",
                )
                .help = Some(
                    "give the name of an existing management scope, or remove the field".to_owned(),
                );
                None
            }
            scope => Some(scope.clone()),
        };

        Some(Account {
            upn: upn?,
            provisioning: provisioning?,
            impersonation: account.impersonation.unwrap_or(Impersonation::Grant),
            management_scope: management_scope?,
        })
    }

    fn existing_account(&mut self, account: &AccountSpec) -> Option<AccountProvisioning> {
        if account.container.is_some() {
            self.error_at_key(
                "account.container",
                "`account.container` applies only to `create: true`",
            )
            .help = Some("remove `container`; an existing account stays where it is".to_owned());
        }
        let password = self.secret("account.password", &account.password)?;
        if account.container.is_some() {
            return None;
        }
        Some(AccountProvisioning::Existing { password })
    }

    fn created_account(
        &mut self,
        account: &AccountSpec,
        directory_spec: &DirectorySpec,
        directory: Option<&Directory>,
    ) -> Option<AccountProvisioning> {
        let mut valid = true;

        if let Some(directory) = directory
            && !directory.transport.is_encrypted()
        {
            self.error(
                    "account.create",
                    "`create: true` needs an encrypted directory connection; Active Directory sets passwords only over LDAPS or StartTLS",
                )
                .help = Some("use an `ldaps://` URL or `startTls: true` in `onPremises.directory`".to_owned());
            valid = false;
        }

        let password_file = match &account.password {
            SecretSpec::Reference(SecretRef::FromFile(_)) => {
                match self.secret("account.password", &account.password) {
                    Some(SecretRef::FromFile(path)) => Some(path),
                    _ => None,
                }
            }
            SecretSpec::Reference(SecretRef::FromEnv(_)) => {
                self.error(
                    "account.password",
                    "`create: true` requires `account.password.fromFile`, because siuctl writes the generated password there",
                )
                .help = Some("write `password: { fromFile: secrets/svc-siu.password }`".to_owned());
                None
            }
            SecretSpec::Inline => {
                self.secret("account.password", &account.password);
                None
            }
        };

        let container = match &account.container {
            Some(container) => match values::check_dn(container) {
                Err(message) => {
                    self.error(
                        "account.container",
                        format!("invalid `account.container`: {message}"),
                    );
                    None
                }
                Ok(())
                    if !values::dn_is_below(container, &directory_spec.base_dn)
                        && values::check_dn(&directory_spec.base_dn).is_ok() =>
                {
                    self.error(
                        "account.container",
                        format!(
                            "`account.container` is not inside `onPremises.directory.baseDn` ({})",
                            directory_spec.base_dn
                        ),
                    )
                    .help = Some("choose a container below the base DN, for example `OU=Service Accounts,<baseDn>`".to_owned());
                    None
                }
                Ok(()) => Some(container.clone()),
            },
            None => Some(format!("CN=Users,{}", directory_spec.base_dn)),
        };

        if !valid {
            return None;
        }
        Some(AccountProvisioning::Create {
            password_file: password_file?,
            container: container?,
        })
    }
}

/// Builds the default EWS URL `https://SERVER/EWS/Exchange.asmx`.
fn derived_ews_url(server: &Host) -> Option<Url> {
    let host = match server {
        Host::Name(name) => name.clone(),
        Host::Ip(std::net::IpAddr::V6(address)) => format!("[{address}]"),
        Host::Ip(address) => address.to_string(),
    };
    Url::parse(&format!("https://{host}/EWS/Exchange.asmx")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ews_url_brackets_ipv6() {
        let url = derived_ews_url(&Host::Ip("2001:db8::1".parse().unwrap())).unwrap();

        assert_eq!(url.as_str(), "https://[2001:db8::1]/EWS/Exchange.asmx");
    }

    #[test]
    fn derived_ews_url_uses_server_name() {
        let url = derived_ews_url(&Host::Name("mail.contoso.com".to_owned())).unwrap();

        assert_eq!(url.as_str(), "https://mail.contoso.com/EWS/Exchange.asmx");
    }
}
