//! Exact decimal numbers for `numeric` columns and JSON numbers: compared by value, so `1.50`,
//! `1.5` and `15e-1` are the same number, and nothing goes through a binary float.

use std::fmt::Write as _;

/// A decimal number normalised so that equal values have equal representations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dec {
    NaN,
    PosInf,
    NegInf,
    /// `digits × 10^exp`; `digits` are ASCII digits without leading or trailing zeros, and
    /// empty for zero (which is never negative).
    Finite {
        neg: bool,
        digits: Vec<u8>,
        exp: i64,
    },
}

impl Dec {
    /// Builds a normalised value from raw parts (digits may have leading/trailing zeros).
    pub(crate) fn from_parts(neg: bool, digits: &[u8], exp: i64) -> Dec {
        let start = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len());
        let digits = &digits[start..];
        let end = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
        let trailing = (digits.len() - end) as i64;
        let digits = &digits[..end];
        if digits.is_empty() {
            return Dec::Finite {
                neg: false,
                digits: Vec::new(),
                exp: 0,
            };
        }
        Dec::Finite {
            neg,
            digits: digits.to_vec(),
            exp: exp.saturating_add(trailing),
        }
    }

    pub(crate) fn from_i64(v: i64) -> Dec {
        let text = v.unsigned_abs().to_string();
        Dec::from_parts(v < 0, text.as_bytes(), 0)
    }

    /// The shortest decimal that reads back as the same double (what PostgreSQL's `numeric`
    /// holds for a REAL written exactly).
    pub(crate) fn from_f64(v: f64) -> Dec {
        if v.is_nan() {
            return Dec::NaN;
        }
        if v.is_infinite() {
            return if v > 0.0 { Dec::PosInf } else { Dec::NegInf };
        }
        // `{:e}` prints the shortest round-trip digits: "1.5e-7", "-3e300".
        let text = format!("{v:e}");
        Dec::parse(text.as_bytes()).unwrap_or(Dec::NaN)
    }

    /// Parses `[+-]digits[.digits][e[+-]digits]` (also `.5` and `5.`); `NaN`, `Infinity`
    /// and `-Infinity` as PostgreSQL spells them. Surrounding ASCII spaces are ignored.
    pub(crate) fn parse(text: &[u8]) -> Option<Dec> {
        let text = trim_ascii(text);
        match text {
            b"NaN" | b"nan" => return Some(Dec::NaN),
            b"Infinity" | b"+Infinity" | b"inf" | b"+inf" => return Some(Dec::PosInf),
            b"-Infinity" | b"-inf" => return Some(Dec::NegInf),
            _ => {}
        }
        let (neg, rest) = match text.first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let mut digits = Vec::with_capacity(rest.len());
        let mut i = 0;
        let mut seen_digit = false;
        while i < rest.len() && rest[i].is_ascii_digit() {
            digits.push(rest[i]);
            i += 1;
            seen_digit = true;
        }
        let mut exp: i64 = 0;
        if i < rest.len() && rest[i] == b'.' {
            i += 1;
            while i < rest.len() && rest[i].is_ascii_digit() {
                digits.push(rest[i]);
                exp -= 1;
                i += 1;
                seen_digit = true;
            }
        }
        if !seen_digit {
            return None;
        }
        if i < rest.len() && (rest[i] == b'e' || rest[i] == b'E') {
            i += 1;
            let (eneg, erest) = match rest.get(i) {
                Some(b'-') => (true, i + 1),
                Some(b'+') => (false, i + 1),
                _ => (false, i),
            };
            i = erest;
            let start = i;
            let mut e: i64 = 0;
            while i < rest.len() && rest[i].is_ascii_digit() {
                e = e
                    .saturating_mul(10)
                    .saturating_add(i64::from(rest[i] - b'0'));
                i += 1;
            }
            if i == start {
                return None;
            }
            exp = exp.saturating_add(if eneg { -e } else { e });
        }
        if i != rest.len() {
            return None;
        }
        Some(Dec::from_parts(neg, &digits, exp))
    }

    /// Decodes PostgreSQL's binary `numeric`: ndigits, weight, sign, dscale, then base-10000
    /// digits.
    pub(crate) fn from_pg_binary(bytes: &[u8]) -> Option<Dec> {
        if bytes.len() < 8 {
            return None;
        }
        let ndigits = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
        let weight = i64::from(i16::from_be_bytes([bytes[2], bytes[3]]));
        let sign = u16::from_be_bytes([bytes[4], bytes[5]]);
        match sign {
            0xC000 => return Some(Dec::NaN),
            0xD000 => return Some(Dec::PosInf),
            0xF000 => return Some(Dec::NegInf),
            0x0000 | 0x4000 => {}
            _ => return None,
        }
        if bytes.len() != 8 + 2 * ndigits {
            return None;
        }
        let mut digits = Vec::with_capacity(ndigits * 4);
        for k in 0..ndigits {
            let d = u16::from_be_bytes([bytes[8 + 2 * k], bytes[9 + 2 * k]]);
            if d > 9999 {
                return None;
            }
            let _ = write!(DigitSink(&mut digits), "{d:04}");
        }
        // The last base-10000 digit has weight `weight - ndigits + 1`.
        let exp = (weight - ndigits as i64 + 1) * 4;
        Some(Dec::from_parts(sign == 0x4000, &digits, exp))
    }

    /// The canonical text: `0`, `-12.5`, `1.5e-40` (scientific outside ±30 digits),
    /// `NaN`, `Infinity`, `-Infinity`.
    pub(crate) fn canonical(&self) -> String {
        match self {
            Dec::NaN => "NaN".into(),
            Dec::PosInf => "Infinity".into(),
            Dec::NegInf => "-Infinity".into(),
            Dec::Finite { digits, .. } if digits.is_empty() => "0".into(),
            Dec::Finite { neg, digits, exp } => {
                let mut out = String::with_capacity(digits.len() + 8);
                if *neg {
                    out.push('-');
                }
                let n = digits.len() as i64;
                // Position of the decimal point relative to the first digit.
                let point = n + exp;
                let ds = std::str::from_utf8(digits).unwrap_or("0");
                if *exp >= 0 && point <= 30 {
                    out.push_str(ds);
                    out.extend(std::iter::repeat_n('0', *exp as usize));
                } else if *exp < 0 && point > 0 {
                    let (int, frac) = ds.split_at(point as usize);
                    out.push_str(int);
                    out.push('.');
                    out.push_str(frac);
                } else if *exp < 0 && point > -30 {
                    out.push_str("0.");
                    out.extend(std::iter::repeat_n('0', (-point) as usize));
                    out.push_str(ds);
                } else {
                    out.push_str(&ds[..1]);
                    if ds.len() > 1 {
                        out.push('.');
                        out.push_str(&ds[1..]);
                    }
                    let _ = write!(out, "e{}", point - 1);
                }
                out
            }
        }
    }
}

