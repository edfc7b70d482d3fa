//! Text templates that turn a record into a document: `"{question}\n{answer}"`.
//!
//! `{name}` inserts a record field; `{{` and `}}` stand for literal braces. A field's value is
//! rendered as: a string as is; a number or boolean in its JSON form; a list as its elements
//! rendered and joined by a blank line (conversation turns); null or absent is an error the
//! caller reports with the record's location.

use anyhow::{bail, Result};
use serde_json::Value;

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Lit(String),
    Field(String),
}

/// A parsed text template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

/// Why a record could not be rendered.
#[derive(Clone, Debug, PartialEq)]
pub enum RenderError {
    /// The template names a field the record lacks (or holds null).
    MissingField(String),
    /// The field holds a JSON object, which has no text form.
    NotText(String),
}

impl Template {
    /// Parses `source`; fails on an unclosed `{`, a stray `}` or an empty `{}`.
    pub fn parse(source: &str) -> Result<Template> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = source.chars().peekable();
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
                            Some('{') | None => {
                                bail!("text template {source:?}: unclosed '{{' (write '{{{{' for a literal brace)")
                            }
                            Some(ch) => name.push(ch),
                        }
                    }
                    let name = name.trim().to_string();
                    if name.is_empty() {
                        bail!("text template {source:?}: empty field name '{{}}'");
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Field(name));
                }
                '}' => {
                    bail!("text template {source:?}: stray '}}' (write '}}}}' for a literal brace)")
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template {
            source: source.to_string(),
            pieces,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The field names the template uses, in order of first use.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Field(f) = p {
                if !out.contains(&f.as_str()) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// Renders with a field lookup.
    pub fn render_with<'a, F>(&self, mut lookup: F) -> Result<String, RenderError>
    where
        F: FnMut(&str) -> Option<&'a Value>,
    {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Field(f) => match lookup(f) {
                    None | Some(Value::Null) => return Err(RenderError::MissingField(f.clone())),
                    Some(v) => push_value(&mut out, f, v)?,
                },
            }
        }
        Ok(out)
    }

    /// Renders a JSON object record.
    pub fn render(&self, record: &serde_json::Map<String, Value>) -> Result<String, RenderError> {
        self.render_with(|f| record.get(f))
    }
}

fn push_value(out: &mut String, field: &str, v: &Value) -> Result<(), RenderError> {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str("\n\n");
                }
                push_value(out, field, item)?;
            }
        }
        Value::Null => return Err(RenderError::MissingField(field.to_string())),
        Value::Object(_) => return Err(RenderError::NotText(field.to_string())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_fields_and_escapes() {
        let t = Template::parse("Q: {question}\n{answer} {{x}}").unwrap();
        assert_eq!(t.fields(), vec!["question", "answer"]);
        let r = obj(json!({"question": "2+2?", "answer": 4}));
        assert_eq!(t.render(&r).unwrap(), "Q: 2+2?\n4 {x}");
    }

    #[test]
    fn lists_join_with_blank_lines() {
        let t = Template::parse("{conversations}").unwrap();
        let r = obj(json!({"conversations": ["hi", "hello"]}));
        assert_eq!(t.render(&r).unwrap(), "hi\n\nhello");
    }

    #[test]
    fn missing_and_null_fields_are_errors() {
        let t = Template::parse("{a}{b}").unwrap();
        assert_eq!(
            t.render(&obj(json!({"a": "x"}))),
            Err(RenderError::MissingField("b".into()))
        );
        assert_eq!(
            t.render(&obj(json!({"a": "x", "b": null}))),
            Err(RenderError::MissingField("b".into()))
        );
        assert_eq!(
            t.render(&obj(json!({"a": {"k": 1}, "b": "y"}))),
            Err(RenderError::NotText("a".into()))
        );
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(Template::parse("{a").is_err());
        assert!(Template::parse("a}").is_err());
        assert!(Template::parse("{}").is_err());
    }
}
