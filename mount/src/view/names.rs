//! File names as other systems need them, all platform-neutral code.
//!
//! A backed-up name is any byte string without `/` or NUL. Windows (Explorer through Dokan, or
//! through the WebDAV mini-redirector) cannot hold many of them, so one reversible encoder maps
//! them into names it can, the way Cygwin and WSL do, into the private-use block U+F000..U+F1FF
//! (which backed-up names do not use, and which are escaped when they do):
//!
//! | in the backed-up name                              | on Windows              |
//! |----------------------------------------------------|-------------------------|
//! | a control byte 0x01..0x1F or one of `"*:<>?\|\\`   | U+F000 + the byte       |
//! | a trailing `.` or space (each of them)             | U+F000 + the byte       |
//! | the third letter of a reserved base (`CON`, `nul.txt`, `COM1`, `CONIN$`) | U+F000 + it |
//! | a byte of invalid UTF-8                            | U+F100 + the byte       |
//! | a character U+F000..U+F1FF                         | each of its UTF-8 bytes as U+F100 + the byte |
//!
//! Decoding maps U+F001..U+F07F and U+F180..U+F1FF back to their bytes and keeps everything
//! else, so `decode(encode(name)) == name` for every name. macOS sends decomposed (NFD)
//! Unicode where Linux sources usually hold composed (NFC) names; [`other_normalizations`]
//! gives the forms a lookup tries when the name as sent is not found.

use unicode_normalization::UnicodeNormalization;

/// The first code point of the block encoded bytes go to.
const LOW: u32 = 0xF000;
/// Raw bytes (of invalid UTF-8, or of an escaped private-use character) go to `HIGH + byte`.
const HIGH: u32 = 0xF100;

/// Characters Windows refuses anywhere in a name.
fn forbidden(c: char) -> bool {
    matches!(c, '\u{1}'..='\u{1f}' | '"' | '*' | ':' | '<' | '>' | '?' | '|' | '\\')
}

/// True for names Windows reserves for devices, with or without an extension.
fn reserved(base: &str) -> bool {
    const PLAIN: [&str; 6] = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];
    let upper = base.to_ascii_uppercase();
    if PLAIN.contains(&upper.as_str()) {
        return true;
    }
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let rest: Vec<char> = chars.collect();
    (prefix == "COM" || prefix == "LPT") && matches!(rest[..], ['0'..='9' | '¹' | '²' | '³'])
}

fn private(c: u32) -> char {
    char::from_u32(c).expect("U+F000..U+F1FF are characters")
}

/// `name` as a name Windows can hold (see the module doc); reversed by [`from_windows_name`].
pub fn windows_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c as u32 {
                LOW..=0xF1FF => {
                    let mut buf = [0u8; 4];
                    for &b in c.encode_utf8(&mut buf).as_bytes() {
                        out.push(private(HIGH + u32::from(b)));
                    }
                }
                _ if forbidden(c) => out.push(private(LOW + c as u32)),
                _ => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            out.push(private(HIGH + u32::from(b)));
        }
    }
    // Trailing dots and spaces, which Windows strips.
    let keep = out.trim_end_matches(['.', ' ']).len();
    let trailing: String = out[keep..].chars().map(|c| private(LOW + c as u32)).collect();
    out.truncate(keep);
    out.push_str(&trailing);
    // A reserved device name (spaces before the extension do not help): its third character,
    // always an ASCII letter, is encoded.
    let base = &out[..out.find('.').unwrap_or(out.len())];
    if reserved(base.trim_end_matches(' ')) {
        let third = out.as_bytes()[2];
        out.replace_range(2..3, &private(LOW + u32::from(third)).to_string());
    }
    out
}

