//! The licence service's pure rules: how its state is laid out in the store ([`keys`]) and
//! when the key of a committed read may be released ([`release`]). No IO, clock or randomness.

pub mod keys;
pub mod release;

pub use release::{Payment, ReadVerdict, Release, Withheld, decide_release};
