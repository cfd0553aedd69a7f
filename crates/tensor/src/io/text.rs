//! Text from a file, made safe to put in a one-line error message: control characters
//! escaped, and cut to a bounded length.

/// Bytes a value echoed from a file may take in a message (see [`shown`]).
pub const SHOWN_BYTES: usize = 80;

/// The ellipsis that ends a cut text.
const ELLIPSIS: char = '…';

/// `text` for one terminal line: line breaks, tabs and other control characters (and the
/// Unicode bidirectional overrides) escaped as `\n`, `\t`, `\x1b`, `\u{202e}`, and the result
/// cut to at most `max_bytes` bytes (ending in "…" when cut). Only the first `max_bytes`
/// bytes of `text` are ever looked at, so a 50 MB string costs no more than a short one.
pub fn bounded_text(text: &str, max_bytes: usize) -> String {
    let mut out = String::new();
    // The length `out` had when the last piece that leaves room for "…" was added.
    let mut cut = 0;
    for c in text.chars() {
        let piece = escaped(c);
        if out.len() + piece.len() > max_bytes {
            out.truncate(cut);
            if out.len() + ELLIPSIS.len_utf8() <= max_bytes {
                out.push(ELLIPSIS);
            }
            return out;
        }
        out.push_str(&piece);
        if out.len() + ELLIPSIS.len_utf8() <= max_bytes {
            cut = out.len();
        }
    }
    out
}

/// A value read from a file (a metadata string, a tensor name) as it is echoed in errors:
/// [`bounded_text`] with the length every error message uses (`SHOWN_BYTES`, 80 bytes).
pub fn shown(text: &str) -> String {
    bounded_text(text, SHOWN_BYTES)
}

fn escaped(c: char) -> String {
    match c {
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        '\t' => "\\t".to_string(),
        c if c.is_ascii_control() => format!("\\x{:02x}", c as u32),
        c if c.is_control() || is_bidi_control(c) => format!("\\u{{{:x}}}", c as u32),
        c => c.to_string(),
    }
}

/// The invisible characters that reorder how a terminal shows the text around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown("a\nb\tc\x1b[31m\u{7f}"), "a\\nb\\tc\\x1b[31m\\x7f");
        assert_eq!(shown("x\u{202e}y\u{85}"), "x\\u{202e}y\\u{85}");
        assert_eq!(shown("tanh"), "tanh");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        let long = "a".repeat(50_000_000);
        let s = shown(&long);
        // 77 letters and the 3-byte ellipsis.
        assert_eq!(s, format!("{}…", "a".repeat(77)));
        assert_eq!(s.len(), 80);
        assert_eq!(shown(&"b".repeat(80)), "b".repeat(80));
        assert_eq!(shown(&"b".repeat(81)), format!("{}…", "b".repeat(77)));
    }

    #[test]
    fn cutting_never_splits_a_character_or_an_escape() {
        // "é" is 2 bytes: 39 of them (78 bytes) and "…" do not fit in 80, 38 do.
        let s = shown(&"é".repeat(100));
        assert_eq!(s, format!("{}…", "é".repeat(38)));
        let s = shown(&"\n".repeat(100));
        assert_eq!(s, format!("{}…", "\\n".repeat(38)));
        assert!(bounded_text("abcdef", 2).len() <= 2);
    }
}
