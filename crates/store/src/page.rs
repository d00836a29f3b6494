//! Pagination of the services' lists over store key ranges: page sizes, their limit, and page tokens.
//!
//! A page token names the last store key returned, so the next page starts strictly after it.
//! It is opaque to clients and authenticated: the lowercase hex of the key followed by a
//! 16-byte keyed BLAKE3 tag over the list's key prefix and the key, under the service's
//! [`PageKey`]. A token edited to jump elsewhere, made up, or issued for another list is
//! refused ([`PageError::BadToken`], INVALID_ARGUMENT) rather than reinterpreted. Every replica
//! of a service must hold the same key for its tokens to work on any of them.

use std::fmt;

use thiserror::Error;

/// Entries per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// The largest page served; larger requests are refused naming this limit.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The longest page token accepted, in characters; a longer one is refused before decoding.
pub const MAX_PAGE_TOKEN_CHARS: usize = 1_024;

/// The bytes of a token's tag.
const TAG_BYTES: usize = 16;

/// The key that authenticates a service's page tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct PageKey([u8; 32]);

impl PageKey {
    /// The key derived from a shared secret (any length; at least 32 random bytes is the
    /// operator's part).
    pub fn derive(secret: &[u8]) -> PageKey {
        PageKey(blake3::derive_key("citychain page token v1", secret))
    }

    fn tag(&self, prefix: &[u8], key: &[u8]) -> [u8; TAG_BYTES] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(&(prefix.len() as u64).to_be_bytes());
        hasher.update(prefix);
        hasher.update(key);
        let mut tag = [0; TAG_BYTES];
        tag.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_BYTES]);
        tag
    }
}

impl fmt::Debug for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PageKey(..)")
    }
}

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
    /// The page token was not issued by this service for this list, or was altered.
    #[error(
        "page_token {token:?} was not issued for this list (it is altered, made up or another list's)"
    )]
    BadToken {
        /// The token received (shortened).
        token: String,
    },
    /// The page token is longer than any this service issues.
    #[error("page_token is {chars} characters, the limit is {limit}")]
    TokenTooLong {
        /// Its length.
        chars: usize,
        /// [`MAX_PAGE_TOKEN_CHARS`].
        limit: usize,
    },
}

/// A validated page request over the keys under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Entries to return at most.
    pub size: usize,
    /// The first key that may be returned (inclusive).
    pub start: Vec<u8>,
    /// The list's key prefix and the key its tokens are tagged with.
    prefix: Vec<u8>,
    key: PageKey,
}

impl PageKey {
    /// Checks `size` and `token` for the list of every key under `prefix`, from its first:
    /// [`Page::new`] with `first` = `prefix`.
    pub fn list(&self, prefix: &[u8], size: u32, token: &str) -> Result<Page, PageError> {
        Page::new(self, prefix, prefix.to_vec(), size, token)
    }
}

impl Page {
    /// Checks `size` and `token` for the list of keys under `prefix`, starting at `first`
    /// (a key under `prefix`) when there is no token; `key` is the service's page key.
    pub fn new(
        key: &PageKey,
        prefix: &[u8],
        first: Vec<u8>,
        size: u32,
        token: &str,
    ) -> Result<Page, PageError> {
        if size > MAX_PAGE_SIZE {
            return Err(PageError::TooLarge {
                asked: size,
                limit: MAX_PAGE_SIZE,
            });
        }
        let size = if size == 0 { DEFAULT_PAGE_SIZE } else { size } as usize;
        let page = |start| Page {
            size,
            start,
            prefix: prefix.to_vec(),
            key: key.clone(),
        };
        if token.is_empty() {
            return Ok(page(first));
        }
        if token.len() > MAX_PAGE_TOKEN_CHARS {
            return Err(PageError::TokenTooLong {
                chars: token.chars().count(),
                limit: MAX_PAGE_TOKEN_CHARS,
            });
        }
        let bad = || PageError::BadToken {
            token: token.chars().take(40).collect(),
        };
        let bytes = hex::decode(token).map_err(|_| bad())?;
        let Some(split) = bytes.len().checked_sub(TAG_BYTES) else {
            return Err(bad());
        };
        let (last, tag) = bytes.split_at(split);
        // Compare every byte, whatever the first difference.
        let expected = key.tag(prefix, last);
        let differs = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 || !last.starts_with(prefix) || last.len() == prefix.len() {
            return Err(bad());
        }
        // The smallest key after `last`.
        let mut start = last.to_vec();
        start.push(0);
        Ok(page(start))
    }

