//! Checksums of migration files over normalised text, so a checkout with CRLF line endings
//! or an editor that trims trailing whitespace never looks like drift (sqlx #2659).

use sha2::{Digest, Sha256};

/// The name recorded in the ledger beside every checksum. A future change to the
/// normalisation gets a new name, and old rows keep being checked with the old rules.
pub const ALGORITHM: &str = "sha256-normalised-v1";

/// The text a checksum is computed over: a leading byte-order mark dropped, CRLF and lone
/// CR turned into LF, trailing whitespace dropped from every line, and trailing blank lines
/// dropped; one final newline.
pub fn normalise(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Hex SHA-256 of [`normalise`]d text.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(normalise(text).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_and_trailing_whitespace_do_not_change_the_checksum() {
        let unix = "CREATE TABLE t (id integer);\nINSERT INTO t VALUES (1);\n";
        let windows = "CREATE TABLE t (id integer);  \r\nINSERT INTO t VALUES (1);\r\n\r\n";
        let old_mac = "\u{feff}CREATE TABLE t (id integer);\rINSERT INTO t VALUES (1);";
        assert_eq!(checksum(unix), checksum(windows));
        assert_eq!(checksum(unix), checksum(old_mac));
    }

    #[test]
    fn any_real_change_changes_the_checksum() {
        let a = "CREATE TABLE t (id integer);\n";
        assert_ne!(checksum(a), checksum("CREATE TABLE t (id bigint);\n"));
        // Leading whitespace is content (it can be inside a string literal).
        assert_ne!(checksum(a), checksum(" CREATE TABLE t (id integer);\n"));
        assert_ne!(checksum("SELECT 'a  ';\n"), checksum("SELECT 'a ';\n"));
    }
}
