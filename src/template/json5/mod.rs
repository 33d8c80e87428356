//! The template's dialect, turned into strict JSON for serde_json.
//!
//! Owns the dialect: JSON5, which covers the `//` and `/* */` comments and trailing commas
//! mcrouter accepts as well as what the original MCW's templates use (bare keys,
//! single-quoted strings), plus JSON5's escapes and number spellings (`0x1F`, `.5`, `5.`,
//! `+1`). Infinity and NaN are refused: JSON, and so mcrouter, has no way to write them.
//! Comments and trailing commas are blanked in place; the rest is rewritten, and
//! [`Strict::source_offset`] maps any place in the strict text back to the file, so errors
//! point where the operator edits (that map is `map.rs`'s). Strict JSON comes out unchanged. It does not parse JSON
//! itself: serde_json does.

mod map;

pub use map::Strict;
use map::Writer;

/// Text that is not JSON5, or JSON5 that has no JSON equivalent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialectError {
    /// Byte offset in the template.
    pub offset: usize,
    pub message: String,
}

/// Turn a template's text into strict JSON.
pub fn to_strict(text: &str) -> Result<Strict, DialectError> {
    let src = text.as_bytes();
    let mut w = Writer::new(src);
    // Where in `out` the last comma outside strings is, while only blanks followed it.
    let mut pending_comma: Option<usize> = None;
    // Last significant byte outside comments: a comma is only "trailing" after a value.
    let mut prev = b' ';
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        match c {
            b'"' | b'\'' => {
                pending_comma = None;
                prev = b'"';
                i = string(src, i, &mut w)?;
            }
            b'/' if matches!(src.get(i + 1), Some(b'/' | b'*')) => {
                i = blank_comment(src, i, &mut w)?;
            }
            b',' => {
                pending_comma = (!matches!(prev, b'{' | b'[' | b',')).then_some(w.len());
                prev = b',';
                w.put(i, b",");
                i += 1;
            }
            b']' | b'}' => {
                if let Some(at) = pending_comma.take() {
                    w.blank(at);
                }
                prev = c;
                w.put(i, &[c]);
                i += 1;
            }
            c if c.is_ascii_whitespace() => {
                w.put(i, &[c]);
                i += 1;
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => {
                pending_comma = None;
                prev = b'0';
                i = number(src, i, &mut w)?;
            }
            c if c == b'_' || c == b'$' || c.is_ascii_alphabetic() || c >= 0x80 => {
                pending_comma = None;
                prev = b'a';
                i = identifier(src, i, &mut w)?;
            }
            c => {
                pending_comma = None;
                prev = c;
                w.put(i, &[c]);
                i += 1;
            }
        }
    }
    w.finish().map_err(|e| DialectError {
        offset: e.utf8_error().valid_up_to(),
        message: "invalid UTF-8".into(),
    })
}

/// Blank the comment at `start` with spaces (newlines kept); returns where it ends.
fn blank_comment(src: &[u8], start: usize, w: &mut Writer) -> Result<usize, DialectError> {
    let mut i = start + 2;
    let block = src[start + 1] == b'*';
    w.put(start, b"  ");
    while i < src.len() {
        if !block && src[i] == b'\n' {
            return Ok(i);
        }
        if block && src[i] == b'*' && src.get(i + 1) == Some(&b'/') {
            w.put(i, b"  ");
            return Ok(i + 2);
        }
        w.put(i, if src[i] == b'\n' { b"\n" } else { b" " });
        i += 1;
    }
    match block {
        true => Err(DialectError {
            offset: start,
            message: "unterminated /* comment".into(),
        }),
        false => Ok(i),
    }
}

/// Write the string starting at `start` (quoted with `"` or `'`) as a JSON string: JSON5's
/// escapes become JSON's, an escaped line break is dropped, and a `"` inside single quotes is
/// escaped. Returns where it ends.
fn string(src: &[u8], start: usize, w: &mut Writer) -> Result<usize, DialectError> {
    let quote = src[start];
    w.put(start, b"\"");
    let mut i = start + 1;
    while i < src.len() {
        match src[i] {
            c if c == quote => {
                w.put(i, b"\"");
                return Ok(i + 1);
            }
            b'"' => {
                w.put(i, b"\\\"");
                i += 1;
            }
            b'\\' => i = escape(src, i, w)?,
            c => {
                w.put(i, &[c]);
                i += 1;
            }
        }
    }
    Err(DialectError {
        offset: start,
        message: "unterminated string".into(),
    })
}

