//! The one redaction function: a PostgreSQL password never reaches a log line, a report or an
//! error message.
//!
//! [`redact`] masks the password of every `scheme://user:password@host` URL and every
//! `password=…` key/value pair in a text, and then every secret registered with
//! [`register_secret`] (the config loader registers the password of `postgres.url`, so an
//! error message from a driver that echoes it is scrubbed too). The logging layer and the
//! command line's error printer pass everything through it.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers a secret so that [`redact`] masks it wherever it appears. Empty strings and
/// strings shorter than 3 bytes are ignored (masking every `a` would make logs unreadable;
/// such a password is not a secret anyway).
pub fn register_secret(secret: &str) {
    if secret.len() < 3 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_owned());
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Returns `text` with every password masked as `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if text.contains("://") {
        out = Cow::Owned(mask_url_passwords(&out));
    }
    if contains_ignore_ascii_case(&out, "password=") {
        out = Cow::Owned(mask_password_params(&out));
    }
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
        // A percent-encoded form of the secret is just as secret.
        let encoded = percent_encode(secret);
        if encoded != *secret && out.contains(encoded.as_str()) {
            out = Cow::Owned(out.replace(encoded.as_str(), MASK));
        }
    }
    out
}

/// Returns the password of a `postgres://user:password@host/db` URL, percent-decoded, if
/// it has one (also from a `password=` query parameter).
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(at) = authority.rfind('@') {
        if let Some((_, pass)) = authority[..at].split_once(':') {
            if !pass.is_empty() {
                return Some(percent_decode(pass));
            }
        }
    }
    let query = rest.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.eq_ignore_ascii_case("password") && !v.is_empty()).then(|| percent_decode(v))
    })
}

/// A PostgreSQL URL whose `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL and registers its password with [`register_secret`].
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        if let Some(pass) = url_password(&url) {
            register_secret(&pass);
        }
        Self(url)
    }

    /// The URL with its password, for opening a connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password masked.
    pub fn redacted(&self) -> String {
        redact(&self.0).into_owned()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.redacted())
    }
}

impl serde::Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first character that cannot be part of it.
        let end = tail
            .find(|c: char| {
                c == '/'
                    || c == '?'
                    || c == '#'
                    || c.is_whitespace()
                    || c == '"'
                    || c == '\''
                    || c == '`'
                    || c == '>'
                    || c == ')'
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => match authority[..at].split_once(':') {
                Some((user, pass)) if !pass.is_empty() => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                    out.push_str(&authority[at..]);
                }
                _ => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn mask_password_params(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password=") {
        let start = i + found + "password=".len();
        out.push_str(&text[i..start]);
        let end = text[start..]
            .find(|c: char| {
                c == '&' || c.is_whitespace() || c == '"' || c == '\'' || c == ',' || c == ')'
            })
            .map_or(text.len(), |e| start + e);
        if end > start {
            out.push_str(MASK);
        }
        i = end;
    }
    out.push_str(&text[i..]);
    out
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_url_password_and_keeps_the_rest() {
        assert_eq!(
            redact("connect postgres://app:s3cr%40t@db:5432/x?sslmode=require failed"),
            "connect postgres://app:***@db:5432/x?sslmode=require failed"
        );
        assert_eq!(
            redact("postgresql://only-user@db/x"),
            "postgresql://only-user@db/x"
        );
        assert_eq!(redact("no url here"), "no url here");
    }

    #[test]
    fn masks_password_parameters() {
        assert_eq!(
            redact("host=db user=app password=topsecret dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            redact("postgres://db/x?user=app&Password=topsecret&sslmode=off"),
            "postgres://db/x?user=app&Password=***&sslmode=off"
        );
    }

    #[test]
    fn masks_registered_secrets_anywhere() {
        let url = SecretUrl::new("postgres://app:Pl%40in-Secret-42@db/x");
        assert_eq!(
            url_password(url.expose()).as_deref(),
            Some("Pl@in-Secret-42")
        );
        // A driver that echoes the decoded password in its own words.
        let msg = "password authentication failed: got 'Pl@in-Secret-42'";
        assert!(!redact(msg).contains("Pl@in-Secret-42"), "{}", redact(msg));
        assert_eq!(format!("{url}"), "postgres://app:***@db/x");
        assert!(!format!("{url:?}").contains("Pl"));
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            "\"postgres://app:***@db/x\""
        );
    }

    #[test]
    fn percent_decoding_handles_a_trailing_percent() {
        assert_eq!(percent_decode("ab%"), "ab%");
        assert_eq!(percent_decode("a%41"), "aA");
    }
}
