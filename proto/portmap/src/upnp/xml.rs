//! A small, forgiving XML tag scanner: enough for UPnP device descriptions and SOAP
//! envelopes, never a validating parser. Element names are reported without their
//! namespace prefix (`s:Envelope` -> `Envelope`); attributes are skipped; comments,
//! processing instructions and `<!DOCTYPE>` are skipped; CDATA is text. Malformed input
//! ends the token stream; nothing panics and every step consumes input.

use std::borrow::Cow;

/// One piece of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// `<name ...>` (also the first half of `<name/>`): the local name.
    Start(&'a str),
    /// `</name>` (also the second half of `<name/>`): the local name.
    End(&'a str),
    /// Character data between tags, with the five predefined entities and numeric
    /// character references resolved.
    Text(Cow<'a, str>),
}

/// The tokens of `xml`.
pub fn tokens(xml: &str) -> Tokens<'_> {
    Tokens {
        rest: xml,
        pending_end: None,
    }
}

/// An iterator over the [`Token`]s of a document.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    rest: &'a str,
    pending_end: Option<&'a str>,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        if let Some(name) = self.pending_end.take() {
            return Some(Token::End(name));
        }
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let r = self.rest;
            if !r.starts_with('<') {
                let end = r.find('<').unwrap_or(r.len());
                self.rest = &r[end..];
                return Some(Token::Text(unescape(&r[..end])));
            }
            if let Some(after) = r.strip_prefix("<!--") {
                self.rest = skip_past(after, "-->")?;
                continue;
            }
            if let Some(after) = r.strip_prefix("<![CDATA[") {
                let end = after.find("]]>")?;
                self.rest = &after[end + 3..];
                return Some(Token::Text(Cow::Borrowed(&after[..end])));
            }
            if let Some(after) = r.strip_prefix("<?") {
                self.rest = skip_past(after, "?>")?;
                continue;
            }
            if let Some(after) = r.strip_prefix("<!") {
                self.rest = skip_past(after, ">")?;
                continue;
            }
            if let Some(after) = r.strip_prefix("</") {
                let end = after.find('>')?;
                self.rest = &after[end + 1..];
                return Some(Token::End(local(after[..end].trim())));
            }
            // A start tag; '>' inside quoted attribute values does not end it.
            let inner = &r[1..];
            let end = tag_end(inner)?;
            self.rest = &inner[end + 1..];
            let body = &inner[..end];
            let self_closing = body.ends_with('/');
            let name_end = body
                .find(|c: char| c.is_ascii_whitespace() || c == '/')
                .unwrap_or(body.len());
            let name = local(&body[..name_end]);
            if name.is_empty() {
                // `< foo>` or `</>`-like garbage: not a tag; skip it.
                continue;
            }
            if self_closing {
                self.pending_end = Some(name);
            }
            return Some(Token::Start(name));
        }
    }
}

fn skip_past<'a>(s: &'a str, pat: &str) -> Option<&'a str> {
    s.find(pat).map(|i| &s[i + pat.len()..])
}

fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The local part of a qualified name (`u:AddPortMapping` -> `AddPortMapping`).
pub fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Resolves `&lt; &gt; &amp; &quot; &apos;` and `&#NN;` / `&#xHH;`; unknown or broken
/// references stay as they are.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let resolved = after.find(';').filter(|&e| e <= 12).and_then(|e| {
            let c = match &after[1..e] {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                n => {
                    let v = if let Some(h) = n.strip_prefix("#x").or_else(|| n.strip_prefix("#X")) {
                        u32::from_str_radix(h, 16).ok()?
                    } else {
                        n.strip_prefix('#')?.parse().ok()?
                    };
                    char::from_u32(v)?
                }
            };
            Some((c, e + 1))
        });
        match resolved {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Escapes text for an element's content or an attribute value.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text of the first element named `name` (local name), concatenated over its text
/// tokens and trimmed; `None` when there is no such element.
pub fn first_text(xml: &str, name: &str) -> Option<String> {
    let mut inside = 0usize;
    let mut text = String::new();
    for t in tokens(xml) {
        match t {
            Token::Start(n) if inside == 0 && n == name => inside = 1,
            Token::Start(_) if inside > 0 => inside += 1,
            Token::End(_) if inside == 1 => return Some(text.trim().to_owned()),
            Token::End(_) if inside > 1 => inside -= 1,
            Token::Text(s) if inside == 1 => text.push_str(&s),
            _ => {}
        }
    }
    (inside > 0).then(|| text.trim().to_owned())
}

/// The children of the first element named `parent` as (local name, trimmed text) pairs,
/// in document order; `None` when there is no such element.
pub fn children(xml: &str, parent: &str) -> Option<Vec<(String, String)>> {
    let mut depth = 0usize;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut found = false;
    for t in tokens(xml) {
        match t {
            Token::Start(n) if depth == 0 && n == parent => {
                found = true;
                depth = 1;
            }
            Token::Start(n) if depth == 1 => {
                out.push((n.to_owned(), String::new()));
                depth = 2;
            }
            Token::Start(_) if depth > 1 => depth += 1,
            Token::End(_) if depth == 1 => return Some(finish(out)),
            Token::End(_) if depth > 1 => depth -= 1,
            Token::Text(s) if depth == 2 => {
                if let Some(last) = out.last_mut() {
                    last.1.push_str(&s);
                }
            }
            _ => {}
        }
    }
    found.then(|| finish(out))
}

fn finish(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    for (_, t) in &mut v {
        *t = t.trim().to_owned();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scans_tags_text_and_entities() {
        let x = r#"<?xml version="1.0"?><!-- c --><s:Envelope a="x>y"><b>1 &amp; 2 &#65;&#x42;</b><c/><![CDATA[<raw>]]></s:Envelope>"#;
        let t: Vec<_> = tokens(x).collect();
        assert_eq!(
            t,
            vec![
                Token::Start("Envelope"),
                Token::Start("b"),
                Token::Text("1 & 2 AB".into()),
                Token::End("b"),
                Token::Start("c"),
                Token::End("c"),
                Token::Text("<raw>".into()),
                Token::End("Envelope"),
            ]
        );
        assert_eq!(first_text(x, "b").as_deref(), Some("1 & 2 AB"));
        assert_eq!(unescape("&bogus; &"), "&bogus; &");
    }

    proptest! {
        #[test]
        fn escape_round_trips(s in ".*") {
            let x = format!("<a>{}</a>", escape(&s));
            prop_assert_eq!(first_text(&x, "a"), Some(s.trim().to_owned()));
        }

        #[test]
        fn never_panics(s in ".*") {
            let n = tokens(&s).count();
            prop_assert!(n <= s.len() * 2 + 1);
            let _ = first_text(&s, "a");
            let _ = children(&s, "a");
        }
    }
}