/// Write the escape at `at` (a backslash) as JSON; returns where it ends.
fn escape(src: &[u8], at: usize, w: &mut Writer) -> Result<usize, DialectError> {
    let Some(&c) = src.get(at + 1) else {
        return Err(DialectError {
            offset: at,
            message: "unterminated string".into(),
        });
    };
    let hex = |n: usize| {
        src.get(at + 2..at + 2 + n)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
    };
    Ok(match c {
        // JSON's own escapes.
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u' => {
            w.put(at, &[b'\\', c]);
            at + 2
        }
        b'\'' => {
            w.put(at, b"'");
            at + 2
        }
        b'v' => {
            w.put(at, b"\\u000b");
            at + 2
        }
        b'0' if !src.get(at + 2).is_some_and(u8::is_ascii_digit) => {
            w.put(at, b"\\u0000");
            at + 2
        }
        b'x' => {
            let Some(h) = hex(2) else {
                return Err(DialectError {
                    offset: at,
                    message: "\\x needs two hex digits".into(),
                });
            };
            let mut u = b"\\u00".to_vec();
            u.extend_from_slice(h);
            w.put(at, &u);
            at + 4
        }
        // A line continuation: the backslash and the line break are dropped.
        b'\n' => at + 2,
        b'\r' if src.get(at + 2) == Some(&b'\n') => at + 3,
        b'\r' => at + 2,
        0xe2 if matches!(src.get(at + 2..at + 4), Some([0x80, 0xa8 | 0xa9])) => at + 4,
        b'1'..=b'9' => {
            return Err(DialectError {
                offset: at,
                message: "a backslash before a digit is not an escape".into(),
            });
        }
        // Any other character stands for itself.
        _ => {
            w.put(at + 1, &[c]);
            at + 2
        }
    })
}

