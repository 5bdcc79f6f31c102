//! URL helpers shared by every adapter.

/// `url` with any password replaced by `***`, for logs and error messages.
/// Input that does not parse as a URL is returned unchanged except that an
/// `user:pass@` part, if recognisable, is masked.
pub fn redact(raw: &str) -> String {
    if let Ok(mut u) = url::Url::parse(raw) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    match (raw.find("://"), raw.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &raw[s + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &raw[..s + 3], &raw[at..]),
                None => raw.to_string(),
            }
        }
        _ => raw.to_string(),
    }
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

    #[test]
    fn reads_scheme() {
        assert_eq!(scheme("S3://bucket/p").as_deref(), Some("s3"));
        assert_eq!(scheme("nothing"), None);
    }
}
