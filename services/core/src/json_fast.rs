//! Hot-path JSON decoding of the flat event object straight into a [`Report`].
//!
//! Why: even SIMD `sonic-rs` through serde costs ~570 ns per event here, mostly serde's
//! per-field dispatch; sensors send one small flat object per message. This scanner reads
//! the fields counting needs and steps over the rest, and it only ever *accepts*: anything
//! it is not sure about (escaped strings in read fields, duplicate or missing fields,
//! fractional timestamps, unknown categories, malformed JSON) returns `None`, and
//! [`crate::codec::Codec`] hands the message to serde, which decides and words the error.
//! So the fast path cannot reject what serde accepts; a property test checks that whatever
//! it accepts, serde accepts identically.

use crate::event::{parse_rfc3339_ms, DeviceCategory, Identifiers, Report, Text};
use std::borrow::Cow;

/// Nesting deeper than this in skipped values goes to serde.
const MAX_DEPTH: u32 = 32;

/// Decodes `payload` if it is a plain event object; `None` means "let serde decide".
pub fn decode(payload: &[u8]) -> Option<Report<'_>> {
    let text = simdutf8::basic::from_utf8(payload).ok()?;
    let mut p = Scanner {
        s: text,
        b: payload,
        i: 0,
    };
    let mut out = Report::blank();
    // One bit per known field: required ones must appear, none may repeat.
    let mut seen = 0u16;
    p.ws();
    p.sequence(b'{', b'}', |q| {
        let key = q.plain_str()?;
        q.ws();
        q.eat(b':')?;
        q.ws();
        let bit = match key {
            "tenant" => {
                out.tenant = Cow::Borrowed(q.plain_str()?);
                1
            }
            "site" => {
                out.site = Cow::Borrowed(q.plain_str()?);
                2
            }
            "sensor" => {
                out.sensor = Cow::Borrowed(q.plain_str()?);
                4
            }
            "observed_at" => {
                out.observed_at = if q.peek()? == b'"' {
                    parse_rfc3339_ms(q.plain_str()?)?
                } else {
                    q.integer()?
                };
                8
            }
            "zone" => {
                out.zone = q.opt_str()?;
                16
            }
            "device_id" => {
                out.device_id = q.opt_str()?;
                32
            }
            "macs" => {
                q.str_list(&mut out.macs)?;
                64
            }
            "ips" => {
                q.str_list(&mut out.ips)?;
                128
            }
            "category" => {
                let name = q.plain_str()?;
                out.category = DeviceCategory::ALL
                    .into_iter()
                    .find(|c| name == c.as_str() || name == lower(*c))?;
                256
            }
            "agent_managed" => {
                out.agent_managed = q.boolean()?;
                512
            }
            _ => {
                q.skip_value(0)?;
                0
            }
        };
        (seen & bit == 0).then(|| seen |= bit)
    })?;
    p.ws();
    (p.i == p.b.len() && seen & 0b1111 == 0b1111).then_some(out)
}

/// The lower-case alias JSON accepts for a category.
fn lower(c: DeviceCategory) -> &'static str {
    match c {
        DeviceCategory::Unknown => "unknown",
        DeviceCategory::Ot => "ot",
        DeviceCategory::Iot => "iot",
        DeviceCategory::Network => "network",
        DeviceCategory::ComputersMobile => "computers_mobile",
    }
}

