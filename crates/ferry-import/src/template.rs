//! Column templates: text with `{variable}` placeholders filled from the glob's captures and
//! the file's metadata (`"{path}"`, `"{agent}"`, `"{stem}#{record}"`).
//!
//! A template whose variables are all available renders to text; when one is not (no
//! heading in the Markdown, no member name outside an object of records), it renders to
//! nothing, so the next source of the column is tried. `{{` and `}}` are literal braces.

/// Variables every rule can use besides its glob's captures.
pub const BUILTIN_VARS: &[&str] = &[
    "path", "name", "stem", "ext", "dir", "kind", "format", "record", "member", "heading", "body",
    "mtime", "size", "sha256",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    text: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Capture(usize),
    Builtin(&'static str),
}

/// What a template can refer to, for one record.
#[derive(Debug, Default, Clone)]
pub(crate) struct Vars<'a> {
    pub captures: &'a [(String, String)],
    pub path: &'a str,
    pub kind: &'a str,
    pub format: &'a str,
    pub record: u64,
    pub member: Option<&'a str>,
    pub heading: Option<&'a str>,
    pub body: Option<&'a str>,
    pub mtime: Option<&'a str>,
    pub size: u64,
    pub sha256: Option<&'a str>,
}

impl Template {
    /// Parses a template; `captures` are the names the rule's glob defines.
    pub fn new(text: &str, captures: &[String]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("`{text}`: `{{` without a closing `}}`")),
                        }
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    if let Some(i) = captures.iter().position(|c| *c == name) {
                        pieces.push(Piece::Capture(i));
                    } else if let Some(b) = BUILTIN_VARS.iter().find(|b| **b == name) {
                        pieces.push(Piece::Builtin(b));
                    } else {
                        let mut known: Vec<String> =
                            captures.iter().map(|c| format!("{{{c}}}")).collect();
                        known.extend(BUILTIN_VARS.iter().map(|b| format!("{{{b}}}")));
                        return Err(format!(
                            "`{text}`: unknown variable `{{{name}}}` (the glob's captures and the built-ins are: {})",
                            known.join(", ")
                        ));
                    }
                }
                '}' => {
                    return Err(format!(
                        "`{text}`: `}}` without an opening `{{` (write `}}}}` for a literal brace)"
                    ))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Self {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The built-in variables this template uses.
    pub fn builtins(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Builtin(b) => Some(*b),
            _ => None,
        })
    }

    /// The text with no variables, when the template is a constant.
    pub fn constant(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => out.push_str(l),
                _ => return None,
            }
        }
        Some(out)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn render(&self, vars: &Vars<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => out.push_str(l),
                Piece::Capture(i) => out.push_str(&vars.captures.get(*i)?.1),
                Piece::Builtin(b) => match *b {
                    "path" => out.push_str(vars.path),
                    "name" => out.push_str(file_name(vars.path)),
                    "stem" => out.push_str(split_ext(file_name(vars.path)).0),
                    "ext" => out.push_str(split_ext(file_name(vars.path)).1?),
                    "dir" => out.push_str(vars.path.rsplit_once('/').map_or("", |(d, _)| d)),
                    "kind" => out.push_str(vars.kind),
                    "format" => out.push_str(vars.format),
                    "record" => out.push_str(&vars.record.to_string()),
                    "member" => out.push_str(vars.member?),
                    "heading" => out.push_str(vars.heading?),
                    "body" => out.push_str(vars.body?),
                    "mtime" => out.push_str(vars.mtime?),
                    "size" => out.push_str(&vars.size.to_string()),
                    "sha256" => out.push_str(vars.sha256?),
                    _ => return None,
                },
            }
        }
        Some(out)
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// `("name", Some("json"))` for `name.json`; a leading dot alone is not an extension.
fn split_ext(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_captures_and_builtins() {
        let caps = vec![("agent".to_owned(), "Agent-1".to_owned())];
        let names = vec!["agent".to_owned()];
        let vars = Vars {
            captures: &caps,
            path: "agent_workspaces/Agent-1/inbox/m.json",
            record: 3,
            ..Vars::default()
        };
        let t = Template::new("{agent}:{stem}.{ext}#{record} in {dir} {{x}}", &names).unwrap();
        assert_eq!(
            t.render(&vars).unwrap(),
            "Agent-1:m.json#3 in agent_workspaces/Agent-1/inbox {x}"
        );
        assert_eq!(
            Template::new("{member}", &names).unwrap().render(&vars),
            None
        );
        assert_eq!(
            Template::new("inbox", &names)
                .unwrap()
                .constant()
                .as_deref(),
            Some("inbox")
        );
        let err = Template::new("{agnet}", &names).unwrap_err();
        assert!(
            err.contains("unknown variable `{agnet}`") && err.contains("{agent}"),
            "{err}"
        );
    }
}