/// The backed-up name that [`windows_name`] encoded as `name`.
pub fn from_windows_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        match c as u32 {
            v @ 0xF001..=0xF07F => out.push((v - LOW) as u8),
            v @ 0xF180..=0xF1FF => out.push((v - HIGH) as u8),
            _ => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// The composed (NFC) and decomposed (NFD) forms of `name` that differ from it, for lookups
/// of names sent in the other normalization; none for ASCII or invalid UTF-8.
pub fn other_normalizations(name: &[u8]) -> Vec<Vec<u8>> {
    let Ok(s) = std::str::from_utf8(name) else {
        return Vec::new();
    };
    if s.is_ascii() {
        return Vec::new();
    }
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(2);
    for form in [s.nfc().collect::<String>(), s.nfd().collect::<String>()] {
        if form.as_bytes() != name && !out.iter().any(|o| o == form.as_bytes()) {
            out.push(form.into_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid_on_windows(n: &str) -> bool {
        !n.is_empty()
            && !n.chars().any(forbidden)
            && !n.ends_with(['.', ' '])
            && !reserved(n[..n.find('.').unwrap_or(n.len())].trim_end_matches(' '))
    }

    #[test]
    fn names_windows_cannot_hold_are_encoded() {
        let cases: [(&[u8], &str); 10] = [
            (b"plain.txt", "plain.txt"),
            (b"a:b", "a\u{f03a}b"),
            (b"what?*", "what\u{f03f}\u{f02a}"),
            (b"dots..", "dots\u{f02e}\u{f02e}"),
            (b"end. ", "end\u{f02e}\u{f020}"),
            (b"CON", "CO\u{f04e}"),
            (b"nul.txt", "nu\u{f06c}.txt"),
            (b"com1", "co\u{f06d}1"),
            (b"CONSOLE", "CONSOLE"),
            (b"bad\xffutf8", "bad\u{f1ff}utf8"),
        ];
        for (raw, want) in cases {
            let got = windows_name(raw);
            assert_eq!(got, want, "{}", String::from_utf8_lossy(raw));
            assert!(valid_on_windows(&got), "{got:?}");
            assert_eq!(from_windows_name(&got), raw);
        }
        // The block the encoder uses is escaped when a name has it already.
        let literal = "x\u{f03a}".as_bytes();
        let enc = windows_name(literal);
        assert_ne!(from_windows_name(&enc), b"x:");
        assert_eq!(from_windows_name(&enc), literal);
        assert_eq!(windows_name("LPT².log".as_bytes()), "LP\u{f054}².log");
        assert_eq!(windows_name(b"aux .c"), "au\u{f078} .c");
        assert_eq!(windows_name(b"conin$"), "co\u{f06e}in$");
        assert_eq!(from_windows_name(&windows_name(b"CONOUT$.log")), b"CONOUT$.log");
    }

    #[test]
    fn lookups_try_the_other_normalization() {
        let nfc = "Résumé.txt".nfc().collect::<String>();
        let nfd = "Résumé.txt".nfd().collect::<String>();
        assert_eq!(other_normalizations(nfd.as_bytes()), [nfc.as_bytes().to_vec()]);
        assert_eq!(other_normalizations(nfc.as_bytes()), [nfd.as_bytes().to_vec()]);
        assert!(other_normalizations(b"ascii").is_empty());
        assert!(other_normalizations(b"\xff").is_empty());
    }

    proptest! {
        #[test]
        fn the_encoder_round_trips_and_yields_windows_names(
            raw in proptest::collection::vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..40)
        ) {
            let enc = windows_name(&raw);
            prop_assert!(valid_on_windows(&enc), "{:?}", enc);
            prop_assert_eq!(from_windows_name(&enc), raw);
        }

        #[test]
        fn unicode_names_round_trip(s in "[a-zA-Z0-9 .:?*\u{e9}\u{f000}-\u{f1ff}\u{1f600}]{1,20}") {
            let enc = windows_name(s.as_bytes());
            prop_assert!(valid_on_windows(&enc), "{:?}", enc);
            prop_assert_eq!(from_windows_name(&enc), s.as_bytes());
        }
    }
}
