//! The process's TLS crypto provider.
//!
//! The build links two rustls providers: `ring` (chosen here, for
//! PostgreSQL through sqlx and for Redis) and `aws-lc-rs` (pulled in by the
//! S3 client). With both present rustls cannot pick a default on its own,
//! and a library that asks for the default (the redis crate does) would
//! fail. [`install_crypto_provider`] settles it once per process.

use std::sync::Once;

/// Makes `ring` the process-wide rustls provider, once; a provider some
/// other code installed first is kept. Called by every adapter that opens
/// TLS connections, so callers need not remember it.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means a provider is installed already: that one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
