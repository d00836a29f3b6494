//! Shortened ids: which store keys a hex prefix of a transaction id or block hash names. People
//! copy ids as they are printed, shortened; a prefix names an id when exactly one id starts
//! with it. An odd number of digits is allowed: the last digit fixes the high half of a byte.

use thiserror::Error;

/// The fewest hex digits a prefix may have: 8 digits (32 bits) keep accidental matches rare
/// on any chain people read by eye.
pub const MIN_PREFIX_DIGITS: usize = 8;

/// The most hex digits: a whole 32-byte id.
pub const MAX_PREFIX_DIGITS: usize = 64;

/// The most matches a lookup lists.
pub const MAX_MATCHES: usize = 16;

/// A prefix that names nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrefixError {
    /// Too few or too many digits.
    #[error("prefix has {digits} hex digits; give {MIN_PREFIX_DIGITS} to {MAX_PREFIX_DIGITS}")]
    Length {
        /// How many digits it has.
        digits: usize,
    },
    /// A character that is not a hex digit.
    #[error("prefix has {found:?} at position {at}, which is not a hex digit (0-9, a-f)")]
    NotHex {
        /// The character.
        found: char,
        /// Its position, from 0.
        at: usize,
    },
}

/// The keys under `table` (whose keys are `table || id`) that a hex `prefix` names: from the
/// first key returned, up to and including every key that starts with the second (the store
/// shell turns that into an exclusive end with its `prefix_end`).
pub fn prefix_range(table: &[u8], prefix: &str) -> Result<(Vec<u8>, Vec<u8>), PrefixError> {
    let digits = prefix.chars().count();
    if !(MIN_PREFIX_DIGITS..=MAX_PREFIX_DIGITS).contains(&digits) {
        return Err(PrefixError::Length { digits });
    }
    let mut nibbles = Vec::with_capacity(digits);
    for (at, found) in prefix.chars().enumerate() {
        let value = found
            .to_digit(16)
            .ok_or(PrefixError::NotHex { found, at })?;
        nibbles.push(value as u8);
    }
    // The lowest id with the prefix pads it with 0s, the highest with fs.
    let bytes = |pad: u8| -> Vec<u8> {
        let mut out = table.to_vec();
        for pair in nibbles.chunks(2) {
            let low = pair.get(1).copied().unwrap_or(pad);
            out.push(pair[0] << 4 | low);
        }
        out
    };
    Ok((bytes(0), bytes(0xf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains((low, high): &(Vec<u8>, Vec<u8>), key: &[u8]) -> bool {
        key >= low.as_slice() && (key <= high.as_slice() || key.starts_with(high))
    }

    #[test]
    fn even_and_odd_prefixes_cover_exactly_the_ids_that_start_with_them() {
        let table = b"t/";
        let id = |hex: &str| {
            let mut key = table.to_vec();
            for pair in hex.as_bytes().chunks(2) {
                key.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
            }
            key
        };
        let cases = [
            ("deadbeef", "deadbeef00", true),
            ("deadbeef", "deadbeefff", true),
            ("deadbeef", "deadbef000", false),
            ("deadbeef", "deadbeee00", false),
            ("deadbeef0", "deadbeef0f", true),
            ("deadbeef0", "deadbeef10", false),
            ("DEADBEEF", "deadbeef01", true),
            ("ffffffff", "ffffffffff", true),
            ("ffffffff", "fffffffeff", false),
        ];
        for (prefix, key, expected) in cases {
            let range = prefix_range(table, prefix).unwrap();
            assert_eq!(contains(&range, &id(key)), expected, "{prefix} vs {key}");
        }
        // Nothing outside the table is named.
        let range = prefix_range(table, "ffffffff").unwrap();
        assert!(!contains(&range, b"u/"));
    }

    #[test]
    fn short_long_and_non_hex_prefixes_are_refused_by_name() {
        assert_eq!(
            prefix_range(b"t/", "abc1234"),
            Err(PrefixError::Length { digits: 7 })
        );
        assert_eq!(
            prefix_range(b"t/", &"a".repeat(65)),
            Err(PrefixError::Length { digits: 65 })
        );
        let err = prefix_range(b"t/", "abcd12g4").unwrap_err();
        assert_eq!(err, PrefixError::NotHex { found: 'g', at: 6 });
        assert!(err.to_string().contains("position 6"));
    }
}
