//! Certificate credentials: the private key and certificate from one PEM file, the signed
//! client assertion that proves possession of the key to the token endpoint, and the
//! self-signed certificate that an automatic registration generates.
//!
//! The assertion is an RS256 JWT in the format that Entra ID documents for certificate
//! credentials: the header names the certificate by its SHA-1 (`x5t`) and SHA-256
//! (`x5t#S256`) thumbprints, and the claims are `aud` (the token endpoint URL), `iss` and
//! `sub` (the client ID), `jti` (a random UUID), `nbf`, `iat` and `exp`. See
//! <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rustls_pki_types::pem::{PemObject, SectionKind};
use sha1::Digest as _;
use tracing::warn;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::providers::exchange::ews::Secret;

/// The smallest RSA key that Entra ID accepts for certificate credentials.
pub const MIN_RSA_KEY_BITS: usize = 2048;

/// How long a client assertion stays valid after it is signed.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// A certificate and the RSA private key that belongs to it, read from one PEM file.
pub struct CertificateKey {
    origin: String,
    certificate_der: Vec<u8>,
    encoding_key: EncodingKey,
    key_bits: usize,
    sha1: [u8; 20],
    sha256: [u8; 32],
    subject: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

impl fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateKey")
            .field("origin", &self.origin)
            .field("subject", &self.subject)
            .field("thumbprint", &self.thumbprint())
            .field("key_bits", &self.key_bits)
            .finish_non_exhaustive()
    }
}

/// The RSA public key of a parsed certificate.
struct RsaCertificate {
    der: Vec<u8>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    bits: usize,
}

