//! Incremental UTF-8 validation of a text message that arrives in pieces
//! (RFC 6455 §8.1): a character may be split between fragments, but an
//! invalid byte is found in the fragment that carries it ("fail fast"),
//! not when the message ends.

/// Validates a text message piece by piece.
#[derive(Debug, Default)]
pub(crate) struct Utf8Validator {
    /// The bytes of a character cut by the end of the last piece.
    carry: [u8; 4],
    carried: usize,
}

impl Utf8Validator {
    /// Checks the next piece; `false` once the text cannot be UTF-8.
    pub(crate) fn feed(&mut self, mut piece: &[u8]) -> bool {
        if self.carried > 0 {
            // Complete the cut character from the front of this piece.
            let want = width(self.carry[0]);
            while self.carried < want {
                let Some((&b, rest)) = piece.split_first() else {
                    // Still cut: what is there must be a valid prefix.
                    return valid_prefix(&self.carry[..self.carried]);
                };
                self.carry[self.carried] = b;
                self.carried = self.carried.saturating_add(1);
                piece = rest;
            }
            if std::str::from_utf8(&self.carry[..want]).is_err() {
                return false;
            }
            self.carried = 0;
        }
        match std::str::from_utf8(piece) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => {
                // The piece ends inside a character: keep its bytes.
                let tail = &piece[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carried = tail.len();
                valid_prefix(tail)
            }
        }
    }

    /// The message ended: no character may be left cut.
    pub(crate) fn finish(&mut self) -> bool {
        let ok = self.carried == 0;
        self.carried = 0;
        ok
    }
}

/// A character's length by its first byte (0 for a byte that cannot start
/// one; treated as 1 so that validation fails on it).
fn width(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Whether `bytes`, the start of a character, can still become a valid
/// one (RFC 3629's table: the second byte's range depends on the first).
fn valid_prefix(bytes: &[u8]) -> bool {
    let want = width(bytes[0]);
    if bytes.len() >= want {
        return std::str::from_utf8(&bytes[..want]).is_ok();
    }
    let second_ok = match bytes.get(1) {
        None => true,
        Some(&b) => match bytes[0] {
            0xE0 => (0xA0..=0xBF).contains(&b),
            0xED => (0x80..=0x9F).contains(&b),
            0xF0 => (0x90..=0xBF).contains(&b),
            0xF4 => (0x80..=0x8F).contains(&b),
            _ => (0x80..=0xBF).contains(&b),
        },
    };
    second_ok && bytes.iter().skip(2).all(|b| (0x80..=0xBF).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces_ok(text: &[u8], cut: usize) -> bool {
        let mut v = Utf8Validator::default();
        let (a, b) = text.split_at(cut);
        v.feed(a) && v.feed(b) && v.finish()
    }

    #[test]
    fn every_cut_of_valid_text_is_accepted() {
        let text = "aé€😀z".as_bytes();
        for cut in 0..=text.len() {
            assert!(pieces_ok(text, cut), "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_feeding_agrees_with_std() {
        let samples: [&[u8]; 8] = [
            "κόσμε".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xed\x9f\xbf",
            b"\xf0\x90\x80",
            b"\xef\xbf\xbf",
        ];
        for s in samples {
            let mut v = Utf8Validator::default();
            let mut ok = true;
            for b in s {
                ok &= v.feed(std::slice::from_ref(b));
            }
            ok &= v.finish();
            assert_eq!(ok, std::str::from_utf8(s).is_ok(), "{s:x?}");
        }
    }

    #[test]
    fn an_invalid_byte_fails_in_its_own_piece() {
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"hello"));
        // 0xED 0xA0 starts a surrogate: no continuation can make it valid.
        assert!(!v.feed(b"\xed\xa0"));
        let mut v = Utf8Validator::default();
        assert!(!v.feed(b"\xf4\x90"), "beyond U+10FFFF is known at once");
    }
}
