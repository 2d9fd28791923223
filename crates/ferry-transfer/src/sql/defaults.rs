//! Column defaults into PostgreSQL for the column's chosen type: literals re-typed,
//! `CURRENT_TIMESTAMP`, `datetime('now')` and `strftime(…, 'now')` as PostgreSQL's clock in
//! the text layout SQLite would have written. Anything else is refused with the reason.

use ferry_core::plan::TargetType;
use ferry_core::sqlite_text::{closing, split_top, tokenize, Token};

use crate::ident::literal;
use crate::timestamp;

/// Translates a column DEFAULT (as `pragma_table_xinfo` gives it) for a target type.
/// `Ok(None)` means no default (`NULL`).
pub fn translate_default(text: &str, target: &TargetType) -> Result<Option<String>, String> {
    let mut tokens = tokenize(text);
    while tokens.first() == Some(&Token::LParen) && closing(&tokens, 0) == Some(tokens.len() - 1) {
        tokens = tokens[1..tokens.len() - 1].to_vec();
    }
    let why = || format!("default {text} has no {} equivalent", target.sql());
    match tokens.as_slice() {
        [t] if t.is_word("NULL") => Ok(None),
        [Token::Number(n)] => number_default(&number(n)?, target)
            .ok_or_else(why)
            .map(Some),
        [Token::Op(sign), Token::Number(n)] if sign == "-" || sign == "+" => {
            let n = number(n)?;
            let n = if sign == "-" { format!("-{n}") } else { n };
            number_default(&n, target).ok_or_else(why).map(Some)
        }
        [t] if t.is_word("TRUE") || t.is_word("FALSE") => {
            let one = t.is_word("TRUE");
            match target {
                TargetType::Boolean => Ok(Some(one.to_string())),
                _ => number_default(if one { "1" } else { "0" }, target)
                    .ok_or_else(why)
                    .map(Some),
            }
        }
        // SQLite reads a double-quoted default as a string when it names no column.
        [Token::Str(s)] | [Token::Quoted(s)] => text_default(s, target).ok_or_else(why).map(Some),
        [Token::Blob(b)] => match target {
            TargetType::Bytea => Ok(Some(format!("'\\x{b}'::bytea"))),
            TargetType::MixedJsonb => {
                Ok(Some(literal(&format!("{{\"$blob\":\"{b}\"}}")) + "::jsonb"))
            }
            _ => Err(why()),
        },
        [t] if t.is_word("CURRENT_TIMESTAMP") => now_default(target, "%Y-%m-%d %H:%M:%S", false)
            .ok_or_else(why)
            .map(Some),
        [t] if t.is_word("CURRENT_DATE") => now_default(target, "%Y-%m-%d", false)
            .ok_or_else(why)
            .map(Some),
        [t] if t.is_word("CURRENT_TIME") => now_default(target, "%H:%M:%S", false)
            .ok_or_else(why)
            .map(Some),
        [Token::Word(f), Token::LParen, args @ .., Token::RParen] => {
            let args: Vec<&[Token]> = split_top(args);
            let strs: Option<Vec<&str>> = args
                .iter()
                .map(|a| match a {
                    [Token::Str(s)] => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            let strs = strs.ok_or_else(why)?;
            let (format, modifiers) = match (f.to_lowercase().as_str(), strs.as_slice()) {
                ("datetime", ["now", rest @ ..]) => ("%Y-%m-%d %H:%M:%S", rest),
                ("date", ["now", rest @ ..]) => ("%Y-%m-%d", rest),
                ("time", ["now", rest @ ..]) => ("%H:%M:%S", rest),
                ("strftime", [fmt, "now", rest @ ..]) => (*fmt, rest),
                _ => return Err(why()),
            };
            let local = match modifiers {
                [] => false,
                [m] if m.eq_ignore_ascii_case("localtime") => true,
                [m] if m.eq_ignore_ascii_case("utc") => false,
                _ => return Err(why()),
            };
            now_default(target, format, local).ok_or_else(why).map(Some)
        }
        _ => Err(format!(
            "default {text} is an expression ferry does not translate"
        )),
    }
}

fn number_default(n: &str, target: &TargetType) -> Option<String> {
    let is_int = n
        .trim_start_matches(['-', '+'])
        .bytes()
        .all(|b| b.is_ascii_digit());
    match target {
        TargetType::Boolean => match n {
            "0" => Some("false".into()),
            "1" => Some("true".into()),
            _ => None,
        },
        TargetType::Smallint | TargetType::Integer | TargetType::Bigint => {
            is_int.then(|| n.to_owned())
        }
        TargetType::DoublePrecision | TargetType::Numeric => {
            n.parse::<f64>().ok().map(|_| n.to_owned())
        }
        TargetType::Text => Some(literal(n)),
        TargetType::Json | TargetType::Jsonb | TargetType::MixedJsonb => {
            let v = if is_int {
                n.to_owned()
            } else {
                crate::encode::real_decimal(n.parse::<f64>().ok()?)
            };
            Some(format!("{}::jsonb", literal(&v)))
        }
        _ => None,
    }
}

fn text_default(s: &str, target: &TargetType) -> Option<String> {
    match target {
        TargetType::Text => Some(literal(s)),
        TargetType::Boolean => match s.to_ascii_lowercase().as_str() {
            "0" | "false" => Some("false".into()),
            "1" | "true" => Some("true".into()),
            _ => None,
        },
        TargetType::Smallint | TargetType::Integer | TargetType::Bigint => {
            s.trim().parse::<i64>().ok().map(|v| v.to_string())
        }
        TargetType::DoublePrecision | TargetType::Numeric => {
            s.trim().parse::<f64>().ok().map(|_| s.trim().to_owned())
        }
        TargetType::Date | TargetType::Timestamp | TargetType::Timestamptz => {
            let t = timestamp::parse(s.as_bytes())?;
            if *target == TargetType::Date && !t.date_only() {
                return None;
            }
            Some(format!("{}::{}", literal(s), target.sql()))
        }
        TargetType::Json | TargetType::Jsonb => crate::json::check(s.as_bytes())
            .ok()
            .map(|()| format!("{}::{}", literal(s), target.sql())),
        TargetType::MixedJsonb => Some(format!("to_jsonb({}::text)", literal(s))),
        TargetType::Uuid => Some(format!("{}::uuid", literal(s))),
        TargetType::Bytea => Some(format!("convert_to({}, 'UTF8')", literal(s))),
        TargetType::RealArray => None,
    }
}

/// A default of "now" for the target type; text targets get SQLite's text format.
fn now_default(target: &TargetType, sqlite_format: &str, local: bool) -> Option<String> {
    let stamp = if local {
        "LOCALTIMESTAMP"
    } else {
        "(now() AT TIME ZONE 'UTC')"
    };
    match target {
        TargetType::Timestamptz => Some("now()".into()),
        TargetType::Timestamp => Some(stamp.into()),
        TargetType::Date => Some(format!("({stamp})::date")),
        TargetType::Text => Some(format!(
            "to_char({stamp}, {})",
            literal(&to_char_format(sqlite_format)?)
        )),
        TargetType::MixedJsonb => Some(format!(
            "to_jsonb(to_char({stamp}, {}))",
            literal(&to_char_format(sqlite_format)?)
        )),
        _ => None,
    }
}

/// A `strftime` format as a PostgreSQL `to_char` format.
pub fn to_char_format(fmt: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = fmt.chars();
    let mut literal_run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if !run.is_empty() {
            out.push('"');
            out.push_str(run);
            out.push('"');
            run.clear();
        }
    };
    while let Some(c) = chars.next() {
        if c == '%' {
            let spec = match chars.next()? {
                'Y' => "YYYY",
                'm' => "MM",
                'd' => "DD",
                'H' => "HH24",
                'M' => "MI",
                'S' => "SS",
                'f' => "SS.MS",
                'j' => "DDD",
                '%' => {
                    literal_run.push('%');
                    continue;
                }
                _ => return None,
            };
            flush(&mut out, &mut literal_run);
            out.push_str(spec);
        } else if c.is_alphanumeric() || c == '"' || c == '\\' {
            if c == '"' || c == '\\' {
                return None;
            }
            literal_run.push(c);
        } else {
            flush(&mut out, &mut literal_run);
            out.push(c);
        }
    }
    flush(&mut out, &mut literal_run);
    Some(out)
}

pub fn number(n: &str) -> Result<String, String> {
    if let Some(hex) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
        let v =
            u64::from_str_radix(hex, 16).map_err(|_| format!("hex literal {n} out of range"))?;
        return Ok((v as i64).to_string());
    }
    if n.starts_with('.') {
        return Ok(format!("0{n}"));
    }
    Ok(n.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        use TargetType::*;
        assert_eq!(translate_default("0", &Bigint).unwrap().unwrap(), "0");
        assert_eq!(translate_default("'0'", &Bigint).unwrap().unwrap(), "0");
        assert_eq!(translate_default("\"\"", &Text).unwrap().unwrap(), "''");
        assert_eq!(
            translate_default("'unknown'", &Text).unwrap().unwrap(),
            "'unknown'"
        );
        assert_eq!(translate_default("NULL", &Text).unwrap(), None);
        assert_eq!(translate_default("-1", &Bigint).unwrap().unwrap(), "-1");
        assert_eq!(translate_default("1", &Boolean).unwrap().unwrap(), "true");
        assert_eq!(
            translate_default("CURRENT_TIMESTAMP", &Timestamptz)
                .unwrap()
                .unwrap(),
            "now()"
        );
        assert_eq!(
            translate_default("(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", &Text)
                .unwrap()
                .unwrap(),
            "to_char((now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        );
        assert_eq!(
            translate_default("datetime('now','localtime')", &Timestamp)
                .unwrap()
                .unwrap(),
            "LOCALTIMESTAMP"
        );
        assert!(translate_default("0", &Timestamptz).is_err());
        assert!(translate_default("abs(random())", &Bigint).is_err());
    }
}
