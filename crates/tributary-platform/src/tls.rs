//! TLS on the process's own listeners, from `[server] tls_cert_file` and
//! `tls_key_file` ([`ServerConfig`]): when both are set, the HTTP loop of
//! [`crate::serve`] (every REST API and the admin server) accepts TLS only,
//! and the shared gRPC server does the same through tonic. Both use the
//! `ring` provider of rustls.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServerConfig;

/// The certificate chain and key of `config`, read and checked: `None`
/// when TLS is off (both settings empty).
///
/// # Errors
/// When only one of the two is set, a file cannot be read, holds no
/// certificate or no private key (the message names the setting and the
/// file, never the key's content).
pub fn pem_pair(config: &ServerConfig) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let cert = config.tls_cert_file.trim();
    let key = config.tls_key_file.trim();
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => bail!("server.tls_cert_file is set but server.tls_key_file is not"),
        (true, false) => bail!("server.tls_key_file is set but server.tls_cert_file is not"),
        (false, false) => {}
    }
    let read = |setting: &str, path: &str| {
        std::fs::read(Path::new(path)).with_context(|| format!("server.{setting} {path}"))
    };
    let cert_pem = read("tls_cert_file", cert)?;
    let key_pem = read("tls_key_file", key)?;
    let certs = certificates(&cert_pem).with_context(|| format!("server.tls_cert_file {cert}"))?;
    if certs.is_empty() {
        bail!("server.tls_cert_file {cert}: no PEM certificate in the file");
    }
    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow::anyhow!("server.tls_key_file {key}: no usable PEM private key ({e})")
    })?;
    Ok(Some((cert_pem, key_pem)))
}

fn certificates(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("unreadable PEM certificate ({e})"))
}

/// The rustls server configuration of `config` for the HTTP listeners
/// (ALPN `http/1.1`), or `None` when TLS is off.
///
/// # Errors
/// As [`pem_pair`], and when the key does not belong to the certificate.
pub fn http_server_config(
    config: &ServerConfig,
) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let Some((cert_pem, key_pem)) = pem_pair(config)? else {
        return Ok(None);
    };
    let certs = certificates(&cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow::anyhow!("server.tls_key_file: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "server.tls_key_file {} does not fit server.tls_cert_file {}",
                config.tls_key_file, config.tls_cert_file
            )
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(server)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(cert: &str, key: &str) -> ServerConfig {
        ServerConfig {
            tls_cert_file: cert.into(),
            tls_key_file: key.into(),
            ..ServerConfig::default()
        }
    }

    // Proves: TLS is off with both settings empty; one without the other,
    // a missing file, and a file without a certificate or key are errors
    // naming the setting and the path.
    #[test]
    fn settings_are_checked() {
        assert!(http_server_config(&config("", "")).unwrap().is_none());
        let e = pem_pair(&config("/c.pem", "")).unwrap_err().to_string();
        assert!(e.contains("tls_key_file"), "{e}");
        let e = pem_pair(&config("", "/k.pem")).unwrap_err().to_string();
        assert!(e.contains("tls_cert_file"), "{e}");
        let e = format!(
            "{:#}",
            pem_pair(&config("/nonexistent/c.pem", "/k.pem")).unwrap_err()
        );
        assert!(e.contains("server.tls_cert_file /nonexistent/c.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("tributary-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let j = junk.display().to_string();
        let e = format!("{:#}", pem_pair(&config(&j, &j)).unwrap_err());
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
