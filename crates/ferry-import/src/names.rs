//! File names as the ledger records them: text that names exactly one file and turns back
//! into that file's exact bytes, whatever the bytes are.
//!
//! A name that is valid UTF-8 and holds no `\x` is kept as it is, so every ordinary name
//! reads the same in the ledger as on disk and in a backup manifest. Any other name is
//! escaped: each byte that is not part of valid UTF-8 becomes `\xHH`, and each backslash
//! `\\`. An escaped name always contains `\x` (an escape, or an escaped backslash followed
//! by `x`) and a name kept as it is never does, so no two names share one text: `x\xFF.json`
//! (the bytes `x`, 0xFF, `.json`), `x\xFE.json` and `x\u{FFFD}.json` (a valid name with a
//! replacement character) are three ledger paths. A file name is data; nothing may make two
//! files one.

use std::ffi::OsStr;

/// One path component as the ledger text and whether its bytes are not UTF-8.
pub fn encode_component(name: &OsStr) -> (String, bool) {
    let bytes = os_bytes(name);
    let utf8 = std::str::from_utf8(&bytes).ok();
    match utf8 {
        Some(text) if !text.contains("\\x") => (text.to_owned(), false),
        _ => (escape(&bytes), utf8.is_none()),
    }
}

/// The ledger text of a `/`-separated path whose components are valid UTF-8 (a backup
/// manifest's), so it can be compared with ledger paths.
pub fn encode_utf8_path(path: &str) -> String {
    if !path.contains("\\x") {
        return path.to_owned();
    }
    path.split('/')
        .map(|c| encode_component(OsStr::new(c)).0)
        .collect::<Vec<_>>()
        .join("/")
}

/// The exact bytes of a ledger path (the inverse of the encoding, component by component).
pub fn decode(text: &str) -> Vec<u8> {
    text.split('/')
        .map(decode_component)
        .collect::<Vec<_>>()
        .join(&b'/')
}

fn decode_component(text: &str) -> Vec<u8> {
    if !text.contains("\\x") {
        return text.as_bytes().to_vec();
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x')) => {
                let hex = text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 4;
                    }
                    // Not an escape this module writes; kept as written.
                    None => {
                        out.push(b'\\');
                        i += 1;
                    }
                }
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02X}"));
        }
    }
    out
}

#[cfg(unix)]
fn os_bytes(name: &OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().to_vec()
}

#[cfg(not(unix))]
fn os_bytes(name: &OsStr) -> Vec<u8> {
    // Names elsewhere are UTF-16; one that is not valid Unicode is rare enough to be shown
    // with replacement characters, and flagged as not UTF-8 by its caller.
    name.to_string_lossy().into_owned().into_bytes()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn enc(bytes: &[u8]) -> (String, bool) {
        encode_component(OsStr::from_bytes(bytes))
    }

    #[test]
    fn every_name_round_trips_and_no_two_names_share_a_text() {
        let names: Vec<&[u8]> = vec![
            b"x\xff.json",
            b"x\xfe.json",
            "x\u{fffd}.json".as_bytes(),
            b"x\\xFF.json",
            b"x\\\\xFF.json",
            b"plain.json",
            b"back\\slash.json",
            b"\\x",
            b"\xc3",
            b"\xc3\xa9t\xe9.md",
        ];
        let mut texts = std::collections::HashSet::new();
        for name in &names {
            let (text, _) = enc(name);
            assert_eq!(decode(&text), *name, "{text}");
            assert!(texts.insert(text.clone()), "{text} names two files");
        }
        assert_eq!(enc(b"x\xff.json"), ("x\\xFF.json".into(), true));
        assert_eq!(
            enc("x\u{fffd}.json".as_bytes()),
            ("x\u{fffd}.json".into(), false)
        );
        assert_eq!(enc(b"back\\slash.json"), ("back\\slash.json".into(), false));
        assert_eq!(enc(b"x\\xFF.json"), ("x\\\\xFF.json".into(), false));
        assert_eq!(encode_utf8_path("d/x\\xFF.json"), "d/x\\\\xFF.json");
        assert_eq!(encode_utf8_path("d/plain.json"), "d/plain.json");
        assert_eq!(decode("d\\xFF/a.json"), b"d\xff/a.json");
    }
}