    /// The token for the page after one that ended at `last_key`, or empty when the page
    /// was not full (so it was the last).
    pub fn next_token(&self, returned: usize, last_key: Option<&[u8]>) -> String {
        match last_key {
            Some(last) if returned >= self.size => {
                let mut token = hex::encode(last);
                token.push_str(&hex::encode(self.key.tag(&self.prefix, last)));
                token
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PageKey {
        PageKey::derive(b"a secret shared by every replica of the service")
    }

    #[test]
    fn zero_means_the_default_and_the_maximum_is_enforced_by_name() {
        let page = Page::new(&key(), b"p/", b"p/".to_vec(), 0, "").unwrap();
        assert_eq!(page.size, DEFAULT_PAGE_SIZE as usize);
        assert!(Page::new(&key(), b"p/", b"p/".to_vec(), MAX_PAGE_SIZE, "").is_ok());
        let err = Page::new(&key(), b"p/", b"p/".to_vec(), MAX_PAGE_SIZE + 1, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "page_size 101 is larger than the maximum of 100"
        );
    }

    #[test]
    fn a_token_continues_strictly_after_the_last_key_on_any_replica() {
        let page = Page::new(&key(), b"p/", b"p/".to_vec(), 2, "").unwrap();
        let token = page.next_token(2, Some(b"p/\x05"));
        // Another replica derives the same key from the same secret.
        let next = Page::new(&key(), b"p/", b"p/".to_vec(), 2, &token).unwrap();
        assert_eq!(next.start, b"p/\x05\x00");
        assert_eq!(page.next_token(1, Some(b"p/\x05")), "");
    }

    #[test]
    fn altered_foreign_made_up_or_overlong_tokens_are_refused() {
        let page = Page::new(&key(), b"p/", b"p/".to_vec(), 2, "").unwrap();
        let token = page.next_token(2, Some(b"p/\x05"));
        // The same key under another list's prefix, a key moved forward with the old tag,
        // a token from a service with another secret, and plain garbage.
        let other_list = Page::new(&key(), b"q/", b"q/".to_vec(), 2, "")
            .unwrap()
            .next_token(2, Some(b"q/\x05"));
        let moved = format!("{}{}", hex::encode(b"p/\x09"), &token[6..]);
        let other_secret = Page::new(&PageKey::derive(b"another"), b"p/", b"p/".to_vec(), 2, "")
            .unwrap()
            .next_token(2, Some(b"p/\x05"));
        let mut flipped = token.clone().into_bytes();
        flipped[7] = if flipped[7] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            other_list.as_str(),
            &moved,
            &other_secret,
            &flipped,
            "zz",
            &hex::encode(b"p/\x05"),
        ] {
            let err = Page::new(&key(), b"p/", b"p/".to_vec(), 2, bad).unwrap_err();
            assert!(matches!(err, PageError::BadToken { .. }), "{bad}: {err}");
        }
        let long = "a".repeat(MAX_PAGE_TOKEN_CHARS + 1);
        let err = Page::new(&key(), b"p/", b"p/".to_vec(), 2, &long).unwrap_err();
        assert_eq!(
            err.to_string(),
            "page_token is 1025 characters, the limit is 1024"
        );
    }
}
