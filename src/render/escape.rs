//! Untrusted text made safe for a terminal: the one place every human renderer and every stderr
//! message passes strings from the system or a recording through.
//!
//! A process can name itself `ESC[2J`, an interface can carry an OSC 8 link, a recording can
//! hold anything. Control characters (C0, DEL, C1 including U+009B CSI) and bidirectional
//! formatting characters (U+061C, U+200E/F, U+202A–202E, U+2066–2069) are shown as visible
//! escapes (`\x1b`, `\u{9b}`, `\u{202e}`), and a string is cut after a bounded number of
//! characters (`…`), so a 7 MB hostname cannot flood the terminal. The renderer's own color
//! codes never pass through here. JSON output is data and is left to serde_json.

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};

/// Most characters of one name shown (hostname, interface, device, kernel release, target).
pub const MAX_FIELD: usize = 256;
/// Most characters of one sentence shown (summary, note, fix step, probe detail, error).
pub const MAX_TEXT: usize = 2048;

/// Whether `c` must not reach a terminal raw.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// `s` shown safely: unsafe characters escaped, at most `max` characters of `s`, then `…`.
#[derive(Clone, Copy)]
pub struct Safe<'a> {
    s: &'a str,
    max: usize,
}

impl Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, c) in self.s.chars().enumerate() {
            if shown == self.max {
                return f.write_char('…');
            }
            if is_unsafe(c) {
                write_escaped(f, c)?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// A name: at most [`MAX_FIELD`] characters.
pub fn field(s: &str) -> Safe<'_> {
    Safe { s, max: MAX_FIELD }
}

/// A sentence: at most [`MAX_TEXT`] characters.
pub fn text(s: &str) -> Safe<'_> {
    Safe { s, max: MAX_TEXT }
}

/// [`Safe`] as a string, borrowed when nothing had to change (the usual case).
pub fn bounded(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().all(|c| !is_unsafe(c)) && s.chars().nth(max).is_none() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(Safe { s, max }.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_c1_and_bidi() {
        let s = "a\x1b[2J\u{9b}31m\u{7f}\u{202e}b\u{2066}\n\u{85}\x07é✓";
        let got = field(s).to_string();
        assert_eq!(
            got,
            "a\\x1b[2J\\u{9b}31m\\x7f\\u{202e}b\\u{2066}\\n\\u{85}\\x07é✓"
        );
        assert!(got.chars().all(|c| !is_unsafe(c)));
        assert!(matches!(bounded("eth0 ✓", 10), Cow::Borrowed(_)));
    }

    #[test]
    fn osc8_link_is_defused() {
        let s = "\x1b]8;;https://evil.example\x1b\\eth0\x1b]8;;\x1b\\";
        assert!(!field(s).to_string().contains('\x1b'));
    }

    #[test]
    fn bounds_length() {
        let long = "h".repeat(10_000);
        let got = field(&long).to_string();
        assert_eq!(got.chars().count(), MAX_FIELD + 1);
        assert!(got.ends_with('…'));
        assert_eq!(
            field(&"h".repeat(MAX_FIELD)).to_string(),
            "h".repeat(MAX_FIELD)
        );
        assert_eq!(bounded(&long, 3), "hhh…");
    }
}