/// Index of the first byte at or after `from` that ends a plain string run: a quote, a
/// backslash or a control character. Eight bytes at a time (SWAR): the string scan was
/// most of the scanner's time byte by byte.
fn special(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // Lowest flagged byte is exact (borrows only disturb bytes above a true hit).
        let hits = zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i.min(b.len())..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string without escapes, borrowed (the payload is valid UTF-8 and the quotes are
    /// ASCII, so the slice is on character boundaries).
    fn plain_str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = special(self.b, start)?;
        self.i = end;
        self.eat(b'"')?;
        Some(&self.s[start..end])
    }

    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.plain_str()?)))
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|_| true),
            b'f' => self.literal(b"false").map(|_| false),
            _ => None,
        }
    }

    fn str_list(&mut self, out: &mut Identifiers<'a>) -> Option<()> {
        self.sequence(b'[', b']', |p| {
            out.push(Text::from(p.plain_str()?));
            Some(())
        })
    }

    /// `open` items separated by commas `close` (possibly empty), whitespace allowed
    /// around every token; `item` reads one item.
    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// A JSON integer that fits i64 (no fraction or exponent: those go to serde).
    fn integer(&mut self) -> Option<i64> {
        let start = self.i;
        if self.peek()? == b'-' {
            self.i += 1;
        }
        let digits = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let n = self.i - digits;
        // `-0` is a float to serde_json (negative zero): let serde decide.
        if n == 0
            || (n > 1 && self.b[digits] == b'0')
            || (digits > start && n == 1 && self.b[digits] == b'0')
            || matches!(self.peek(), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        self.s[start..self.i].parse().ok()
    }

    /// Steps over any JSON value, checking its grammar.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.sequence(b'{', b'}', |p| {
                p.skip_string()?;
                p.ws();
                p.eat(b':')?;
                p.ws();
                p.skip_value(depth + 1)
            }),
            b'[' => self.sequence(b'[', b']', |p| p.skip_value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.i = special(self.b, self.i)?;
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b.get(self.i..self.i + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        // Surrogates need pairing rules: leave those to serde.
                        if matches!(hex[0], b'd' | b'D')
                            && matches!(hex[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                        {
                            return None;
                        }
                        self.i += 4;
                    }
                    _ => return None,
                },
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    fn skip_number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let start = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - start
        };
        let first = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[first] == b'0') {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs the `json_scanner` fuzz target found the scanner accepting although serde
    /// rejects them (fuzz/regressions/json_scanner): the scanner now leaves them to serde.
    #[test]
    fn fuzz_regressions_are_left_to_serde() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/json_scanner");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Some(fast) = decode(&bytes) {
                let reference: Report<'_> = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(fast, reference);
            }
            seen += 1;
        }
        assert!(seen >= 1);
    }
    use crate::event::Discovery;
    use proptest::prelude::*;

    fn serde(payload: &[u8]) -> Option<Report<'_>> {
        sonic_rs::from_slice(payload).ok()
    }

    fn arb_event() -> impl Strategy<Value = Discovery<'static>> {
        crate::event::arb_discovery("[a-zA-Z0-9:.\\- é\"\\\\/\u{1}]{0,16}")
    }

    /// Whether the fast path accepted `payload`, failing the case if serde reads it differently.
    fn accepted_identically(payload: &[u8]) -> Result<bool, TestCaseError> {
        match decode(payload) {
            Some(fast) => {
                prop_assert_eq!(
                    Some(fast),
                    serde(payload),
                    "{}",
                    String::from_utf8_lossy(payload)
                );
                Ok(true)
            }
            None => Ok(false),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn whatever_the_fast_path_accepts_serde_reads_the_same(e in arb_event(), pretty in any::<bool>(),
                                                                extra in "[\\[\\]{}\",:0-9a-z.eE+\\- ]{0,24}",
                                                                flip in any::<(prop::sample::Index, u8)>()) {
            let json = if pretty { serde_json::to_vec_pretty(&e).unwrap() } else { serde_json::to_vec(&e).unwrap() };
            let plain = !json.contains(&b'\\');
            // Events without escapes take the fast path.
            prop_assert!(accepted_identically(&json)? || !plain, "plain event fell back: {}", String::from_utf8_lossy(&json));
            // An extra member of arbitrary shape: accepted only where serde accepts it.
            let mut with_extra = json[..json.len() - 1].to_vec();
            with_extra.extend_from_slice(b",\"x\":");
            with_extra.extend_from_slice(extra.as_bytes());
            with_extra.push(b'}');
            accepted_identically(&with_extra)?;
            // Any corrupted byte: accepted only where serde accepts it, identically.
            let mut bad = json.clone();
            let i = flip.0.index(bad.len());
            bad[i] ^= flip.1 | 1;
            accepted_identically(&bad)?;
        }
    }

    proptest! {
        #[test]
        fn special_finds_the_first_quote_backslash_or_control(bytes in proptest::collection::vec(any::<u8>(), 0..40), from in 0..40usize) {
            let from = from.min(bytes.len());
            let expected = bytes[from..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|p| from + p);
            prop_assert_eq!(special(&bytes, from), expected);
        }
    }

    #[test]
    fn reads_a_sensor_event_and_steps_over_nested_extras() {
        let json = br#" {"tenant":"acme","site":"p1","sensor":"s","observed_at":"2026-11-23T09:00:00Z",
            "vendor":{"name":"Siemens","tags":["a",1.5e3,-0.25,true,null,{"k":"v\u00e9\n"}]},
            "macs":["00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5F"],"ips":[],"zone":null,"category":"ot","agent_managed":true} "#;
        let r = decode(json).expect("fast path");
        assert_eq!(r, serde(json).unwrap());
        assert_eq!(
            (r.observed_at, r.category, r.agent_managed, r.macs.len()),
            (1_795_424_400_000, DeviceCategory::Ot, true, 2)
        );
    }

    #[test]
    fn hands_anything_unusual_to_serde() {
        let base = |extra: &str| {
            format!(
                r#"{{"tenant":"t","site":"s","sensor":"x","observed_at":1795424400000{extra}}}"#
            )
        };
        assert!(decode(base("").as_bytes()).is_some());
        for odd in [
            r#","tenant":"again""#,      // duplicate field
            r#","site":"e\u0073caped""#, // escaped read field
            r#","category":"Ot""#,       // not a name serde accepts
            r#","macs":null"#,           // null list
            r#","x":01"#,                // leading zero
            r#","x":[1,]"#,              // trailing comma
            r#","x":"\ud800""#,          // lone surrogate
            r#","agent_managed":1"#,     // number for a bool
        ] {
            assert!(decode(base(odd).as_bytes()).is_none(), "{odd}");
        }
        assert!(decode(br#"{"tenant":"t","site":"s","sensor":"x","observed_at":1.5}"#).is_none());
        assert!(
            decode(br#"{"tenant":"t","site":"s","sensor":"x"}"#).is_none(),
            "missing observed_at"
        );
        assert!(
            decode(br#"{"tenant":"t","site":"s","sensor":"x","observed_at":1} x"#).is_none(),
            "trailing garbage"
        );
    }
}