impl CertificateKey {
    /// Reads the private key and its certificate from a PEM file.
    ///
    /// The file contains one unencrypted RSA private key (`PRIVATE KEY` or `RSA PRIVATE KEY`)
    /// and one or more certificates. The certificate whose public key matches the private
    /// key is used, so a leaf followed by its chain works in any order.
    pub fn from_pem_file(path: &Path) -> Result<Self, CertificateError> {
        let pem = std::fs::read(path).map_err(|source| CertificateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    /// Reads the private key and its certificate from PEM text; `origin` names the source
    /// (a file path) in error messages.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, CertificateError> {
        let origin = origin.to_owned();

        // 1. Split the PEM sections into private keys and certificates.
        let mut keys = Vec::new();
        let mut certificates = Vec::new();
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
            let (kind, der) = section.map_err(|error| CertificateError::InvalidPem {
                origin: origin.clone(),
                message: error.to_string(),
            })?;
            match kind {
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey => keys.push((kind, der)),
                SectionKind::EcPrivateKey => {
                    return Err(CertificateError::UnsupportedKeyType {
                        origin,
                        algorithm: "EC".to_owned(),
                    });
                }
                SectionKind::Certificate => certificates.push(der),
                _ => {}
            }
        }
        let key = match keys.len() {
            1 => keys.remove(0),
            0 if contains(pem, b"ENCRYPTED PRIVATE KEY") => {
                return Err(CertificateError::EncryptedKey { origin });
            }
            0 => return Err(CertificateError::NoPrivateKey { origin }),
            count => return Err(CertificateError::MultiplePrivateKeys { origin, count }),
        };
        if certificates.is_empty() {
            return Err(CertificateError::NoCertificate { origin });
        }

        // 2. Read the public keys. Entra ID verifies assertions with RSA only.
        let mut rsa_certificates = Vec::new();
        let mut other_algorithm = None;
        for der in certificates {
            match rsa_certificate(der, &origin)? {
                Ok(certificate) => rsa_certificates.push(certificate),
                Err(algorithm) => other_algorithm = other_algorithm.or(Some(algorithm)),
            }
        }
        let Some(first) = rsa_certificates.first() else {
            return Err(CertificateError::UnsupportedKeyType {
                origin,
                algorithm: other_algorithm.unwrap_or_else(|| "unknown".to_owned()),
            });
        };

        // 3. Load the private key and sign a probe with it. aws-lc refuses to sign with RSA
        // keys under 2048 bits, so a failure next to a small certificate key is reported as
        // the size problem it is.
        let smallest_bits = rsa_certificates
            .iter()
            .map(|certificate| certificate.bits)
            .min()
            .unwrap_or(first.bits);
        let loaded = EncodingKey::from_rsa_pem(pem_block(key.0, &key.1).expose().as_bytes())
            .map_err(|error| error.to_string())
            .and_then(|encoding_key| sign_probe(&encoding_key).map(|probe| (encoding_key, probe)));
        let (encoding_key, probe) = match loaded {
            Ok(loaded) => loaded,
            Err(_) if smallest_bits < MIN_RSA_KEY_BITS => {
                return Err(CertificateError::KeyTooSmall {
                    origin,
                    bits: smallest_bits,
                });
            }
            Err(message) => return Err(CertificateError::InvalidKey { origin, message }),
        };

        // 4. Find the certificate of this key: the probe signature must verify with the
        // certificate's public key.
        let certificate = rsa_certificates
            .into_iter()
            .find(|certificate| verifies(&probe, certificate))
            .ok_or_else(|| CertificateError::KeyMismatch {
                origin: origin.clone(),
            })?;
        if certificate.bits < MIN_RSA_KEY_BITS {
            return Err(CertificateError::KeyTooSmall {
                origin,
                bits: certificate.bits,
            });
        }

        let (_, parsed) =
            X509Certificate::from_der(&certificate.der).expect("the certificate parsed in step 2");
        let validity = parsed.validity();
        let to_utc = |timestamp: i64| DateTime::from_timestamp(timestamp, 0).unwrap_or_default();
        let key = Self {
            subject: parsed.subject().to_string(),
            not_before: to_utc(validity.not_before.timestamp()),
            not_after: to_utc(validity.not_after.timestamp()),
            sha1: sha1::Sha1::digest(&certificate.der).into(),
            sha256: sha2::Sha256::digest(&certificate.der).into(),
            key_bits: certificate.bits,
            certificate_der: certificate.der,
            encoding_key,
            origin,
        };
        let now = Utc::now();
        if key.not_after < now || key.not_before > now {
            warn!(
                origin = %key.origin,
                thumbprint = %key.thumbprint(),
                not_before = %key.not_before,
                not_after = %key.not_after,
                "the certificate is outside its validity period; Entra ID rejects expired key credentials"
            );
        }
        Ok(key)
    }

    /// Checks that the certificate has the thumbprint the configuration names.
    pub fn check_thumbprint(&self, expected: &str) -> Result<(), CertificateError> {
        let expected: String = expected
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect::<String>()
            .to_ascii_uppercase();
        let actual = self.thumbprint();
        if expected == actual {
            Ok(())
        } else {
            Err(CertificateError::ThumbprintMismatch {
                origin: self.origin.clone(),
                expected,
                actual,
            })
        }
    }

    /// Returns the SHA-1 thumbprint in uppercase hexadecimal, as the Entra admin center and
    /// `Get-ChildItem Cert:` show it.
    pub fn thumbprint(&self) -> String {
        self.sha1.iter().map(|byte| format!("{byte:02X}")).collect()
    }

    /// Returns the base64url SHA-1 thumbprint, the `x5t` header value.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha1)
    }

    /// Returns the base64url SHA-256 thumbprint, the `x5t#S256` header value.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }

    /// Returns the certificate in DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// Returns the certificate in standard base64, the `key` of a Graph `keyCredential`.
    pub fn certificate_base64(&self) -> String {
        STANDARD.encode(&self.certificate_der)
    }

    /// Returns the RSA modulus size in bits.
    pub fn key_bits(&self) -> usize {
        self.key_bits
    }

    /// Returns the certificate's subject, such as `CN=siuctl`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Returns the start of the certificate's validity period.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// Returns the end of the certificate's validity period.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// Signs a client assertion for `client_id` addressed to the token endpoint `audience`.
    pub fn sign_assertion(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<String, CertificateError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AssertionClaims {
            aud: audience,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.x5t = Some(self.x5t());
        header.x5t_s256 = Some(self.x5t_s256());
        jsonwebtoken::encode(&header, &claims, &self.encoding_key).map_err(|error| {
            CertificateError::Sign {
                origin: self.origin.clone(),
                message: error.to_string(),
            }
        })
    }
}