/// Write the number starting at `start` as JSON: no `+`, hex as decimal, a digit on both
/// sides of the point. Returns where it ends; what is no JSON5 number is copied for
/// serde_json to refuse.
fn number(src: &[u8], start: usize, w: &mut Writer) -> Result<usize, DialectError> {
    let mut i = start;
    let negative = src[i] == b'-';
    if matches!(src[i], b'+' | b'-') {
        i += 1;
    }
    let word_end = |from: usize| {
        from + src[from..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'$')
            .count()
    };
    let rest = &src[i..];
    if rest.starts_with(b"Infinity") || rest.starts_with(b"NaN") {
        return Err(no_json(start));
    }
    let sign: &[u8] = if negative { b"-" } else { b"" };
    if rest.starts_with(b"0x") || rest.starts_with(b"0X") {
        let end = word_end(i + 2);
        let digits = std::str::from_utf8(&src[i + 2..end]).unwrap_or_default();
        let value = u128::from_str_radix(digits, 16).map_err(|_| DialectError {
            offset: start,
            message: format!("bad hexadecimal number {:?}", &digits),
        })?;
        let mut text = sign.to_vec();
        text.extend_from_slice(value.to_string().as_bytes());
        w.put(start, &text);
        return Ok(end);
    }
    let digits = |from: usize| {
        from + src[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int_end = digits(i);
    let mut text = sign.to_vec();
    if int_end == i {
        // `.5`: JSON wants the zero.
        text.push(b'0');
    }
    text.extend_from_slice(&src[i..int_end]);
    let mut end = int_end;
    let mut frac_digits = 0;
    if src.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        frac_digits = frac_end - (end + 1);
        text.push(b'.');
        if frac_digits == 0 {
            // `5.`: JSON wants a digit after the point.
            text.push(b'0');
        }
        text.extend_from_slice(&src[end + 1..frac_end]);
        end = frac_end;
    }
    if int_end == i && frac_digits == 0 {
        // A lone sign or point: no number; copied for serde_json to refuse at this place.
        let end = (i + usize::from(src.get(i) == Some(&b'.'))).max(start + 1);
        w.put(start, &src[start..end]);
        return Ok(end);
    }
    if matches!(src.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(src.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_end = digits(exp);
        text.extend_from_slice(&src[end..exp_end]);
        end = exp_end;
    }
    w.put(start, &text);
    Ok(end)
}

/// Write the identifier starting at `start`: `true`, `false` and `null` as they are, a bare
/// key (one followed by `:`) quoted. Returns where it ends.
fn identifier(src: &[u8], start: usize, w: &mut Writer) -> Result<usize, DialectError> {
    let end = start
        + src[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$') || **b >= 0x80)
            .count();
    let word = &src[start..end];
    match word {
        b"Infinity" | b"NaN" => return Err(no_json(start)),
        b"true" | b"false" | b"null" => w.put(start, word),
        _ if next_significant(src, end) == Some(b':') => {
            let mut quoted = Vec::with_capacity(word.len() + 2);
            quoted.push(b'"');
            quoted.extend_from_slice(word);
            quoted.push(b'"');
            w.put(start, &quoted);
        }
        // Not a key: copied, for serde_json to refuse where it stands.
        _ => w.put(start, word),
    }
    Ok(end)
}

/// The first byte from `i` on that is neither white space nor inside a comment.
fn next_significant(src: &[u8], mut i: usize) -> Option<u8> {
    while i < src.len() {
        match src[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'/' if src.get(i + 1) == Some(&b'/') => {
                i += src[i..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .unwrap_or(src.len() - i);
            }
            b'/' if src.get(i + 1) == Some(&b'*') => {
                let close = src[i + 2..].windows(2).position(|p| p == b"*/")?;
                i += close + 4;
            }
            c => return Some(c),
        }
    }
    None
}

fn no_json(offset: usize) -> DialectError {
    DialectError {
        offset,
        message: "Infinity and NaN have no JSON spelling, so mcrouter could not read them".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(text: &str) -> String {
        to_strict(text).unwrap().text
    }

    #[test]
    fn strips_comments_and_trailing_commas_in_place() {
        let cases = [
            ("{\"a\": 1, // c\n}", "{\"a\": 1      \n}"),
            ("{,}", "{,}"),
            ("[1,,]", "[1,,]"),
            ("[1, /* x\ny */ 2,]", "[1,     \n     2 ]"),
            (
                "{\"s\": \"// not a comment, \\\" /* \",}",
                "{\"s\": \"// not a comment, \\\" /* \" }",
            ),
            ("[[1,],]", "[[1 ] ]"),
            ("[1, 2]", "[1, 2]"),
            (
                "{\"a\":\"x\" ,\n // tail\n }",
                "{\"a\":\"x\"  \n        \n }",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(strict(input), want, "input {input:?}");
        }
    }

    #[test]
    fn strict_json_comes_out_unchanged() {
        let json = r#"{"a": [1, -2.5e+3, 0.25, "x\"y\\z\u00e9\/", true, false, null], "é": {}}"#;
        assert_eq!(strict(json), json);
    }

    /// The original MCW's templates: bare keys, single-quoted strings; and JSON5's other
    /// spellings, each written the way JSON says it.
    #[test]
    fn json5_becomes_strict_json() {
        let cases = [
            (
                "{pools: {a: {servers: ['dns://a.test']}}}",
                r#"{"pools": {"a": {"servers": ["dns://a.test"]}}}"#,
            ),
            (
                r#"{a: 'say "hi"', b: "it\'s"}"#,
                r#"{"a": "say \"hi\"", "b": "it's"}"#,
            ),
            (
                "{$x_1: 0x1F, y: -0x10, z: +1, p: .5, q: 5., r: -.5e2}",
                r#"{"$x_1": 31, "y": -16, "z": 1, "p": 0.5, "q": 5.0, "r": -0.5e2}"#,
            ),
            (
                "['a\\x41\\v\\0', 'line \\\ncontinued']",
                r#"["a\u0041\u000b\u0000", "line continued"]"#,
            ),
            ("{a /* c */ : 1}", r#"{"a"         : 1}"#),
            ("{a: true, b: null,}", r#"{"a": true, "b": null }"#),
        ];
        for (input, want) in cases {
            assert_eq!(strict(input), want, "input {input:?}");
            let _: serde_json::Value = serde_json::from_str(&strict(input)).unwrap();
        }
    }

    #[test]
    fn what_json_cannot_say_is_refused_where_it_is() {
        for (input, at, why) in [
            ("{a: Infinity}", 4, "Infinity and NaN"),
            ("{a: -NaN}", 4, "Infinity and NaN"),
            ("{a: 'open}", 4, "unterminated string"),
            ("{\n /* open", 3, "unterminated /* comment"),
            ("['\\x4']", 2, "two hex digits"),
            ("[0xZZ]", 1, "hexadecimal"),
        ] {
            let e = to_strict(input).unwrap_err();
            assert_eq!(e.offset, at, "{input}");
            assert!(e.message.contains(why), "{input}: {}", e.message);
        }
    }

    /// Regression, found by fuzzing: a rewritten stretch longer than what it replaces (a bare
    /// key quoted) mapped its last bytes past the template's next ones, so the map went
    /// backwards.
    #[test]
    fn the_map_back_to_the_template_never_goes_backwards() {
        for text in [
            "{\n  pools: {a: 1}}",
            "['it\\'s', \"x\\x41\", 0x10, .5]",
            "{a: 'say \"hi\"', b: +1}",
        ] {
            let s = to_strict(text).unwrap();
            let map: Vec<usize> = (0..s.text.len()).map(|at| s.source_offset(at)).collect();
            assert!(map.windows(2).all(|w| w[0] <= w[1]), "{text}: {map:?}");
            assert!(map.iter().all(|at| *at <= text.len()), "{text}: {map:?}");
        }
    }

    #[test]
    fn a_lone_sign_or_point_is_left_for_serde_json_to_refuse() {
        for input in ["[.]", "[-]", "[+]", "[-.]"] {
            let out = strict(input);
            assert!(
                serde_json::from_str::<serde_json::Value>(&out).is_err(),
                "{input} -> {out}"
            );
        }
    }

    #[test]
    fn places_in_the_strict_text_map_back_to_the_template() {
        let text = "{a: 'x', bb: 0x10, c: 'z'}";
        let s = to_strict(text).unwrap();
        let at = |needle: &str| s.text.find(needle).unwrap();
        assert_eq!(s.source_offset(at("\"bb\"")), text.find("bb").unwrap());
        assert_eq!(s.source_offset(at("16")), text.find("0x10").unwrap());
        assert_eq!(s.source_offset(at("\"c\"")), text.find("c:").unwrap());
        assert_eq!(s.source_offset(at("\"z\"")), text.find("'z'").unwrap());
        assert_eq!(s.source_offset(s.text.len() - 1), text.len() - 1);
    }
}
