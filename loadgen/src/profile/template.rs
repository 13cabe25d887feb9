//! Templates of a profile: text with `{name}` placeholders, checked against the names their field knows
//! when the profile is read, filled at run time. Braces that do not enclose a lower-case name stay as
//! written, so JSON bodies (`{"channel":"{topic}"}`) need no escaping.

use std::fmt;

/// One parsed template. Serializes as the text it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

/// A placeholder its field does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placeholder {{{name}}} (known here: {known})")]
pub struct UnknownPlaceholder {
    /// The name written.
    pub name: String,
    /// The names the field knows, for the message.
    pub known: String,
}

impl Template {
    /// Parses `text`, refusing a placeholder not in `known`.
    pub fn parse(text: &str, known: &[&str]) -> Result<Self, UnknownPlaceholder> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                let name = &after[..name_len];
                if !known.contains(&name) {
                    return Err(UnknownPlaceholder {
                        name: name.to_owned(),
                        known: known
                            .iter()
                            .map(|k| format!("{{{k}}}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                literal.push_str(&rest[..open]);
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Placeholder(name.to_owned()));
                rest = &after[name_len + 1..];
            } else {
                literal.push_str(&rest[..=open]);
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// Whether the template uses `{name}`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Placeholder(n) if n == name))
    }

    /// The text with every placeholder replaced by `value(name)`; a name `value` does not answer is
    /// left empty (validation made sure the caller answers every name its field knows).
    pub fn render<'v>(&self, value: impl Fn(&str) -> Option<&'v str>) -> String {
        let mut out = String::with_capacity(self.text.len() + 32);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(name) => out.push_str(value(name).unwrap_or_default()),
            }
        }
        out
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Read back from the JSON form a validated profile crosses to the worker processes in: its names were
/// checked when the profile was read, so any lower-case name is taken.
impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut names = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            rest = &rest[open + 1..];
            if let Some(close) = rest.find('}') {
                names.push(&rest[..close]);
            }
        }
        Self::parse(&text, &names).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Fills with a list of `(name, value)` pairs.
pub fn pairs<'v>(values: &'v [(&str, &'v str)]) -> impl Fn(&str) -> Option<&'v str> {
    move |name| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_other_braces_kept() {
        let t = Template::parse(
            r#"{"channel":"{topic}","data":{payload_json}}"#,
            &["topic", "payload_json"],
        )
        .unwrap();
        assert!(t.uses("topic") && !t.uses("seq"));
        assert_eq!(
            t.render(pairs(&[("topic", "a"), ("payload_json", "\"1 2 x\"")])),
            r#"{"channel":"a","data":"1 2 x"}"#
        );
        let t = Template::parse("/sse?id={topics}&x={}{Upper}{", &["topics"]).unwrap();
        assert_eq!(
            t.render(pairs(&[("topics", "a,b")])),
            "/sse?id=a,b&x={}{Upper}{"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_named() {
        let e = Template::parse("/pub?id={topc}", &["topic", "seq"]).unwrap_err();
        assert_eq!(e.name, "topc");
        assert_eq!(
            e.to_string(),
            "unknown placeholder {topc} (known here: {topic}, {seq})"
        );
    }
}
