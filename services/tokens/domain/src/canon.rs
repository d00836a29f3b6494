//! The canonical byte encoding the journal hashes: fixed-width big-endian integers, strings
//! and byte strings prefixed with their length, optional values with a presence byte. One
//! value has exactly one encoding, so equal states hash equally on every machine.

/// Appends canonical encodings to a buffer.
#[derive(Debug, Default, Clone)]
pub struct Canon(Vec<u8>);

impl Canon {
    /// An empty buffer.
    pub fn new() -> Canon {
        Canon(Vec::new())
    }

    /// One byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    /// Four bytes, big-endian.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Eight bytes, big-endian.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Eight bytes, big-endian two's complement.
    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A fixed 32-byte value (a hash or an id): no length, it is always 32.
    pub fn bytes32(&mut self, value: &[u8; 32]) -> &mut Self {
        self.0.extend_from_slice(value);
        self
    }

    /// A string: its length as eight bytes, then its UTF-8 bytes.
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    /// A count of items that follow.
    pub fn len(&mut self, count: usize) -> &mut Self {
        self.u64(count as u64)
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_carry_their_length_so_concatenations_differ() {
        let mut a = Canon::new();
        a.str("ab").str("c");
        let mut b = Canon::new();
        b.str("a").str("bc");
        assert_ne!(a.as_bytes(), b.as_bytes());
        let mut c = Canon::new();
        c.u8(1).u32(2).u64(3).i64(-1);
        assert_eq!(c.into_bytes().len(), 1 + 4 + 8 + 8);
    }
}
