//! JSON with comments and trailing commas, the dialect mcrouter accepts.
//!
//! Owns turning that dialect into strict JSON *without moving anything*: comments and trailing
//! commas are overwritten with spaces (newlines are kept), so serde_json's line:column in an
//! error points at the same place in the file the operator edits. It does not parse JSON itself.

/// Blank out `//` and `/* */` comments and commas that close an array or object.
///
/// Returns the first unterminated block comment's byte offset as an error.
pub fn to_strict(text: &str) -> Result<String, usize> {
    let src = text.as_bytes();
    let mut out = src.to_vec();
    // Index of the last comma seen outside strings, if only whitespace/comments followed it.
    let mut pending_comma: Option<usize> = None;
    // Last significant byte outside comments: a comma is only "trailing" after a value.
    let mut prev = b' ';
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'"' => {
                pending_comma = None;
                prev = b'"';
                i += 1;
                while i < src.len() && src[i] != b'"' {
                    // Skip the escaped character, whatever it is.
                    i += if src[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if src.get(i + 1) == Some(&b'/') => {
                while i < src.len() && src[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
            }
            b'/' if src.get(i + 1) == Some(&b'*') => {
                let start = i;
                out[i] = b' ';
                out[i + 1] = b' ';
                i += 2;
                loop {
                    if i + 1 >= src.len() {
                        return Err(start);
                    }
                    if src[i] == b'*' && src[i + 1] == b'/' {
                        out[i] = b' ';
                        out[i + 1] = b' ';
                        i += 2;
                        break;
                    }
                    if src[i] != b'\n' {
                        out[i] = b' ';
                    }
                    i += 1;
                }
            }
            b',' => {
                pending_comma = (!matches!(prev, b'{' | b'[' | b',')).then_some(i);
                prev = b',';
                i += 1;
            }
            b']' | b'}' => {
                if let Some(at) = pending_comma.take() {
                    out[at] = b' ';
                }
                prev = src[i];
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            c => {
                pending_comma = None;
                prev = c;
                i += 1;
            }
        }
    }
    // Only ASCII bytes outside strings were replaced by ASCII spaces, so UTF-8 is intact.
    Ok(String::from_utf8(out).expect("only ASCII bytes were replaced"))
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(to_strict(input).unwrap(), want, "input {input:?}");
            assert_eq!(to_strict(input).unwrap().len(), input.len());
        }
    }

    #[test]
    fn unterminated_block_comment_reports_its_start() {
        assert_eq!(to_strict("{\n /* open"), Err(3));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
