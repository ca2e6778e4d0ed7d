//! The HTTP client settings that every provider shares.
//!
//! Each provider (EWS, Autodiscover, Graph, the token endpoint) builds its `reqwest` client
//! from one [`HttpSettings`], so that a CA file, a `--resolve HOST:ADDR` override or the
//! switch that turns off certificate checks applies to all of them in the same way.
//! Providers that need more (the EWS client turns off redirects and, for NTLM, pins
//! connections) start from [`HttpSettings::client_builder`] and add to it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tracing::warn;

/// The `User-Agent` header that every request of the controller carries.
pub const USER_AGENT: &str = concat!("siuctl/", env!("CARGO_PKG_VERSION"));

/// The combination of a configured CA file with the operating system's trusted roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaMode {
    /// Trust the CA file and the system roots.
    #[default]
    AddToSystemRoots,
    /// Trust only the CA file, for servers whose certificates come from a private CA.
    ReplaceSystemRoots,
}

/// A name-resolution override in the form `HOST:ADDR`, where `ADDR` is an IP address or
/// `IP:PORT` (IPv6 addresses with a port go in brackets: `[::1]:8443`).
///
/// Without a port the request keeps the port of its URL. With a port, that port replaces
/// the scheme's default port for URLs that name no port. A port written in the URL always
/// wins, as `reqwest` 0.13 and `hyper-util` 0.1 treat overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// The host name as it appears in URLs, lowercased.
    pub host: String,
    /// The address to connect to, with port 0 when the override names no port.
    pub addr: SocketAddr,
}

impl FromStr for ResolveOverride {
    type Err = HttpError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| HttpError::InvalidResolve {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };

        let (host, addr) = value
            .split_once(':')
            .ok_or_else(|| invalid("expected HOST:ADDR"))?;
        if host.is_empty() {
            return Err(invalid("the host name is empty"));
        }
        if addr.is_empty() {
            return Err(invalid("the address is empty"));
        }

        // `IP:PORT` and `[IPv6]:PORT` parse as socket addresses; a bare IP (`::1` or
        // `[::1]` included) gets port 0, which means "keep the URL's port".
        let addr = if let Ok(socket) = addr.parse::<SocketAddr>() {
            socket
        } else {
            let bare = addr.trim_start_matches('[').trim_end_matches(']');
            let ip = bare
                .parse::<IpAddr>()
                .map_err(|_| invalid("the address is neither IP nor IP:PORT"))?;
            SocketAddr::new(ip, 0)
        };

        Ok(Self {
            host: host.to_ascii_lowercase(),
            addr,
        })
    }
}

impl fmt::Display for ResolveOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.addr.port() == 0 {
            write!(f, "{}:{}", self.host, self.addr.ip())
        } else {
            write!(f, "{}:{}", self.host, self.addr)
        }
    }
}

/// The settings of every HTTP client that the controller builds.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// A PEM bundle of CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Whether `ca_file` adds to the system roots or replaces them.
    pub ca_mode: CaMode,
    /// Host names that connect to a fixed address instead of the DNS answer.
    pub resolve: Vec<ResolveOverride>,
    /// Turns off certificate and host name checks; for throw-away test servers only.
    pub danger_accept_invalid_certs: bool,
    /// Maximum time to open a TCP connection and finish the TLS handshake.
    pub connect_timeout: Duration,
    /// Maximum time for a whole request, from sending it to reading the last body byte.
    pub request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            ca_file: None,
            ca_mode: CaMode::default(),
            resolve: Vec::new(),
            danger_accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(10),
            // A CreateItem with a large MIME message on a busy server can take a while;
            // EWS itself gives up on a request after 100 seconds by default.
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl HttpSettings {
    /// Creates a `reqwest` client builder with these settings, for callers that add
    /// options of their own before building.
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, HttpError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .gzip(true)
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout);

        if let Some(path) = &self.ca_file {
            let certificates = read_ca_file(path)?;
            builder = match self.ca_mode {
                CaMode::AddToSystemRoots => builder.tls_certs_merge(certificates),
                CaMode::ReplaceSystemRoots => builder.tls_certs_only(certificates),
            };
        }

        for entry in &self.resolve {
            builder = builder.resolve(&entry.host, entry.addr);
        }

        if self.danger_accept_invalid_certs {
            warn!(
                "TLS certificate checks are OFF: any server, including an attacker's, can \
                 read the credentials this client sends; use a CA file instead"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }

        Ok(builder)
    }

    /// Builds a `reqwest` client with these settings.
    pub fn build(&self) -> Result<reqwest::Client, HttpError> {
        self.client_builder()?
            .build()
            .map_err(|source| HttpError::Build { source })
    }
}

