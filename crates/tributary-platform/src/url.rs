//! URL helpers shared by every adapter, and the one redaction rule of the
//! project: [`redact`] for URLs (userinfo password, secret-named query
//! parameters) and [`is_secret_name`] / [`redact_value`] for named options
//! (librdkafka properties, headers). Every `Debug` of a settings type, every
//! startup log line and every connect error goes through them.

/// Replaces every secret.
pub const MASK: &str = "***";

/// Whether an option or query parameter of this name holds a secret
/// (case-insensitive): passwords, secrets, tokens, keys, credentials,
/// signatures, and SASL/JAAS configuration (which embeds a password).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const WORDS: [&str; 13] = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "credential",
        "jaas",
        "sasl.oauthbearer.config",
        "signature",
        "authorization",
        "key",
        "sig",
        "auth",
    ];
    WORDS.iter().any(|w| {
        if *w == "sig" || *w == "key" || *w == "auth" {
            // Whole words only: `sig`, `x-amz-signature`, `api_key`, `ssl.key.location`
            // (a path, harmless but masked), `auth_token`; not `keyspace`-like accidents.
            n.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|part| part == *w)
        } else {
            n.contains(w)
        }
    })
}

/// `value`, or [`MASK`] when `name` names a secret.
pub fn redact_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        MASK
    } else {
        value
    }
}

/// `raw` with any userinfo password and the value of every secret-named
/// query parameter ([`is_secret_name`]) replaced by `***`, for logs, error
/// messages and `tributary config`. Input that does not parse as a URL (a
/// Kafka broker list, `host:port`) is masked the same way as far as its
/// shape is recognisable.
pub fn redact(raw: &str) -> String {
    if let Ok(mut u) = url::Url::parse(raw) {
        if u.cannot_be_a_base() {
            return redact_loose(raw);
        }
        if u.password().is_some() {
            let _ = u.set_password(Some(MASK));
        }
        if u.query().is_some() {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = redact_value(&k, &v).to_owned();
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return u.to_string();
    }
    redact_loose(raw)
}

fn redact_loose(raw: &str) -> String {
    let (head, query) = match raw.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (raw, None),
    };
    let mut out = match (head.find("://"), head.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &head[s + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:{MASK}{}", &head[..s + 3], &head[at..]),
                None => head.to_string(),
            }
        }
        _ => head.to_string(),
    };
    if let Some(q) = query {
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}={MASK}"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

/// The scheme of `raw` (`postgres`, `kafka`, ...), lowercased, or `None`.
pub fn scheme(raw: &str) -> Option<String> {
    raw.split_once("://").map(|(s, _)| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("kafka://u:p@a:1,b:2"), "kafka://u:***@a:1,b:2");
    }

    // Proves secrets in query strings (libpq `password=`, S3 presigned signatures, tokens)
    // are masked, while the rest of the URL stays readable.
    #[test]
    fn masks_secret_query_parameters() {
        let r = redact("postgres://app@db:5432/x?sslmode=require&password=hunter2");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(
            r.contains("sslmode=require") && r.contains("password=***"),
            "{r}"
        );
        let r = redact("https://s3/b/o?X-Amz-Signature=abc123&X-Amz-Credential=AKIA1&x=1");
        assert!(
            !r.contains("abc123") && !r.contains("AKIA1") && r.contains("x=1"),
            "{r}"
        );
        let r = redact("http://user:hunter2@collector:4317/?token=t0k");
        assert!(!r.contains("hunter2") && !r.contains("t0k"), "{r}");
        // Not a URL: a broker list with a query.
        let r = redact("kafka://u:pw@a:1,b:2?sasl.password=pw2&acks=all");
        assert!(
            !r.contains("pw@") && !r.contains("pw2") && r.contains("acks=all"),
            "{r}"
        );
    }

    // Proves the option-name rule: SASL/JAAS, passwords, keys and tokens are secret,
    // ordinary tuning options are not.
    #[test]
    fn secret_names() {
        for name in [
            "sasl.password",
            "sasl.jaas.config",
            "ssl.key.password",
            "ssl.key.pem",
            "api_key",
            "Authorization",
            "auth_token",
            "X-Amz-Signature",
            "sasl.oauthbearer.config",
        ] {
            assert!(is_secret_name(name), "{name} must be secret");
        }
        for name in [
            "acks",
            "linger.ms",
            "security.protocol",
            "sasl.mechanism",
            "sslmode",
            "keyspace",
        ] {
            assert!(!is_secret_name(name), "{name} is not a secret");
        }
        assert_eq!(
            redact_value("sasl.jaas.config", "x required password=\"p\";"),
            MASK
        );
        assert_eq!(redact_value("acks", "all"), "all");
    }

    #[test]
    fn reads_scheme() {
        assert_eq!(scheme("S3://bucket/p").as_deref(), Some("s3"));
        assert_eq!(scheme("nothing"), None);
    }
}
