//! Validation of `appRegistration`, the Entra application for Exchange Online.
//!
//! The two modes take different fields. `automatic` registers the application, so the
//! client ID and the certificate thumbprint are discovered or generated and must not be
//! given, a client secret must be a file that siuctl can write, and a `provisioner`
//! identity is required. `manual` describes an existing application, so the client ID and
//! an existing credential are required and `provisioner` and `displayName` are rejected.

use url::Url;

use super::{Validator, values};
use crate::desired::{
    AppRegistration, AppRegistrationMode, ClientCredential, CloudEndpoints, GeneratedCredential,
    Provisioner,
};
use crate::secret::{SecretRef, SecretSpec};
use crate::spec::{
    AppRegistrationSpec, CredentialSpec, EndpointsSpec, MailAccess, ProvisionerSpec,
    RegistrationMode,
};

const BASE: &str = "appRegistration";

/// Default Microsoft 365 endpoints of the worldwide cloud.
const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
const DEFAULT_EXCHANGE_ONLINE_EWS: &str = "https://outlook.office365.com/EWS/Exchange.asmx";

impl Validator<'_> {
    pub(super) fn app_registration(
        &mut self,
        registration: &AppRegistrationSpec,
        name: &str,
    ) -> Option<AppRegistration> {
        let tenant_id = self.guid(&format!("{BASE}.tenantId"), &registration.tenant_id);
        let mode = match registration.mode {
            RegistrationMode::Automatic => self.automatic_registration(registration, name),
            RegistrationMode::Manual => self.manual_registration(registration),
        };
        let exchange_online_shell = match &registration.exchange_online_shell {
            Some(shell) => self
                .shell(&format!("{BASE}.exchangeOnlineShell"), shell)
                .map(Some),
            None => Some(None),
        };
        let endpoints = self.endpoints(registration.endpoints.as_ref());

        Some(AppRegistration {
            tenant_id: tenant_id?,
            mode: mode?,
            mail_access: registration.mail_access.unwrap_or(MailAccess::Auto),
            exchange_online_shell: exchange_online_shell?,
            endpoints: endpoints?,
        })
    }

    fn automatic_registration(
        &mut self,
        registration: &AppRegistrationSpec,
        name: &str,
    ) -> Option<AppRegistrationMode> {
        let mut valid = true;
        if registration.client_id.is_some() {
            self.error_at_key(
                &format!("{BASE}.clientId"),
                "`clientId` is not set with `mode: automatic`; siuctl discovers it after registering the application",
            )
            .help = Some("remove `clientId`, or set `mode: manual` for an application that already exists".to_owned());
            valid = false;
        }

        let display_name = match &registration.display_name {
            Some(display_name) if display_name.trim().is_empty() => {
                self.error(
                    &format!("{BASE}.displayName"),
                    "`appRegistration.displayName` is empty",
                )
                .help = Some(format!("remove it to use the default `siuctl {name}`"));
                None
            }
            Some(display_name) => Some(display_name.clone()),
            None => Some(format!("siuctl {name}")),
        };
        let credential = self.generated_credential(&registration.credential);
        let provisioner = match &registration.provisioner {
            Some(provisioner) => self.provisioner(provisioner),
            None => {
                self.error(
                    &format!("{BASE}.mode"),
                    "`mode: automatic` requires `appRegistration.provisioner`, the identity that registers the application",
                )
                .help = Some("add `provisioner` with the `clientId` and `credential` of an application that has Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All".to_owned());
                None
            }
        };

        if !valid {
            return None;
        }
        Some(AppRegistrationMode::Automatic {
            display_name: display_name?,
            credential: credential?,
            provisioner: provisioner?,
        })
    }

    fn manual_registration(
        &mut self,
        registration: &AppRegistrationSpec,
    ) -> Option<AppRegistrationMode> {
        let mut valid = true;
        for (field, present) in [
            ("displayName", registration.display_name.is_some()),
            ("provisioner", registration.provisioner.is_some()),
        ] {
            if present {
                self.error_at_key(
                    &format!("{BASE}.{field}"),
                    format!("`{field}` applies only to `mode: automatic`"),
                )
                .help = Some(format!(
                    "remove `{field}`; with `mode: manual` the application already exists and is found by `clientId`"
                ));
                valid = false;
            }
        }

        let client_id = match &registration.client_id {
            Some(client_id) => self.guid(&format!("{BASE}.clientId"), client_id),
            None => {
                self.error(
                    &format!("{BASE}.mode"),
                    "`mode: manual` requires `appRegistration.clientId`",
                )
                .help = Some("add the application (client) ID from the application's overview page in the Microsoft Entra admin center".to_owned());
                None
            }
        };
        let credential =
            self.client_credential(&format!("{BASE}.credential"), &registration.credential);

        if !valid {
            return None;
        }
        Some(AppRegistrationMode::Manual {
            client_id: client_id?,
            credential: credential?,
        })
    }

    fn provisioner(&mut self, provisioner: &ProvisionerSpec) -> Option<Provisioner> {
        let base = format!("{BASE}.provisioner");
        let client_id = self.guid(&format!("{base}.clientId"), &provisioner.client_id);
        let credential =
            self.client_credential(&format!("{base}.credential"), &provisioner.credential);
        Some(Provisioner {
            client_id: client_id?,
            credential: credential?,
        })
    }

    /// Checks that a credential block sets exactly one of `certificate` and
    /// `clientSecret`.
    fn credential_kind<'c>(
        &mut self,
        field: &str,
        credential: &'c CredentialSpec,
    ) -> Option<CredentialKind<'c>> {
        match (&credential.certificate, &credential.client_secret) {
            (Some(certificate), None) => Some(CredentialKind::Certificate(certificate)),
            (None, Some(secret)) => Some(CredentialKind::ClientSecret(secret)),
            (Some(_), Some(_)) => {
                self.error(
                    field,
                    format!("`{field}` sets both `certificate` and `clientSecret`"),
                )
                .help = Some("keep exactly one of them".to_owned());
                None
            }
            (None, None) => {
                self.error(field, format!("`{field}` sets neither `certificate` nor `clientSecret`"))
                    .help = Some("add `certificate: { thumbprint: ..., keyFile: ... }` or `clientSecret: { fromEnv: NAME }`".to_owned());
                None
            }
        }
    }

    /// Checks the credential of an existing application: a certificate with its
    /// thumbprint, or a client secret reference.
    fn client_credential(
        &mut self,
        field: &str,
        credential: &CredentialSpec,
    ) -> Option<ClientCredential> {
        match self.credential_kind(field, credential)? {
            CredentialKind::Certificate(certificate) => {
                let certificate_field = format!("{field}.certificate");
                let thumbprint_field = format!("{certificate_field}.thumbprint");
                let thumbprint = match &certificate.thumbprint {
                    Some(text) => match values::normalize_thumbprint(text) {
                        Ok(thumbprint) => Some(thumbprint),
                        Err(message) => {
                            self.error(
                                &thumbprint_field,
                                format!("invalid `{thumbprint_field}`: {message}"),
                            );
                            None
                        }
                    },
                    None => {
                        self.error(&certificate_field, format!("`{certificate_field}` requires `thumbprint`"))
                            .help = Some("add the certificate's SHA-1 thumbprint, shown under Certificates & secrets in the Microsoft Entra admin center".to_owned());
                        None
                    }
                };
                let key_file = self.path(
                    &format!("{certificate_field}.keyFile"),
                    &certificate.key_file,
                );
                Some(ClientCredential::Certificate {
                    thumbprint: thumbprint?,
                    key_file: key_file?,
                })
            }
            CredentialKind::ClientSecret(secret) => self
                .secret(&format!("{field}.clientSecret"), secret)
                .map(ClientCredential::ClientSecret),
        }
    }

    /// Checks the credential that siuctl generates in automatic mode: where to write a
    /// certificate key or a client secret.
    fn generated_credential(&mut self, credential: &CredentialSpec) -> Option<GeneratedCredential> {
        let field = format!("{BASE}.credential");
        match self.credential_kind(&field, credential)? {
            CredentialKind::Certificate(certificate) => {
                let certificate_field = format!("{field}.certificate");
                let key_file = self.path(
                    &format!("{certificate_field}.keyFile"),
                    &certificate.key_file,
                );
                if certificate.thumbprint.is_some() {
                    self.error_at_key(
                        &format!("{certificate_field}.thumbprint"),
                        "`thumbprint` is not set with `mode: automatic`; siuctl generates the certificate",
                    )
                    .help = Some("remove `thumbprint`, or set `mode: manual` to use an existing certificate".to_owned());
                    return None;
                }
                Some(GeneratedCredential::Certificate {
                    key_file: key_file?,
                })
            }
            CredentialKind::ClientSecret(secret) => {
                let secret_field = format!("{field}.clientSecret");
                match secret {
                    SecretSpec::Reference(SecretRef::FromEnv(_)) => {
                        self.error(
                            &secret_field,
                            "with `mode: automatic`, `clientSecret` must be `fromFile`, because siuctl writes the new secret there",
                        )
                        .help = Some("write `clientSecret: { fromFile: secrets/siu-app.secret }`".to_owned());
                        None
                    }
                    _ => match self.secret(&secret_field, secret)? {
                        SecretRef::FromFile(secret_file) => {
                            Some(GeneratedCredential::ClientSecret { secret_file })
                        }
                        SecretRef::FromEnv(_) => None,
                    },
                }
            }
        }
    }

    fn endpoints(&mut self, endpoints: Option<&EndpointsSpec>) -> Option<CloudEndpoints> {
        let base = format!("{BASE}.endpoints");
        let empty = EndpointsSpec {
            authority_host: None,
            graph: None,
            exchange_online_ews: None,
            ca_file: None,
        };
        let endpoints = endpoints.unwrap_or(&empty);

        let authority_host = self.endpoint(
            &format!("{base}.authorityHost"),
            endpoints.authority_host.as_deref(),
            DEFAULT_AUTHORITY_HOST,
        );
        let graph = self.endpoint(
            &format!("{base}.graph"),
            endpoints.graph.as_deref(),
            DEFAULT_GRAPH,
        );
        let exchange_online_ews = self.endpoint(
            &format!("{base}.exchangeOnlineEws"),
            endpoints.exchange_online_ews.as_deref(),
            DEFAULT_EXCHANGE_ONLINE_EWS,
        );
        let ca_file = self.optional_path(&format!("{base}.caFile"), endpoints.ca_file.as_ref());

        Some(CloudEndpoints {
            authority_host: authority_host?,
            graph: graph?,
            exchange_online_ews: exchange_online_ews?,
            ca_file: ca_file?,
        })
    }

    fn endpoint(&mut self, field: &str, text: Option<&str>, default: &str) -> Option<Url> {
        match text {
            Some(text) => self.https_url(
                field,
                text,
                false,
                "Microsoft 365 endpoints and the lab both use https",
            ),
            None => Url::parse(default).ok(),
        }
    }

    fn guid(&mut self, field: &str, text: &str) -> Option<uuid::Uuid> {
        match values::parse_guid(text) {
            Ok(guid) => Some(guid),
            Err(message) => {
                self.error(field, format!("invalid `{field}`: {message}"));
                None
            }
        }
    }
}

/// The one credential a credential block sets.
enum CredentialKind<'c> {
    Certificate(&'c crate::spec::CertificateSpec),
    ClientSecret(&'c SecretSpec),
}