struct DigitSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for DigitSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

pub(crate) fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        Dec::parse(s.as_bytes())
            .map(|d| d.canonical())
            .unwrap_or_else(|| "invalid".into())
    }

    #[test]
    fn equal_values_have_one_form() {
        assert_eq!(c("1.50"), "1.5");
        assert_eq!(c("15e-1"), "1.5");
        assert_eq!(c("+001.5000"), "1.5");
        assert_eq!(c("-0.000"), "0");
        assert_eq!(c("100"), "100");
        assert_eq!(c("1e2"), "100");
        assert_eq!(c("0.001"), "0.001");
        assert_eq!(c(".5"), "0.5");
        assert_eq!(c("5."), "5");
        assert_eq!(c("1e300"), "1e300");
        assert_eq!(c("-1.25e-40"), "-1.25e-40");
        assert_eq!(c("abc"), "invalid");
        assert_eq!(c("1e"), "invalid");
        assert_eq!(c("."), "invalid");
    }

    #[test]
    fn floats_become_their_shortest_decimal() {
        assert_eq!(Dec::from_f64(0.1 + 0.2).canonical(), "0.30000000000000004");
        assert_eq!(Dec::from_f64(-0.0).canonical(), "0");
        assert_eq!(Dec::from_f64(1.5e-7).canonical(), "0.00000015");
        assert_eq!(Dec::from_f64(f64::INFINITY), Dec::PosInf);
        assert_eq!(Dec::from_i64(i64::MIN).canonical(), "-9223372036854775808");
    }

    #[test]
    fn postgres_binary_numeric() {
        // 12.50 as PostgreSQL sends it: ndigits 2, weight 0, sign +, dscale 2, [12, 5000].
        let bytes = [0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88];
        assert_eq!(Dec::from_pg_binary(&bytes).unwrap().canonical(), "12.5");
        // -0.0001: ndigits 1, weight -1, sign -, [1].
        let bytes = [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1];
        assert_eq!(Dec::from_pg_binary(&bytes).unwrap().canonical(), "-0.0001");
    }
}
