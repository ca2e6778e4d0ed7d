//! The client side of NTLM over HTTP (MS-NLMP carried in `Authorization: NTLM …`
//! headers), with Extended Protection channel binding.
//!
//! NTLM authenticates a connection, not a request: the NEGOTIATE, CHALLENGE and
//! AUTHENTICATE messages must travel on one TCP connection, and the server then trusts
//! later requests on that connection. The transport keeps each connection to one request
//! at a time; this module only produces and reads the tokens.
//!
//! On https the AUTHENTICATE message carries the MD5 hash of a `SEC_CHANNEL_BINDINGS`
//! structure whose application data is `tls-server-end-point:` followed by the hash of
//! the server's certificate (RFC 5929, section 4), so that a man in the middle with a
//! different certificate cannot relay it. Exchange checks it when Extended Protection is on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, CredentialUse,
    DataRepresentation, Ntlm, SecurityBuffer, SecurityStatus, Sspi as _, SspiImpl as _, Username,
};

use super::auth::Secret;

/// The prefix of `tls-server-end-point` channel binding data (RFC 5929, section 4.1).
const TLS_SERVER_END_POINT_PREFIX: &[u8] = b"tls-server-end-point:";

/// One NTLM handshake in progress on one connection.
pub(crate) struct NtlmHandshake {
    context: Ntlm,
    credentials: Option<AuthIdentityBuffers>,
    target_name: String,
}

impl NtlmHandshake {
    /// Starts a handshake for `username` (`DOMAIN\user` or a UPN) and returns it with the
    /// NEGOTIATE message to send.
    pub(crate) fn start(
        username: &str,
        password: &Secret,
        host: &str,
    ) -> Result<(Self, Vec<u8>), NtlmError> {
        let username = Username::parse(username).map_err(|error| NtlmError::InvalidUsername {
            username: username.to_owned(),
            reason: format!("{error:?}"),
        })?;
        let identity = AuthIdentity {
            username,
            password: password.expose().to_owned().into(),
        };

        let mut context = Ntlm::new();
        let acquired = context
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut context)
            .map_err(|error| NtlmError::Sspi {
                step: "acquire credentials",
                message: error.description,
            })?;

        let mut handshake = Self {
            context,
            credentials: acquired.credentials_handle,
            target_name: format!("HTTP/{host}"),
        };
        let negotiate = handshake.step(None)?;
        Ok((handshake, negotiate))
    }

    /// Reads the server's CHALLENGE message and returns the AUTHENTICATE message, bound to
    /// the TLS channel when `channel_binding` (from [`tls_server_end_point`]) is given.
    pub(crate) fn respond(
        &mut self,
        challenge: &[u8],
        channel_binding: Option<&[u8]>,
    ) -> Result<Vec<u8>, NtlmError> {
        if let Some(application_data) = channel_binding {
            self.context.set_channel_bindings(application_data);
        }
        self.step(Some(challenge))
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, NtlmError> {
        let step = if input.is_some() {
            "read challenge"
        } else {
            "write negotiate"
        };
        let mut input_buffers = [SecurityBuffer::new(
            input.map(<[u8]>::to_vec).unwrap_or_default(),
            BufferType::Token,
        )];
        let mut output_buffers = [SecurityBuffer::new(Vec::new(), BufferType::Token)];

        let mut builder = self
            .context
            .initialize_security_context()
            .with_credentials_handle(&mut self.credentials)
            // Signing is what HTTP clients of Exchange negotiate; the session keys go unused.
            .with_context_requirements(ClientRequestFlags::INTEGRITY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&self.target_name)
            .with_output(&mut output_buffers);
        if input.is_some() {
            builder = builder.with_input(&mut input_buffers);
        }

        let result = self
            .context
            .initialize_security_context_impl(&mut builder)
            .and_then(|mut generator| generator.resolve_to_result())
            .map_err(|error| NtlmError::Sspi {
                step,
                message: error.description,
            })?;

        if matches!(
            result.status,
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
        ) {
            self.context
                .complete_auth_token(&mut output_buffers)
                .map_err(|error| NtlmError::Sspi {
                    step: "complete token",
                    message: error.description,
                })?;
        }

        let [output] = output_buffers;
        Ok(output.buffer)
    }
}

