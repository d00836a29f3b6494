//! A Merkle tree in the shape of RFC 6962 (Certificate Transparency) over blake3, with
//! inclusion and consistency proofs and their verifiers.
//!
//! Leaves are hashed as `blake3(0x00 || leaf)` and interior nodes as
//! `blake3(0x01 || left || right)`, so a leaf can never pose as a node. The empty tree's root is
//! `blake3("")`. A tree of `n > 1` leaves splits at the largest power of two below `n`, which
//! fixes one shape per size and makes consistency proofs between any two sizes possible.
//! The verifiers follow the iterative algorithms of RFC 9162 section 2.1.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hash::Hash32;

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `blake3(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[LEAF_PREFIX]);
    hasher.update(data);
    Hash32(*hasher.finalize().as_bytes())
}

/// `blake3(0x01 || left || right)`.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[NODE_PREFIX]);
    hasher.update(left.as_bytes());
    hasher.update(right.as_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The root of the empty tree.
pub fn empty_root() -> Hash32 {
    Hash32(*blake3::hash(b"").as_bytes())
}

/// The largest power of two strictly below `n` (for `n >= 2`).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Root over already-hashed leaves.
fn subtree_root(leaves: &[Hash32]) -> Hash32 {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&subtree_root(&leaves[..k]), &subtree_root(&leaves[k..]))
        }
    }
}

/// A proof or verification that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MerkleError {
    /// The leaf index is outside the tree.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// Consistency needs `0 < first <= second`.
    #[error(
        "consistency between sizes {first} and {second} is undefined (need 0 < first <= second)"
    )]
    BadSizes {
        /// The older size.
        first: u64,
        /// The newer size.
        second: u64,
    },
    /// The proof has the wrong number of hashes for its sizes.
    #[error("proof has {actual} hashes, which does not fit its tree sizes")]
    WrongLength {
        /// Hashes in the proof.
        actual: usize,
    },
    /// The proof computes another root than the one expected.
    #[error("proof computes root {computed}, expected {expected}")]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash32,
        /// The root it should lead to.
        expected: Hash32,
    },
}

/// Proof that a leaf is at `leaf_index` in a tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The leaf's position, from 0.
    pub leaf_index: u64,
    /// The number of leaves in the tree.
    pub tree_size: u64,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<Hash32>,
}

/// Proof that the tree of `first_size` leaves is a prefix of the tree of `second_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The older tree's size.
    pub first_size: u64,
    /// The newer tree's size.
    pub second_size: u64,
    /// The proof's hashes, as RFC 6962 orders them.
    pub path: Vec<Hash32>,
}

/// A Merkle tree over a list of leaves, kept as leaf hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    leaves: Vec<Hash32>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (each hashed with the leaf prefix).
    pub fn new<T: AsRef<[u8]>>(leaves: &[T]) -> Self {
        MerkleTree {
            leaves: leaves.iter().map(|l| leaf_hash(l.as_ref())).collect(),
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash32 {
        subtree_root(&self.leaves)
    }

    /// The root of the tree made of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash32, MerkleError> {
        if size > self.len() {
            return Err(MerkleError::IndexOutOfRange {
                index: size,
                size: self.len(),
            });
        }
        Ok(subtree_root(&self.leaves[..size as usize]))
    }

    /// The inclusion proof of leaf `index`.
    pub fn inclusion_proof(&self, index: u64) -> Result<InclusionProof, MerkleError> {
        if index >= self.len() {
            return Err(MerkleError::IndexOutOfRange {
                index,
                size: self.len(),
            });
        }
        let mut path = Vec::new();
        inclusion_path(index as usize, &self.leaves, &mut path);
        Ok(InclusionProof {
            leaf_index: index,
            tree_size: self.len(),
            path,
        })
    }

    /// The consistency proof from the first `first` leaves to the first `second` leaves.
    pub fn consistency_proof(
        &self,
        first: u64,
        second: u64,
    ) -> Result<ConsistencyProof, MerkleError> {
        if first == 0 || first > second || second > self.len() {
            return Err(MerkleError::BadSizes { first, second });
        }
        let mut path = Vec::new();
        consistency_path(
            first as usize,
            &self.leaves[..second as usize],
            true,
            &mut path,
        );
        Ok(ConsistencyProof {
            first_size: first,
            second_size: second,
            path,
        })
    }
}

/// RFC 6962 `PATH(m, D[n])`, appended to `out` from the leaf upwards.
fn inclusion_path(m: usize, leaves: &[Hash32], out: &mut Vec<Hash32>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        inclusion_path(m, &leaves[..k], out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        inclusion_path(m - k, &leaves[k..], out);
        out.push(subtree_root(&leaves[..k]));
    }
}

