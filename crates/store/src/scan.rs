//! Range scan requests: which keys (bounds or a prefix), how many, in which order; and their
//! normal form, a half-open byte interval that every implementation works from.

use std::ops::{Bound, RangeBounds};

/// A range scan: the keys between two bounds, in ascending order unless reversed, at most
/// `limit` of them.
///
/// ```
/// use citychain_store::Scan;
/// let all_accounts = Scan::prefix(b"account/");
/// let last_ten = Scan::prefix(b"log/").reverse().limit(10);
/// let window = Scan::range(&b"a"[..]..=&b"m"[..]);
/// # let _ = (all_accounts, last_ten, window);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    limit: Option<usize>,
    reverse: bool,
}

impl Scan {
    /// Every key of the store.
    pub fn all() -> Scan {
        Scan {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            limit: None,
            reverse: false,
        }
    }

    /// The keys between two owned bounds, for scans that move their start as they go.
    pub fn between(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Scan {
        Scan {
            start,
            end,
            limit: None,
            reverse: false,
        }
    }

    /// The keys within `range`, e.g. `&b"a"[..]..&b"b"[..]` or
    /// `(Bound::Excluded(&b"a"[..]), Bound::Unbounded)`.
    pub fn range<'k, R: RangeBounds<&'k [u8]>>(range: R) -> Scan {
        Scan {
            start: range.start_bound().map(|key| key.to_vec()),
            end: range.end_bound().map(|key| key.to_vec()),
            limit: None,
            reverse: false,
        }
    }

    /// The keys that start with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Scan {
        let end = match prefix_end(prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        Scan {
            start: Bound::Included(prefix.to_vec()),
            end,
            limit: None,
            reverse: false,
        }
    }

    /// Returns at most `limit` entries: the first ones in the scan's order, so with
    /// [`Scan::reverse`] the greatest keys.
    pub fn limit(mut self, limit: usize) -> Scan {
        self.limit = Some(limit);
        self
    }

    /// Returns entries in descending key order.
    pub fn reverse(mut self) -> Scan {
        self.reverse = true;
        self
    }

    /// The lower bound.
    pub fn start(&self) -> Bound<&[u8]> {
        self.start.as_ref().map(Vec::as_slice)
    }

    /// The upper bound.
    pub fn end(&self) -> Bound<&[u8]> {
        self.end.as_ref().map(Vec::as_slice)
    }

    /// The most entries to return, if limited.
    pub fn max_entries(&self) -> Option<usize> {
        self.limit
    }

    /// True if entries come in descending key order.
    pub fn is_reverse(&self) -> bool {
        self.reverse
    }

    /// The scan's keys as a half-open interval.
    pub fn span(&self) -> KeySpan {
        // Every bound becomes inclusive-below / exclusive-above: `k + [0]` is the smallest key
        // greater than `k`, so "after k" is "from k + [0]" and "up to k" is "before k + [0]".
        let begin = match &self.start {
            Bound::Included(key) => key.clone(),
            Bound::Excluded(key) => successor(key),
            Bound::Unbounded => Vec::new(),
        };
        let end = match &self.end {
            Bound::Included(key) => Some(successor(key)),
            Bound::Excluded(key) => Some(key.clone()),
            Bound::Unbounded => None,
        };
        KeySpan { begin, end }
    }
}

/// Keys `k` with `begin <= k` and, if `end` is set, `k < end`, in byte-wise lexicographic order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpan {
    /// The smallest key in the span.
    pub begin: Vec<u8>,
    /// The first key after the span, or `None` for no upper bound.
    pub end: Option<Vec<u8>>,
}

impl KeySpan {
    /// True if no key can fall in the span.
    pub fn is_empty(&self) -> bool {
        self.end.as_ref().is_some_and(|end| *end <= self.begin)
    }

    /// True if `key` falls in the span.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.begin.as_slice() && self.end.as_ref().is_none_or(|end| key < end.as_slice())
    }

    /// The span as bounds, for `BTreeMap::range` and the like. Do not call it on an empty span:
    /// those functions panic on an inverted range.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let end = match &self.end {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        (Bound::Included(self.begin.as_slice()), end)
    }
}

/// The smallest key greater than `key`.
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The smallest key that is greater than every key starting with `prefix`, or `None` if there
/// is none (the prefix is empty or all `0xff` bytes).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&byte| byte != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_skips_trailing_ff_bytes() {
        let cases: [(&[u8], Option<&[u8]>); 5] = [
            (b"abc", Some(b"abd")),
            (b"a\xff", Some(b"b")),
            (b"\x00\xff\xff", Some(b"\x01")),
            (b"\xff\xff", None),
            (b"", None),
        ];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix).as_deref(), end, "prefix {prefix:?}");
        }
    }

    #[test]
    fn bounds_become_half_open_spans() {
        let span = Scan::range((Bound::Excluded(&b"a"[..]), Bound::Included(&b"c"[..]))).span();
        assert_eq!(
            span,
            KeySpan {
                begin: b"a\0".to_vec(),
                end: Some(b"c\0".to_vec())
            }
        );
        assert!(!span.contains(b"a"));
        assert!(span.contains(b"a\0"));
        assert!(span.contains(b"c"));
        assert!(!span.contains(b"c\0"));

        let all = Scan::all().span();
        assert!(all.contains(b"") && all.contains(b"\xff\xff"));
    }

    #[test]
    fn inverted_and_degenerate_ranges_are_empty() {
        assert!(Scan::range(&b"b"[..]..&b"a"[..]).span().is_empty());
        assert!(Scan::range(&b"a"[..]..&b"a"[..]).span().is_empty());
        assert!(!Scan::range(&b"a"[..]..=&b"a"[..]).span().is_empty());
        assert!(
            Scan::range((Bound::Excluded(&b"a"[..]), Bound::Included(&b"a"[..])))
                .span()
                .is_empty()
        );
    }
}
