//! Pagination of the services' lists over store key ranges: page sizes, their limit, and page tokens.
//!
//! A page token is the lowercase hex of the last store key returned, so the next page starts
//! strictly after it; it is opaque to clients, and one that does not belong to the list asked
//! for is refused rather than silently reinterpreted.

use thiserror::Error;

/// Entries per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// The largest page served; larger requests are refused naming this limit.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A request for a page that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PageError {
    /// More entries asked for than [`MAX_PAGE_SIZE`].
    #[error("page_size {asked} is larger than the maximum of {limit}")]
    TooLarge {
        /// The size asked for.
        asked: u32,
        /// The limit.
        limit: u32,
    },
    /// The page token was not issued for this list.
    #[error("page_token {token:?} does not belong to this list")]
    BadToken {
        /// The token received (shortened).
        token: String,
    },
}

/// A validated page request over the keys under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Entries to return at most.
    pub size: usize,
    /// The first key that may be returned (inclusive).
    pub start: Vec<u8>,
}

impl Page {
    /// Checks `size` and `token` for the list of keys under `prefix`, starting at `first`
    /// (a key under `prefix`) when there is no token.
    pub fn new(prefix: &[u8], first: Vec<u8>, size: u32, token: &str) -> Result<Page, PageError> {
        if size > MAX_PAGE_SIZE {
            return Err(PageError::TooLarge {
                asked: size,
                limit: MAX_PAGE_SIZE,
            });
        }
        let size = if size == 0 { DEFAULT_PAGE_SIZE } else { size } as usize;
        if token.is_empty() {
            return Ok(Page { size, start: first });
        }
        let bad = || PageError::BadToken {
            token: token.chars().take(80).collect(),
        };
        let last = hex::decode(token).map_err(|_| bad())?;
        if !last.starts_with(prefix) || last.len() == prefix.len() {
            return Err(bad());
        }
        // The smallest key after `last`.
        let mut start = last;
        start.push(0);
        Ok(Page { size, start })
    }

    /// The token for the page after one that ended at `last_key`, or empty when the page
    /// was not full (so it was the last).
    pub fn next_token(&self, returned: usize, last_key: Option<&[u8]>) -> String {
        match last_key {
            Some(key) if returned >= self.size => hex::encode(key),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_the_default_and_the_maximum_is_enforced_by_name() {
        let page = Page::new(b"p/", b"p/".to_vec(), 0, "").unwrap();
        assert_eq!(page.size, DEFAULT_PAGE_SIZE as usize);
        assert!(Page::new(b"p/", b"p/".to_vec(), MAX_PAGE_SIZE, "").is_ok());
        let err = Page::new(b"p/", b"p/".to_vec(), MAX_PAGE_SIZE + 1, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "page_size 101 is larger than the maximum of 100"
        );
    }

    #[test]
    fn a_token_continues_strictly_after_the_last_key() {
        let page = Page::new(b"p/", b"p/".to_vec(), 2, "").unwrap();
        let token = page.next_token(2, Some(b"p/\x05"));
        let next = Page::new(b"p/", b"p/".to_vec(), 2, &token).unwrap();
        assert_eq!(next.start, b"p/\x05\x00");
        assert_eq!(page.next_token(1, Some(b"p/\x05")), "");
    }

    #[test]
    fn foreign_or_garbage_tokens_are_refused() {
        for token in ["zz", &hex::encode(b"q/\x01"), &hex::encode(b"p/")] {
            let err = Page::new(b"p/", b"p/".to_vec(), 2, token).unwrap_err();
            assert!(matches!(err, PageError::BadToken { .. }), "{token}");
        }
    }
}