/// Computes the `tls-server-end-point` channel binding data for a DER server certificate:
/// the prefix and the certificate's hash, taken with the hash function of its signature
/// algorithm, or SHA-256 when that is MD5, SHA-1 or not a plain hash (RFC 5929, 4.1).
pub(crate) fn tls_server_end_point(certificate_der: &[u8]) -> Result<Vec<u8>, NtlmError> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};

    let (_, certificate) =
        X509Certificate::from_der(certificate_der).map_err(|error| NtlmError::Certificate {
            message: error.to_string(),
        })?;
    let algorithm = certificate.signature_algorithm.algorithm.to_id_string();

    let hash: Vec<u8> = match algorithm.as_str() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => {
            sha2::Sha384::digest(certificate_der).to_vec()
        }
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => {
            sha2::Sha512::digest(certificate_der).to_vec()
        }
        // SHA-256 signatures, MD5 and SHA-1 (upgraded to SHA-256 by the RFC), and the rest.
        // TODO-correctness: RSASSA-PSS names its hash in the parameters and Ed25519 has
        // none; both get SHA-256 here, which matches the common SHA-256 PSS certificates only.
        _ => sha2::Sha256::digest(certificate_der).to_vec(),
    };

    let mut application_data = TLS_SERVER_END_POINT_PREFIX.to_vec();
    application_data.extend_from_slice(&hash);
    Ok(application_data)
}

/// Formats an NTLM token as an `Authorization` header value.
pub(crate) fn authorization_value(token: &[u8]) -> String {
    format!("NTLM {}", BASE64.encode(token))
}

/// Finds the CHALLENGE token in `WWW-Authenticate` headers (`NTLM <base64>`, or
/// `Negotiate <base64>` from servers that wrap NTLM in SPNEGO's raw form).
pub(crate) fn challenge_from_headers(headers: &http::HeaderMap) -> Option<Vec<u8>> {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("NTLM") && !scheme.eq_ignore_ascii_case("Negotiate") {
                return None;
            }
            BASE64.decode(token.trim()).ok()
        })
}

