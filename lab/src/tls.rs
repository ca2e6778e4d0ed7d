//! The lab's certificate authority and the server certificate every endpoint presents.
//!
//! A fresh CA is generated at start (or reloaded from the lab directory), and one server
//! certificate signed by it covers every host name and address the lab answers for. Clients
//! trust the lab by trusting `ca.pem`; nothing in the lab needs the system trust store.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::LabError;

/// Host names the server certificate covers besides `localhost`, 127.0.0.1 and ::1.
///
/// Autodiscover derives host names from the mail domain, so the fixture's domains are added at
/// start; these are the fixed ones.
const FIXED_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The CA and the server certificate of one lab.
pub struct LabTls {
    /// PEM of the CA certificate, the file clients trust.
    pub ca_pem: String,
    /// PEM of the CA's private key, kept so that a restarted lab keeps its CA.
    ca_key_pem: String,
    /// The server certificate chain (leaf, then CA) in DER.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER of the server key.
    server_key: Vec<u8>,
    /// SHA-256 of the server certificate: the `tls-server-end-point` channel binding that
    /// NTLM clients put into their AUTHENTICATE message (RFC 5929).
    pub server_end_point: [u8; 32],
}

impl LabTls {
    /// Generates a new CA and a server certificate for `names` plus the fixed loopback names.
    pub fn generate(names: &[String]) -> Result<Self, LabError> {
        let ca_key = KeyPair::generate().map_err(tls_error)?;
        let ca_params = ca_params();
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_error)?;
        let ca_pem = ca_cert.pem();
        let ca_key_pem = ca_key.serialize_pem();
        Self::issue(ca_pem, ca_key_pem, names)
    }

    /// Loads the CA from `dir` (written by an earlier start) or generates one, then issues a
    /// fresh server certificate for `names`.
    pub fn load_or_generate(dir: &Path, names: &[String]) -> Result<Self, LabError> {
        let ca_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if ca_path.exists() && key_path.exists() {
            let ca_pem =
                std::fs::read_to_string(&ca_path).map_err(|e| LabError::io(&ca_path, e))?;
            let ca_key_pem =
                std::fs::read_to_string(&key_path).map_err(|e| LabError::io(&key_path, e))?;
            return Self::issue(ca_pem, ca_key_pem, names);
        }
        let tls = Self::generate(names)?;
        crate::files::write_private(&key_path, tls.ca_key_pem.as_bytes())?;
        crate::files::write_public(&ca_path, tls.ca_pem.as_bytes())?;
        Ok(tls)
    }

    fn issue(ca_pem: String, ca_key_pem: String, names: &[String]) -> Result<Self, LabError> {
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(tls_error)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(tls_error)?;

        let mut all_names: Vec<String> = FIXED_NAMES.iter().map(|n| n.to_string()).collect();
        for name in names {
            if !all_names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                all_names.push(name.to_ascii_lowercase());
            }
        }
        let server_key = KeyPair::generate().map_err(tls_error)?;
        let mut params = CertificateParams::new(all_names).map_err(tls_error)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "siuctl lab server");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let leaf = params.signed_by(&server_key, &issuer).map_err(tls_error)?;

        let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| LabError::Tls(format!("failed to read the lab CA: {e}")))?;
        let server_end_point: [u8; 32] = Sha256::digest(leaf.der()).into();
        Ok(Self {
            ca_pem,
            ca_key_pem,
            chain: vec![leaf.der().clone(), ca_der],
            server_key: server_key.serialize_der(),
            server_end_point,
        })
    }

    /// Builds the rustls server configuration, with `alpn` protocols offered in order.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, LabError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| LabError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), key)
        .map_err(|e| LabError::Tls(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "siuctl lab CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "siuctl lab");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    params
}

fn tls_error(e: rcgen::Error) -> LabError {
    LabError::Tls(format!("failed to generate a lab certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_certificate_names_the_fixture_domains() {
        let tls = LabTls::generate(&["autodiscover.lab.example".into()]).expect("lab TLS");
        let (_, leaf) = x509_parser::parse_x509_certificate(&tls.chain[0]).expect("leaf parses");
        let san = leaf
            .subject_alternative_name()
            .expect("SAN extension readable")
            .expect("SAN extension present");
        let text = format!("{:?}", san.value.general_names);
        assert!(text.contains("autodiscover.lab.example"), "{text}");
        assert!(text.contains("localhost"), "{text}");
    }

    #[test]
    fn channel_binding_hash_is_of_the_leaf() {
        let tls = LabTls::generate(&[]).expect("lab TLS");
        let expected: [u8; 32] = Sha256::digest(&tls.chain[0]).into();
        assert_eq!(tls.server_end_point, expected);
    }
}