/// The claims of a client assertion.
#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

/// Parses a certificate; the inner `Err` carries the name of a non-RSA key algorithm.
fn rsa_certificate(
    der: Vec<u8>,
    origin: &str,
) -> Result<Result<RsaCertificate, String>, CertificateError> {
    let invalid = |message: String| CertificateError::InvalidCertificate {
        origin: origin.to_owned(),
        message,
    };
    let (_, certificate) =
        X509Certificate::from_der(&der).map_err(|error| invalid(error.to_string()))?;
    let public_key = certificate.public_key();
    match public_key.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let modulus = strip_leading_zeros(rsa.modulus).to_vec();
            let exponent = strip_leading_zeros(rsa.exponent).to_vec();
            let bits = bit_length(&modulus);
            Ok(Ok(RsaCertificate {
                der,
                modulus,
                exponent,
                bits,
            }))
        }
        Ok(PublicKey::EC(_)) => Ok(Err("EC".to_owned())),
        Ok(_) => Ok(Err(public_key.algorithm.algorithm.to_id_string())),
        Err(error) => Err(invalid(error.to_string())),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn bit_length(magnitude: &[u8]) -> usize {
    match magnitude.first() {
        Some(first) => (magnitude.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Encodes one DER section back into PEM, so that `jsonwebtoken` reads PKCS#1 and PKCS#8
/// keys alike.
fn pem_block(kind: SectionKind, der: &[u8]) -> Secret {
    let label = match kind {
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    Secret::new(pem)
}

/// Signs a throw-away token, to find the certificate whose public key verifies it.
fn sign_probe(key: &EncodingKey) -> Result<String, String> {
    #[derive(serde::Serialize)]
    struct Probe {
        probe: &'static str,
    }
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &Probe { probe: "key" }, key)
        .map_err(|error| error.to_string())
}

fn verifies(token: &str, certificate: &RsaCertificate) -> bool {
    let key = DecodingKey::from_rsa_raw_components(&certificate.modulus, &certificate.exponent);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).is_ok()
}

/// A [`ClientAssertion`] that signs a fresh assertion with a certificate key for every
/// token request.
#[derive(Debug, Clone)]
pub struct CertificateAssertion {
    key: Arc<CertificateKey>,
    client_id: String,
    audience: String,
}

impl CertificateAssertion {
    /// Creates assertions for `client_id`, addressed to the token endpoint URL `audience`.
    pub fn new(key: Arc<CertificateKey>, client_id: String, audience: String) -> Self {
        Self {
            key,
            client_id,
            audience,
        }
    }

    /// Returns the certificate key.
    pub fn key(&self) -> &CertificateKey {
        &self.key
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.key
            .sign_assertion(&self.client_id, &self.audience)
            .map_err(|error| {
                azure_core::Error::new(azure_core::error::ErrorKind::Credential, error)
            })
    }
}

/// A self-signed certificate with its private key, generated for an application.
pub struct GeneratedCertificate {
    /// The private key (PKCS#8) followed by the certificate, the contents of the key file.
    pub pem: Secret,
    /// The parsed key, for signing and for the Graph `keyCredential`.
    pub key: CertificateKey,
}

impl fmt::Debug for GeneratedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCertificate")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Generates a 2048-bit RSA key and a self-signed certificate for it, valid from now for
/// `validity`, with the subject `CN=<common_name>`.
pub fn generate_certificate(
    common_name: &str,
    validity: Duration,
) -> Result<GeneratedCertificate, CertificateError> {
    let failed = |error: rcgen::Error| CertificateError::Generate {
        message: error.to_string(),
    };
    let key_pair =
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let now = azure_core::time::OffsetDateTime::now_utc();
    let validity = azure_core::time::Duration::try_from(validity).map_err(|error| {
        CertificateError::Generate {
            message: error.to_string(),
        }
    })?;
    params.not_before = now;
    params.not_after = now + validity;
    let certificate = params.self_signed(&key_pair).map_err(failed)?;

    let pem = format!("{}{}", key_pair.serialize_pem(), certificate.pem());
    let key = CertificateKey::from_pem(pem.as_bytes(), "generated certificate")?;
    Ok(GeneratedCertificate {
        pem: Secret::new(pem),
        key,
    })
}

/// A certificate credential that cannot be read or used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The key file could not be read.
    #[error("failed to read certificate key file {}: check the path and its permissions", path.display())]
    Read {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("invalid PEM in {origin}: {message}")]
    InvalidPem {
        /// The file.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// The file contains no private key.
    #[error(
        "{origin} contains no private key: expected a -----BEGIN PRIVATE KEY----- block followed by the certificate"
    )]
    NoPrivateKey {
        /// The file.
        origin: String,
    },
    /// The private key is encrypted with a password.
    #[error(
        "the private key in {origin} is encrypted: export it without a password (openssl pkcs8 -in KEY -nocrypt) and protect the file with permissions instead"
    )]
    EncryptedKey {
        /// The file.
        origin: String,
    },
    /// The file contains more than one private key.
    #[error(
        "{origin} contains {count} private keys: keep only the key of the application's certificate"
    )]
    MultiplePrivateKeys {
        /// The file.
        origin: String,
        /// How many keys it contains.
        count: usize,
    },
    /// The file contains no certificate.
    #[error(
        "{origin} contains no certificate: append the certificate (-----BEGIN CERTIFICATE-----) after the private key"
    )]
    NoCertificate {
        /// The file.
        origin: String,
    },
    /// A certificate could not be parsed.
    #[error("invalid certificate in {origin}: {message}")]
    InvalidCertificate {
        /// The file.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// The key is not an RSA key.
    #[error(
        "the certificate key in {origin} is {algorithm}, but Entra ID accepts only RSA keys for certificate credentials: create an RSA certificate of at least 2048 bits"
    )]
    UnsupportedKeyType {
        /// The file.
        origin: String,
        /// The key algorithm, such as `EC`.
        algorithm: String,
    },
    /// The RSA key is shorter than Entra ID accepts.
    #[error(
        "the RSA key in {origin} has {bits} bits, but Entra ID rejects certificate keys under 2048 bits: create a new certificate with a key of 2048 bits or more"
    )]
    KeyTooSmall {
        /// The file.
        origin: String,
        /// The key size.
        bits: usize,
    },
    /// The private key could not be loaded.
    #[error("invalid RSA private key in {origin}: {message}")]
    InvalidKey {
        /// The file.
        origin: String,
        /// The loader's message.
        message: String,
    },
    /// No certificate in the file belongs to the private key.
    #[error(
        "no certificate in {origin} matches its private key: put the key and its own certificate in the file"
    )]
    KeyMismatch {
        /// The file.
        origin: String,
    },
    /// The certificate is not the one the configuration names.
    #[error(
        "the certificate in {origin} has thumbprint {actual}, but the configuration expects {expected}: fix the thumbprint or the key file"
    )]
    ThumbprintMismatch {
        /// The file.
        origin: String,
        /// The configured thumbprint.
        expected: String,
        /// The certificate's thumbprint.
        actual: String,
    },
    /// Signing the assertion failed.
    #[error("failed to sign a client assertion with the key in {origin}: {message}")]
    Sign {
        /// The file.
        origin: String,
        /// The signer's message.
        message: String,
    },
    /// Generating a key or certificate failed.
    #[error("failed to generate a certificate: {message}")]
    Generate {
        /// The generator's message.
        message: String,
    },
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Returns a 2048-bit RSA key and certificate, generated once per test process because
    /// RSA key generation is slow in debug builds.
    pub(crate) fn test_certificate() -> &'static GeneratedCertificate {
        static CERTIFICATE: std::sync::OnceLock<GeneratedCertificate> = std::sync::OnceLock::new();
        CERTIFICATE.get_or_init(|| {
            generate_certificate("siuctl test", Duration::from_secs(86_400))
                .expect("certificate generation should work")
        })
    }

    /// Returns the SubjectPublicKeyInfo of an RSA key with a `bits`-bit modulus; no private
    /// key exists for it.
    fn rsa_spki(bits: usize) -> Vec<u8> {
        fn length(len: usize) -> Vec<u8> {
            match len {
                0..=127 => vec![len as u8],
                128..=255 => vec![0x81, len as u8],
                _ => vec![0x82, (len >> 8) as u8, len as u8],
            }
        }
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            out.extend(length(content.len()));
            out.extend_from_slice(content);
            out
        }
        let mut modulus = vec![0u8];
        modulus.extend(std::iter::repeat_n(0xC5, bits / 8));
        let rsa_key = tlv(
            0x30,
            &[tlv(0x02, &modulus), tlv(0x02, &[0x01, 0x00, 0x01])].concat(),
        );
        let algorithm = tlv(
            0x30,
            &[
                tlv(
                    0x06,
                    &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01],
                ),
                vec![0x05, 0x00],
            ]
            .concat(),
        );
        let bit_string = tlv(0x03, &[&[0u8][..], &rsa_key].concat());
        tlv(0x30, &[algorithm, bit_string].concat())
    }

    /// PEM with a certificate for a 1024-bit RSA key, signed by a throw-away EC key, and
    /// that EC key as the private key.
    fn small_rsa_pem() -> String {
        let spki = rcgen::SubjectPublicKeyInfo::from_der(&rsa_spki(1024)).unwrap();
        let issuer_key = rcgen::KeyPair::generate().unwrap();
        let issuer_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let issuer = rcgen::Issuer::from_params(&issuer_params, &issuer_key);
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let certificate = params.signed_by(&spki, &issuer).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        format!("{}{}", key.serialize_pem(), certificate.pem())
    }

    #[test]
    fn generated_certificate_loads_with_thumbprints() {
        let generated = test_certificate();
        let key = CertificateKey::from_pem(generated.pem.expose().as_bytes(), "test.pem")
            .expect("the generated PEM should load");
        assert_eq!(key.key_bits(), 2048);
        assert_eq!(key.subject(), "CN=siuctl test");
        assert_eq!(key.thumbprint().len(), 40);
        assert!(
            key.thumbprint()
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        let der = key.certificate_der();
        assert_eq!(key.x5t(), URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der)));
        assert_eq!(
            key.x5t_s256(),
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
        );
        assert!(key.not_before() <= Utc::now());
        assert!(Utc::now() < key.not_after());
    }

    #[test]
    fn certificate_before_key_loads() {
        let pem = test_certificate().pem.expose();
        let split = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
        let reordered = format!("{}{}", &pem[split..], &pem[..split]);
        let key = CertificateKey::from_pem(reordered.as_bytes(), "reordered.pem").unwrap();
        assert_eq!(key.thumbprint(), test_certificate().key.thumbprint());
    }

    #[test]
    fn thumbprint_check_ignores_case_and_colons() {
        let key = &test_certificate().key;
        let lower_with_colons = key
            .thumbprint()
            .to_ascii_lowercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        key.check_thumbprint(&lower_with_colons).unwrap();

        let error = key.check_thumbprint(&"0".repeat(40)).unwrap_err();
        assert!(
            matches!(error, CertificateError::ThumbprintMismatch { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&key.thumbprint()), "{error}");
    }

    #[test]
    fn assertion_has_documented_header_and_claims() {
        let key = &test_certificate().key;
        let audience = "https://login.test/tenant/oauth2/v2.0/token";
        let assertion = key.sign_assertion("client-1", audience).unwrap();

        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.x5t.as_deref(), Some(key.x5t().as_str()));
        assert_eq!(header.x5t_s256.as_deref(), Some(key.x5t_s256().as_str()));

        let (_, certificate) = X509Certificate::from_der(key.certificate_der()).unwrap();
        let Ok(PublicKey::RSA(rsa)) = certificate.public_key().parsed() else {
            panic!("the test certificate should have an RSA key");
        };
        let decoding = DecodingKey::from_rsa_raw_components(
            strip_leading_zeros(rsa.modulus),
            strip_leading_zeros(rsa.exponent),
        );
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&["client-1"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&assertion, &decoding, &validation)
            .expect("the assertion should verify with the certificate's public key")
            .claims;
        assert_eq!(claims["sub"], "client-1");
        let jti = claims["jti"].as_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(jti).is_ok(),
            "jti {jti} should be a UUID"
        );
        let nbf = claims["nbf"].as_u64().unwrap();
        let exp = claims["exp"].as_u64().unwrap();
        assert_eq!(exp - nbf, ASSERTION_LIFETIME.as_secs());
        assert_eq!(claims["iat"].as_u64(), Some(nbf));

        let second = key.sign_assertion("client-1", audience).unwrap();
        let second_claims =
            jsonwebtoken::decode::<serde_json::Value>(&second, &decoding, &validation)
                .unwrap()
                .claims;
        assert_ne!(
            second_claims["jti"], claims["jti"],
            "each assertion needs its own jti"
        );
    }

    #[test]
    fn small_rsa_key_is_rejected_with_reason() {
        let error = CertificateKey::from_pem(small_rsa_pem().as_bytes(), "small.pem").unwrap_err();
        assert!(
            matches!(error, CertificateError::KeyTooSmall { bits: 1024, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("1024 bits"), "{message}");
        assert!(message.contains("2048"), "{message}");
    }

    #[test]
    fn ec_certificate_is_rejected() {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = format!("{}{}", key.serialize_pem(), certificate.pem());
        let error = CertificateKey::from_pem(pem.as_bytes(), "ec.pem").unwrap_err();
        assert!(
            matches!(&error, CertificateError::UnsupportedKeyType { algorithm, .. } if algorithm == "EC"),
            "{error:?}"
        );
    }

    #[test]
    fn key_of_another_certificate_is_rejected() {
        let generated = test_certificate().pem.expose();
        let split = generated.find("-----BEGIN CERTIFICATE-----").unwrap();
        let other = generate_certificate("other", Duration::from_secs(3600)).unwrap();
        let other_pem = other.pem.expose();
        let other_split = other_pem.find("-----BEGIN CERTIFICATE-----").unwrap();
        let mixed = format!("{}{}", &generated[..split], &other_pem[other_split..]);
        let error = CertificateKey::from_pem(mixed.as_bytes(), "mixed.pem").unwrap_err();
        assert!(
            matches!(error, CertificateError::KeyMismatch { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn missing_parts_are_named() {
        let pem = test_certificate().pem.expose();
        let split = pem.find("-----BEGIN CERTIFICATE-----").unwrap();

        let error =
            CertificateKey::from_pem(&pem.as_bytes()[split..], "cert-only.pem").unwrap_err();
        assert!(
            matches!(error, CertificateError::NoPrivateKey { .. }),
            "{error:?}"
        );

        let error = CertificateKey::from_pem(&pem.as_bytes()[..split], "key-only.pem").unwrap_err();
        assert!(
            matches!(error, CertificateError::NoCertificate { .. }),
            "{error:?}"
        );

        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let error = CertificateKey::from_pem(encrypted.as_bytes(), "encrypted.pem").unwrap_err();
        assert!(
            matches!(error, CertificateError::EncryptedKey { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn debug_output_has_no_key_material() {
        let generated = test_certificate();
        let debug = format!("{generated:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains(&generated.key.thumbprint()), "{debug}");
    }
}
