//! PostgreSQL connection URLs as libpq reads them, TLS included, for the
//! services and the lab alike.
//!
//! `sslmode` and `sslrootcert` are read here (tokio-postgres knows neither
//! `verify-full` nor `sslrootcert`) and removed before the rest of the URL
//! goes to tokio-postgres:
//!
//! - no `sslmode`, `disable`, `allow`: plain TCP (the lab's own database);
//! - `prefer`: TLS when the server offers it;
//! - `require`, `verify-ca`, `verify-full`: TLS or no connection.
//!
//! Whenever TLS is used the server's certificate is verified, chain and host
//! name, as libpq's `verify-full` does (stricter than libpq's `require`):
//! against the certificates of the PEM file `sslrootcert` names, or the
//! system's roots without one (or with `sslrootcert=system`). The name
//! checked is the URL's host, so a connection made elsewhere (`hostaddr`, as
//! the lab sends the services through its fault proxy) still verifies the
//! real server's name.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("sslmode={0} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("the root certificates in {path}: {detail}")]
    RootCert { path: PathBuf, detail: String },
    #[error("no root certificate could be loaded from the system")]
    NoSystemRoots,
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the TLS configuration: {0}")]
    Tls(String),
}

/// A database to connect to: tokio-postgres' configuration and the TLS
/// connector the URL asks for.
#[derive(Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("ssl_mode", &self.config.get_ssl_mode())
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Reads a `postgres://` URL (or a `key=value` string).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (rest, mode, root) = split_tls_parameters(url);
        let mode = match mode.as_deref() {
            None | Some("disable" | "allow") => SslMode::Disable,
            Some("prefer") => SslMode::Prefer,
            Some("require" | "verify-ca" | "verify-full") => SslMode::Require,
            Some(other) => return Err(UrlError::SslMode(other.to_string())),
        };
        let mut config: tokio_postgres::Config = rest.parse()?;
        config.ssl_mode(mode);
        let roots = match (mode, root.as_deref()) {
            // No TLS: no certificate is ever looked at.
            (SslMode::Disable, _) => RootCertStore::empty(),
            (_, None | Some("system")) => system_roots()?,
            (_, Some(path)) => file_roots(path)?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| UrlError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config,
            tls: MakeRustlsConnect::new(tls),
        })
    }

    /// Whether the connection is made over TLS (or may be, for `prefer`).
    pub fn uses_tls(&self) -> bool {
        self.config.get_ssl_mode() != SslMode::Disable
    }

    /// Connects, and drives the connection in a task of its own.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

/// Whether a URL asks for TLS (`sslmode` prefer, require, verify-ca or
/// verify-full).
pub fn wants_tls(url: &str) -> bool {
    let (_, mode, _) = split_tls_parameters(url);
    mode.is_some_and(|mode| mode != "disable" && mode != "allow")
}

/// Splits `sslmode` and `sslrootcert` off the query of a URL (or a
/// `key=value` string); the URL without them comes first.
pub fn split_tls_parameters(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    if !url.contains("://") {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.to_string()),
                Some(("sslrootcert", value)) => root = Some(value.to_string()),
                _ => kept.push(pair),
            }
        }
        return (kept.join(" "), mode, root);
    }
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, None);
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(percent_decoded(value)),
            Some(("sslrootcert", value)) => root = Some(percent_decoded(value)),
            _ => kept.push(pair),
        }
    }
    let rest = match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    };
    (rest, mode, root)
}

/// `%XX` escapes decoded (a path in a URL); anything malformed is kept.
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn system_roots() -> Result<RootCertStore, UrlError> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(UrlError::NoSystemRoots);
    }
    Ok(roots)
}

fn file_roots(path: &str) -> Result<RootCertStore, UrlError> {
    let failed = |detail: String| UrlError::RootCert {
        path: path.into(),
        detail,
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| failed(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| failed(e.to_string()))?;
        roots.add(cert).map_err(|e| failed(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failed("it holds no PEM certificate".into()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_read_and_the_rest_goes_to_tokio_postgres() {
        let (rest, mode, root) = split_tls_parameters(
            "postgres://u:p@db.example:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca%20b.pem",
        );
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/app?application_name=x"
        );
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca b.pem"));
        let (rest, mode, root) = split_tls_parameters("postgres://u@h/db?sslmode=require");
        assert_eq!(
            (rest.as_str(), mode.as_deref(), root),
            ("postgres://u@h/db", Some("require"), None)
        );
        let (rest, mode, _) = split_tls_parameters("host=h user=u sslmode=prefer");
        assert_eq!(
            (rest.as_str(), mode.as_deref()),
            ("host=h user=u", Some("prefer"))
        );
        assert_eq!(
            split_tls_parameters("postgres://u@h/db"),
            ("postgres://u@h/db".into(), None, None)
        );
    }

    #[test]
    fn the_mode_decides_whether_tls_is_used_and_bad_input_is_named() {
        let plain = Target::parse("postgres://u@h/db").unwrap();
        assert!(!plain.uses_tls());
        let plain = Target::parse("postgres://u@h/db?sslmode=disable").unwrap();
        assert!(!plain.uses_tls());
        let tls = Target::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=system");
        // A machine without system roots says so instead.
        match tls {
            Ok(tls) => assert_eq!(tls.config.get_ssl_mode(), SslMode::Require),
            Err(error) => assert!(matches!(error, UrlError::NoSystemRoots), "{error}"),
        }
        let error = Target::parse("postgres://u@h/db?sslmode=maybe").unwrap_err();
        assert!(error.to_string().contains("sslmode=maybe"), "{error}");
        let error =
            Target::parse("postgres://u@h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem")
                .unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
