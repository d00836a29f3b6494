//! The validator set of a height: who may sign commit certificates, how many signatures a
//! quorum needs, the set's hash that block headers carry, and the proposer schedule (who
//! proposes in each round of each height).

use crate::hash::{Domain, Hash32, domain_hash};
use crate::ids::{Height, MemberId};
use crate::keys::PublicKey;

/// One validator: a department and its signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// The department's member id.
    pub member_id: MemberId,
    /// The key that signs its votes.
    pub key: PublicKey,
}

/// Validators sorted by key, each with equal weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// Builds a set, sorting by key.
    pub fn new(mut validators: Vec<Validator>) -> Self {
        validators.sort_by_key(|v| v.key);
        ValidatorSet { validators }
    }

    /// The validators in key order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// How many validators there are (`n`).
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// How many may be faulty: the largest `f` with `3f < n`.
    pub fn max_faulty(&self) -> usize {
        self.len().saturating_sub(1) / 3
    }

    /// Signatures a commit needs: more than two thirds of `n` (2f + 1 when n = 3f + 1).
    pub fn quorum(&self) -> usize {
        self.len() * 2 / 3 + 1
    }

    /// The validator with this key.
    pub fn get(&self, key: &PublicKey) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.key.cmp(key))
            .ok()
            .map(|i| &self.validators[i])
    }

    /// The set's hash: over `key || len(member id) as one byte || member id` for each
    /// validator in key order (member ids are at most 128 bytes).
    pub fn hash(&self) -> Hash32 {
        let mut bytes = Vec::with_capacity(self.validators.len() * 48);
        for v in &self.validators {
            bytes.extend_from_slice(v.key.as_bytes());
            bytes.push(v.member_id.as_str().len() as u8);
            bytes.extend_from_slice(v.member_id.as_str().as_bytes());
        }
        domain_hash(Domain::Validators, &bytes)
    }

    /// The proposer of `round` at `height`: validators take turns in key order, starting at
    /// index `height mod n` in round 0 and moving one on per round.
    ///
    /// # Panics
    /// If the set is empty: a validator set is never empty (genesis refuses one).
    pub fn proposer(&self, height: Height, round: u32) -> &Validator {
        &self.validators[proposer_index(self.len(), height.0, round)]
    }

    /// Whether `key` may be the proposer named in the header of a block decided in `round` at
    /// `height`. A block is built by the proposer of the round it was first proposed in, and a
    /// later round may decide it again (a re-proposal carries the block unchanged), so any
    /// proposer of rounds 0 to `round` may be named; no one else.
    pub fn may_have_built(&self, key: &PublicKey, height: Height, round: u32) -> bool {
        let turns = u64::from(round).saturating_add(1).min(self.len() as u64) as u32;
        (0..turns).any(|r| self.proposer(height, r).key == *key)
    }
}

/// The index of the proposer of (`height`, `round`) among `n` key-ordered validators.
///
/// # Panics
/// If `n` is zero.
pub fn proposer_index(n: usize, height: u64, round: u32) -> usize {
    assert!(n > 0, "a validator set is never empty");
    let n = n as u64;
    // Reduce each term first so the sum cannot overflow.
    ((height % n + u64::from(round) % n) % n) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn set(n: u8) -> ValidatorSet {
        ValidatorSet::new(
            (0..n)
                .map(|i| Validator {
                    member_id: MemberId::new(format!("dept.{i}")).unwrap(),
                    key: SigningKey::from_seed(&[i + 1; 32]).public_key(),
                })
                .collect(),
        )
    }

    #[test]
    fn quorum_is_two_f_plus_one() {
        for (n, f, q) in [(1, 0, 1), (4, 1, 3), (7, 2, 5), (10, 3, 7)] {
            let s = set(n);
            assert_eq!((s.max_faulty(), s.quorum()), (f, q), "n = {n}");
        }
    }

    #[test]
    fn hash_depends_on_members_not_order() {
        let a = set(4);
        let mut reversed = a.validators().to_vec();
        reversed.reverse();
        assert_eq!(ValidatorSet::new(reversed).hash(), a.hash());
        assert_ne!(set(4).hash(), set(7).hash());
    }

    #[test]
    fn a_header_may_name_the_proposer_of_its_round_or_an_earlier_one_only() {
        let s = set(4);
        let key = |i: usize| s.validators()[i].key;
        // Height 5, n = 4: round 0 starts at index 1.
        assert_eq!(s.proposer(Height(5), 0).key, key(1));
        assert!(s.may_have_built(&key(1), Height(5), 0));
        assert!(!s.may_have_built(&key(2), Height(5), 0));
        assert!(s.may_have_built(&key(2), Height(5), 1));
        assert!(!s.may_have_built(&key(3), Height(5), 1));
        assert!(!s.may_have_built(&key(0), Height(5), 2));
        // From round n - 1 on, every validator has had a turn.
        assert!((0..4).all(|i| s.may_have_built(&key(i), Height(5), 3)));
        assert!((0..4).all(|i| s.may_have_built(&key(i), Height(5), u32::MAX)));
    }
}