/// A failure to produce or read an NTLM token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NtlmError {
    /// The account name is neither `DOMAIN\user` nor a UPN.
    #[error("invalid NTLM user name {username:?} ({reason}): use DOMAIN\\user or user@domain")]
    InvalidUsername {
        /// The configured account name.
        username: String,
        /// The parser's reason.
        reason: String,
    },
    /// The NTLM implementation rejected a step.
    #[error("NTLM failed to {step}: {message}")]
    Sspi {
        /// The handshake step.
        step: &'static str,
        /// The message of the `sspi` crate, which never contains the password.
        message: String,
    },
    /// The server's certificate could not be parsed for channel binding.
    #[error("failed to parse the server certificate for NTLM channel binding: {message}")]
    Certificate {
        /// The parser's message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use sspi::{AcquireCredentialsHandleResult, ServerRequestFlags};

    use super::*;

    /// The server half of NTLM, as the lab or Exchange would run it.
    struct TestServer {
        context: Ntlm,
        credentials: Option<AuthIdentityBuffers>,
    }

    impl TestServer {
        fn new(username: &str, password: &str) -> Self {
            let identity = AuthIdentity {
                username: Username::parse(username).unwrap(),
                password: password.to_owned().into(),
            };
            let mut context = Ntlm::new();
            let AcquireCredentialsHandleResult {
                credentials_handle, ..
            } = context
                .acquire_credentials_handle()
                .with_credential_use(CredentialUse::Inbound)
                .with_auth_data(&identity)
                .execute(&mut context)
                .unwrap();
            Self {
                context,
                credentials: credentials_handle,
            }
        }

        /// Feeds one client token; returns the server's reply token (CHALLENGE) or the
        /// outcome of the final check.
        fn accept(
            &mut self,
            token: &[u8],
            channel_binding: Option<&[u8]>,
        ) -> Result<Vec<u8>, sspi::Error> {
            let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
            if let Some(application_data) = channel_binding {
                input.push(SecurityBuffer::new(
                    sec_channel_bindings(application_data),
                    BufferType::ChannelBindings,
                ));
            }
            let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
            let builder = self
                .context
                .accept_security_context()
                .with_credentials_handle(&mut self.credentials)
                .with_context_requirements(ServerRequestFlags::empty())
                .with_target_data_representation(DataRepresentation::Native)
                .with_input(&mut input)
                .with_output(&mut output);
            let result = self
                .context
                .accept_security_context_impl(builder)?
                .resolve_to_result()?;
            if result.status == SecurityStatus::CompleteNeeded {
                self.context.complete_auth_token(&mut [])?;
            }
            let [output] = output;
            Ok(output.buffer)
        }
    }

    /// Lays out a `SEC_CHANNEL_BINDINGS` structure with only application data, as a
    /// Windows server passes it to its NTLM package.
    fn sec_channel_bindings(application_data: &[u8]) -> Vec<u8> {
        let mut buffer = vec![0u8; 32];
        buffer[24..28].copy_from_slice(&(application_data.len() as u32).to_le_bytes());
        buffer[28..32].copy_from_slice(&32u32.to_le_bytes());
        buffer.extend_from_slice(application_data);
        buffer
    }

    fn certificate_der(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// Runs the three messages between the client and `server`.
    fn run_handshake(
        server: &mut TestServer,
        username: &str,
        password: &str,
        client_binding: Option<&[u8]>,
        server_binding: Option<&[u8]>,
    ) -> Result<(), String> {
        let (mut client, negotiate) =
            NtlmHandshake::start(username, &Secret::new(password), "mail.lab.example")
                .map_err(|error| error.to_string())?;
        let challenge = server
            .accept(&negotiate, None)
            .map_err(|error| format!("negotiate: {error:?}"))?;
        let authenticate = client
            .respond(&challenge, client_binding)
            .map_err(|error| error.to_string())?;
        server
            .accept(&authenticate, server_binding)
            .map(|_| ())
            .map_err(|error| format!("{:?}: {}", error.error_type, error.description))
    }

    #[test]
    fn handshake_succeeds_with_right_password() {
        let mut server = TestServer::new(r"LAB\svc-siu", "Passw0rd!");
        run_handshake(&mut server, r"LAB\svc-siu", "Passw0rd!", None, None)
            .expect("the server should accept the right password");
    }

    #[test]
    fn handshake_succeeds_with_upn() {
        let mut server = TestServer::new("svc-siu@lab.example", "Passw0rd!");
        run_handshake(&mut server, "svc-siu@lab.example", "Passw0rd!", None, None)
            .expect("the server should accept a UPN");
    }

    #[test]
    fn handshake_fails_with_wrong_password() {
        let mut server = TestServer::new(r"LAB\svc-siu", "Passw0rd!");
        let error = run_handshake(&mut server, r"LAB\svc-siu", "wrong", None, None)
            .expect_err("the server should reject a wrong password");
        assert!(error.contains("LogonDenied"), "{error}");
    }

    #[test]
    fn channel_binding_matching_certificate_is_accepted() {
        let binding = tls_server_end_point(&certificate_der("mail.lab.example")).unwrap();
        let mut server = TestServer::new(r"LAB\svc-siu", "Passw0rd!");
        run_handshake(
            &mut server,
            r"LAB\svc-siu",
            "Passw0rd!",
            Some(&binding),
            Some(&binding),
        )
        .expect("the server should accept a binding to its own certificate");
    }

    #[test]
    fn channel_binding_to_other_certificate_is_rejected() {
        // A relay that terminates TLS with its own certificate: the client binds to the
        // relay's certificate, and the real server compares with its own.
        let relay = tls_server_end_point(&certificate_der("relay.attacker.example")).unwrap();
        let server_binding = tls_server_end_point(&certificate_der("mail.lab.example")).unwrap();
        let mut server = TestServer::new(r"LAB\svc-siu", "Passw0rd!");
        let error = run_handshake(
            &mut server,
            r"LAB\svc-siu",
            "Passw0rd!",
            Some(&relay),
            Some(&server_binding),
        )
        .expect_err("the server should reject a binding to another certificate");
        assert!(error.contains("BadBindings"), "{error}");
    }

    #[test]
    fn end_point_hash_sha256_for_p256() {
        // rcgen signs with ECDSA P-256 and SHA-256 by default.
        let der = certificate_der("mail.lab.example");
        let binding = tls_server_end_point(&der).unwrap();
        let expected_hash = sha2::Sha256::digest(&der);
        assert!(binding.starts_with(b"tls-server-end-point:"));
        assert_eq!(
            &binding[TLS_SERVER_END_POINT_PREFIX.len()..],
            expected_hash.as_slice()
        );
    }

    #[test]
    fn end_point_hash_sha384_for_p384() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let params = rcgen::CertificateParams::new(vec!["mail.lab.example".to_owned()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let binding = tls_server_end_point(&der).unwrap();
        assert_eq!(
            &binding[TLS_SERVER_END_POINT_PREFIX.len()..],
            sha2::Sha384::digest(&der).as_slice()
        );
    }

    #[test]
    fn challenge_is_read_from_ntlm_and_negotiate_headers() {
        for scheme in ["NTLM", "Negotiate"] {
            let mut headers = http::HeaderMap::new();
            headers.append(
                http::header::WWW_AUTHENTICATE,
                "Basic realm=\"x\"".parse().unwrap(),
            );
            headers.append(
                http::header::WWW_AUTHENTICATE,
                format!("{scheme} TlRMTVNTUAAC").parse().unwrap(),
            );
            let token = challenge_from_headers(&headers).expect(scheme);
            assert!(token.starts_with(b"NTLMSSP\0"), "{scheme}: {token:?}");
        }
    }

    #[test]
    fn challenge_is_none_without_token() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::WWW_AUTHENTICATE, "NTLM".parse().unwrap());
        assert_eq!(challenge_from_headers(&headers), None);
    }
}
