//! Damage a stopped service's store file the way a failing disk would, to test that the
//! service finds it: flip a bit inside every copy of some bytes it stored.

use std::path::Path;

/// Flips one bit in the middle of every copy of `needle` in the file at `path` (a
/// copy-on-write store may keep an older page holding it too); returns how many copies it
/// changed.
pub fn flip_in_file(path: &Path, needle: &[u8]) -> usize {
    let mut bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut at = 0;
    let mut flipped = 0;
    while let Some(found) = bytes[at..]
        .windows(needle.len())
        .position(|window| window == needle)
    {
        let position = at + found + needle.len() / 2;
        bytes[position] ^= 0x04;
        flipped += 1;
        at = position + 1;
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    flipped
}

/// Bytes of an encoded block unlikely to occur anywhere else in a store: 32 bytes from the
/// middle of its last precommit signature, which ends the encoding.
pub fn block_needle(encoded: &[u8]) -> &[u8] {
    &encoded[encoded.len() - 40..encoded.len() - 8]
}