fn read_ca_file(path: &PathBuf) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let pem = std::fs::read(path).map_err(|source| HttpError::CaFileRead {
        path: path.clone(),
        source,
    })?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| HttpError::CaFileInvalid {
            path: path.clone(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(HttpError::CaFileEmpty { path: path.clone() });
    }
    Ok(certificates)
}

/// An error in the HTTP client settings.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The CA file could not be read.
    #[error("failed to read CA file {}: check the path and its permissions", path.display())]
    CaFileRead {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file is not a PEM bundle of certificates.
    #[error("invalid CA file {}: expected PEM certificates (-----BEGIN CERTIFICATE-----)", path.display())]
    CaFileInvalid {
        /// The configured path.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: reqwest::Error,
    },
    /// The CA file contains no certificate.
    #[error("CA file {} contains no PEM certificate: expected -----BEGIN CERTIFICATE----- blocks", path.display())]
    CaFileEmpty {
        /// The configured path.
        path: PathBuf,
    },
    /// A `--resolve` value is not of the form `HOST:ADDR`.
    #[error(
        "invalid resolve override {value:?}: {reason} (expected HOST:IP or HOST:IP:PORT, e.g. mail.example.com:127.0.0.1:8443)"
    )]
    InvalidResolve {
        /// The value as given.
        value: String,
        /// The reason the value is invalid.
        reason: String,
    },
    /// `reqwest` rejected the combination of settings.
    #[error("failed to build the HTTP client")]
    Build {
        /// The builder error.
        #[source]
        source: reqwest::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_accepts_ip_and_ip_port() {
        let cases = [
            (
                "Mail.Example.com:127.0.0.1",
                "mail.example.com",
                "127.0.0.1:0",
            ),
            (
                "mail.example.com:127.0.0.1:8443",
                "mail.example.com",
                "127.0.0.1:8443",
            ),
            ("mail.example.com:::1", "mail.example.com", "[::1]:0"),
            ("mail.example.com:[::1]", "mail.example.com", "[::1]:0"),
            (
                "mail.example.com:[::1]:8443",
                "mail.example.com",
                "[::1]:8443",
            ),
        ];
        for (input, host, addr) in cases {
            let parsed: ResolveOverride = input.parse().expect(input);
            assert_eq!(parsed.host, host, "host of {input}");
            assert_eq!(
                parsed.addr,
                addr.parse::<SocketAddr>().unwrap(),
                "addr of {input}"
            );
        }
    }

    #[test]
    fn resolve_rejects_malformed_values() {
        for input in [
            "mail.example.com",
            ":127.0.0.1",
            "mail.example.com:",
            "host:not-an-ip",
        ] {
            let error = input.parse::<ResolveOverride>().unwrap_err();
            assert!(
                matches!(error, HttpError::InvalidResolve { .. }),
                "{input} should be rejected, got {error:?}"
            );
        }
    }

    #[test]
    fn resolve_display_round_trips() {
        for input in [
            "mail.example.com:127.0.0.1",
            "mail.example.com:127.0.0.1:8443",
        ] {
            let parsed: ResolveOverride = input.parse().unwrap();
            assert_eq!(parsed.to_string(), input);
        }
    }

    #[test]
    fn ca_file_missing_is_reported_with_path() {
        let settings = HttpSettings {
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..HttpSettings::default()
        };
        let error = settings.build().unwrap_err();
        assert!(matches!(error, HttpError::CaFileRead { .. }), "{error:?}");
        assert!(error.to_string().contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn ca_file_without_certificates_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let settings = HttpSettings {
            ca_file: Some(path),
            ..HttpSettings::default()
        };
        let error = settings.build().unwrap_err();
        assert!(matches!(error, HttpError::CaFileEmpty { .. }), "{error:?}");
    }

    #[test]
    fn ca_file_with_certificate_builds_in_both_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(&path, ca.pem()).unwrap();

        for ca_mode in [CaMode::AddToSystemRoots, CaMode::ReplaceSystemRoots] {
            let settings = HttpSettings {
                ca_file: Some(path.clone()),
                ca_mode,
                ..HttpSettings::default()
            };
            settings
                .build()
                .unwrap_or_else(|error| panic!("{ca_mode:?} should build: {error:?}"));
        }
    }
}
