//! Access tokens: the lab's token endpoint issues them, Graph and Exchange Online verify them.
//!
//! Tokens are RS256 JWTs in the shape Entra issues for app-only access to v1 resources:
//! `aud` is the resource URI, `iss` is `https://sts.windows.net/{tenant}/`, `appid` the client
//! ID, `roles` the consented app roles, `oid` the client's service principal. The signing key
//! is generated at start, so tokens of one lab never work in another.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::LabError;

/// The resources the lab issues tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Microsoft Graph.
    Graph,
    /// Office 365 Exchange Online (EWS and the admin API).
    ExchangeOnline,
}

impl Resource {
    /// The `aud` claim of a token for this resource.
    pub fn audience(self) -> &'static str {
        match self {
            Resource::Graph => "https://graph.microsoft.com",
            Resource::ExchangeOnline => "https://outlook.office365.com",
        }
    }

    /// The application ID of the resource's service principal.
    pub fn app_id(self) -> &'static str {
        match self {
            Resource::Graph => crate::world::tenant::GRAPH_APP_ID,
            Resource::ExchangeOnline => crate::world::tenant::EXCHANGE_ONLINE_APP_ID,
        }
    }

    /// The resource a `scope` parameter (`https://graph.microsoft.com/.default`) names.
    pub fn from_scope(scope: &str) -> Option<Self> {
        let resource = scope.trim().strip_suffix("/.default")?;
        let resource = resource.trim_end_matches('/');
        [Resource::Graph, Resource::ExchangeOnline]
            .into_iter()
            .find(|r| {
                resource.eq_ignore_ascii_case(r.audience())
                    || resource.eq_ignore_ascii_case(r.app_id())
                    || (*r == Resource::ExchangeOnline
                        && resource.eq_ignore_ascii_case("https://outlook.office.com"))
            })
    }
}

/// The claims of a lab access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// Resource URI.
    pub aud: String,
    /// `https://sts.windows.net/{tenant}/`.
    pub iss: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Client (application) ID.
    pub appid: String,
    /// Object ID of the client's service principal.
    pub oid: String,
    /// Subject; the service principal for app-only tokens.
    pub sub: String,
    /// Tenant ID.
    pub tid: String,
    /// Consented app roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Token version.
    pub ver: String,
}

/// Why a bearer token is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenRejected {
    /// The token does not parse or its signature is wrong.
    #[error("the access token is malformed or its signature is invalid")]
    Invalid,
    /// The token has expired.
    #[error("the access token has expired")]
    Expired,
    /// The token is for another resource.
    #[error("the access token is for audience `{0}`, not this resource")]
    WrongAudience(String),
}

/// Signs and verifies the lab's access tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
    tenant: Uuid,
    public_pem: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key_id", &self.key_id)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Generates a signing key for `tenant`.
    pub fn generate(tenant: Uuid) -> Result<Self, LabError> {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(|e| {
                    LabError::Tls(format!("failed to generate the token signing key: {e}"))
                })?;
        let encoding = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())
            .map_err(|e| LabError::Tls(format!("failed to load the token signing key: {e}")))?;
        let public_pem = key.public_key_pem();
        let decoding = DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(|e| {
            LabError::Tls(format!("failed to load the token verification key: {e}"))
        })?;
        Ok(Self {
            encoding,
            decoding,
            key_id: Uuid::new_v4().simple().to_string(),
            tenant,
            public_pem,
        })
    }

    /// The `kid` header of issued tokens.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key in PEM, for a JWKS document.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The `iss` claim.
    pub fn issuer(&self) -> String {
        format!("https://sts.windows.net/{}/", self.tenant)
    }

    /// Issues an app-only token.
    pub fn issue(
        &self,
        resource: Resource,
        app_id: Uuid,
        principal_id: Uuid,
        roles: Vec<String>,
        lifetime: Duration,
    ) -> Result<String, LabError> {
        let now = Utc::now().timestamp();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(3600);
        let claims = Claims {
            aud: resource.audience().to_string(),
            iss: self.issuer(),
            iat: now,
            nbf: now - 300,
            exp: now + lifetime,
            appid: app_id.to_string(),
            oid: principal_id.to_string(),
            sub: principal_id.to_string(),
            tid: self.tenant.to_string(),
            roles,
            ver: "1.0".into(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| LabError::Tls(format!("failed to sign an access token: {e}")))
    }

    /// Verifies a bearer token for `resource` and returns its claims.
    pub fn verify(&self, token: &str, resource: Resource) -> Result<Claims, TokenRejected> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.set_issuer(&[self.issuer()]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRejected::Expired,
                _ => TokenRejected::Invalid,
            },
        )?;
        if !data.claims.aud.eq_ignore_ascii_case(resource.audience())
            && !data.claims.aud.eq_ignore_ascii_case(resource.app_id())
        {
            return Err(TokenRejected::WrongAudience(data.claims.aud));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_verifies_for_its_resource_only() {
        let issuer = TokenIssuer::generate(Uuid::new_v4()).expect("issuer");
        let token = issuer
            .issue(
                Resource::Graph,
                Uuid::new_v4(),
                Uuid::new_v4(),
                vec!["Mail.ReadWrite".into()],
                Duration::from_secs(600),
            )
            .expect("token");
        let claims = issuer.verify(&token, Resource::Graph).expect("verifies");
        assert_eq!(claims.roles, vec!["Mail.ReadWrite".to_string()]);
        assert!(matches!(
            issuer.verify(&token, Resource::ExchangeOnline),
            Err(TokenRejected::WrongAudience(_))
        ));
    }

    #[test]
    fn token_of_another_lab_is_invalid() {
        let tenant = Uuid::new_v4();
        let one = TokenIssuer::generate(tenant).expect("issuer");
        let other = TokenIssuer::generate(tenant).expect("issuer");
        let token = one
            .issue(
                Resource::Graph,
                Uuid::new_v4(),
                Uuid::new_v4(),
                vec![],
                Duration::from_secs(600),
            )
            .expect("token");
        assert_eq!(
            other.verify(&token, Resource::Graph),
            Err(TokenRejected::Invalid)
        );
    }

    #[test]
    fn scopes_name_resources() {
        assert_eq!(
            Resource::from_scope("https://graph.microsoft.com/.default"),
            Some(Resource::Graph)
        );
        assert_eq!(
            Resource::from_scope("https://outlook.office365.com/.default"),
            Some(Resource::ExchangeOnline)
        );
        assert_eq!(Resource::from_scope("https://example.com/.default"), None);
    }
}