/// RFC 6962 `SUBPROOF(m, D[n], b)`.
fn consistency_path(m: usize, leaves: &[Hash32], whole: bool, out: &mut Vec<Hash32>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(subtree_root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        consistency_path(m, &leaves[..k], whole, out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        consistency_path(m - k, &leaves[k..], false, out);
        out.push(subtree_root(&leaves[..k]));
    }
}

/// Drops trailing zero bits of `a` while shifting `b` along (RFC 9162's inner loop).
fn shift_while_even(a: &mut u64, b: &mut u64) {
    while *a & 1 == 0 && *a != 0 {
        *a >>= 1;
        *b >>= 1;
    }
}

impl InclusionProof {
    /// Checks that `leaf` (unhashed) sits at this proof's index under `root`.
    pub fn verify(&self, leaf: &[u8], root: &Hash32) -> Result<(), MerkleError> {
        if self.leaf_index >= self.tree_size {
            return Err(MerkleError::IndexOutOfRange {
                index: self.leaf_index,
                size: self.tree_size,
            });
        }
        let mut f_n = self.leaf_index;
        let mut s_n = self.tree_size - 1;
        let mut r = leaf_hash(leaf);
        for p in &self.path {
            if s_n == 0 {
                return Err(MerkleError::WrongLength {
                    actual: self.path.len(),
                });
            }
            if f_n & 1 == 1 || f_n == s_n {
                r = node_hash(p, &r);
                shift_while_even(&mut f_n, &mut s_n);
            } else {
                r = node_hash(&r, p);
            }
            f_n >>= 1;
            s_n >>= 1;
        }
        if s_n != 0 {
            return Err(MerkleError::WrongLength {
                actual: self.path.len(),
            });
        }
        if &r != root {
            return Err(MerkleError::RootMismatch {
                computed: r,
                expected: *root,
            });
        }
        Ok(())
    }
}

impl ConsistencyProof {
    /// Checks that the tree with root `first_root` is a prefix of the one with `second_root`.
    pub fn verify(&self, first_root: &Hash32, second_root: &Hash32) -> Result<(), MerkleError> {
        let (first, second) = (self.first_size, self.second_size);
        if first == 0 || first > second {
            return Err(MerkleError::BadSizes { first, second });
        }
        if first == second {
            if !self.path.is_empty() {
                return Err(MerkleError::WrongLength {
                    actual: self.path.len(),
                });
            }
            if first_root != second_root {
                return Err(MerkleError::RootMismatch {
                    computed: *first_root,
                    expected: *second_root,
                });
            }
            return Ok(());
        }
        let mut path = self.path.clone();
        if first.is_power_of_two() {
            path.insert(0, *first_root);
        }
        let Some((seed, rest)) = path.split_first() else {
            return Err(MerkleError::WrongLength { actual: 0 });
        };
        let mut f_n = first - 1;
        let mut s_n = second - 1;
        while f_n & 1 == 1 {
            f_n >>= 1;
            s_n >>= 1;
        }
        let mut f_r = *seed;
        let mut s_r = *seed;
        for c in rest {
            if s_n == 0 {
                return Err(MerkleError::WrongLength {
                    actual: self.path.len(),
                });
            }
            if f_n & 1 == 1 || f_n == s_n {
                f_r = node_hash(c, &f_r);
                s_r = node_hash(c, &s_r);
                shift_while_even(&mut f_n, &mut s_n);
            } else {
                s_r = node_hash(&s_r, c);
            }
            f_n >>= 1;
            s_n >>= 1;
        }
        if s_n != 0 {
            return Err(MerkleError::WrongLength {
                actual: self.path.len(),
            });
        }
        if &f_r != first_root {
            return Err(MerkleError::RootMismatch {
                computed: f_r,
                expected: *first_root,
            });
        }
        if &s_r != second_root {
            return Err(MerkleError::RootMismatch {
                computed: s_r,
                expected: *second_root,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_trees_have_the_rfc_shape() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let c = leaf_hash(b"c");
        let tree = MerkleTree::new(&[b"a", b"b", b"c"]);
        assert_eq!(tree.root(), node_hash(&node_hash(&a, &b), &c));
        assert_eq!(MerkleTree::new::<&[u8]>(&[]).root(), empty_root());
        assert_eq!(MerkleTree::new(&[b"a"]).root(), a);
    }

    #[test]
    fn leaf_and_node_prefixes_differ() {
        let a = leaf_hash(b"a");
        let mut both = Vec::new();
        both.extend_from_slice(a.as_bytes());
        both.extend_from_slice(a.as_bytes());
        assert_ne!(leaf_hash(&both), node_hash(&a, &a));
    }
}
