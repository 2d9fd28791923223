//! Markdown as the import reads it: YAML front matter split from the body and turned into
//! JSON, and the first heading.

use serde_json::Value;

use crate::report::{Reason, ReasonKind};

/// Splits YAML front matter (`---` … `---` or `...`) from the body.
pub(crate) fn split_front_matter(text: &str) -> Result<(Option<Value>, &str), Reason> {
    let mut lines = text.split_inclusive('\n');
    let Some(first) = lines.next() else {
        return Ok((None, text));
    };
    if first.trim_end_matches(['\r', '\n']) != "---" {
        return Ok((None, text));
    }
    let mut offset = first.len();
    let yaml_start = offset;
    for line in lines {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare == "---" || bare == "..." {
            let yaml = &text[yaml_start..offset];
            let body = &text[offset + line.len()..];
            return Ok((Some(parse_yaml(yaml)?), body));
        }
        offset += line.len();
    }
    Err(Reason::new(
        ReasonKind::InvalidFrontMatter,
        "the front matter opened on line 1 is never closed by a `---` line",
    )
    .at(1, 1))
}

fn parse_yaml(yaml: &str) -> Result<Value, Reason> {
    use yaml_rust2::YamlLoader;
    let docs = YamlLoader::load_from_str(yaml).map_err(|e| {
        let m = e.marker();
        // The YAML starts on line 2 of the file, after the opening `---`.
        Reason::new(
            ReasonKind::InvalidFrontMatter,
            format!("the YAML front matter does not parse: {}", e.info()),
        )
        .at(m.line() as u64 + 1, m.col() as u64 + 1)
    })?;
    let value = docs.first().map_or(Value::Null, yaml_to_json);
    match value {
        Value::Object(_) | Value::Null => Ok(value),
        _ => Err(Reason::new(
            ReasonKind::InvalidFrontMatter,
            "the front matter is not a mapping of keys to values",
        )
        .at(2, 1)),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    {
        match y {
            Yaml::Real(s) => s
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::String(s.clone()), Value::Number),
            Yaml::Integer(i) => Value::from(*i),
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
            Yaml::Hash(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Yaml::String(s) | Yaml::Real(s) => s.clone(),
                            Yaml::Integer(i) => i.to_string(),
                            Yaml::Boolean(b) => b.to_string(),
                            Yaml::Null => "null".to_owned(),
                            other => format!("{other:?}"),
                        };
                        (key, yaml_to_json(v))
                    })
                    .collect(),
            ),
            Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
        }
    }
}

pub(crate) fn first_heading(body: &str) -> Option<&str> {
    body.lines().find_map(|l| {
        let t = l.trim_start_matches('#');
        (t.len() < l.len() && l.len() - t.len() <= 6 && t.starts_with(' ')).then(|| t.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter() {
        let (fm, body) = split_front_matter(
            "---\r\ncreated: 2025-09-13T04:03:23Z\nversion: 1.1\ntags: [a, b]\n---\r\n# Title\nx",
        )
        .unwrap();
        assert_eq!(
            fm.unwrap(),
            serde_json::json!({"created": "2025-09-13T04:03:23Z", "version": 1.1, "tags": ["a", "b"]})
        );
        assert_eq!(body, "# Title\nx");
        assert_eq!(first_heading(body), Some("Title"));
        let (fm, body) = split_front_matter("# No front matter\n").unwrap();
        assert!(fm.is_none() && body.starts_with("# No"));
        let r = split_front_matter("---\ntitle: x\n").unwrap_err();
        assert_eq!(r.kind, ReasonKind::InvalidFrontMatter);
        let r = split_front_matter("---\ntitle: [unclosed\nother: 1\n---\nbody").unwrap_err();
        assert_eq!(r.kind, ReasonKind::InvalidFrontMatter);
        assert!(r.line.is_some_and(|l| l >= 2), "{r:?}");
    }
}
