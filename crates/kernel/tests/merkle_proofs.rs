//! Inclusion and consistency proofs verify for every tree size from 1 to 300, and every
//! mutated proof is refused.

use citychain_kernel::Hash32;
use citychain_kernel::merkle::{ConsistencyProof, InclusionProof, MerkleTree};

const MAX_SIZE: u64 = 300;

fn leaves(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf-{i}").into_bytes()).collect()
}

/// Every way of damaging an inclusion proof by one step.
fn inclusion_mutants(p: &InclusionProof) -> Vec<InclusionProof> {
    let mut out = Vec::new();
    for i in 0..p.path.len() {
        let mut m = p.clone();
        m.path[i].0[i % 32] ^= 1;
        out.push(m);
        let mut m = p.clone();
        m.path.remove(i);
        out.push(m);
    }
    let mut m = p.clone();
    m.path.push(Hash32([7; 32]));
    out.push(m);
    if p.path.len() >= 2 {
        let mut m = p.clone();
        m.path.swap(0, 1);
        if m.path != p.path {
            out.push(m);
        }
    }
    let mut m = p.clone();
    m.leaf_index ^= 1;
    if m.leaf_index < m.tree_size {
        out.push(m);
    }
    let mut m = p.clone();
    m.tree_size += 1;
    out.push(m);
    out
}

/// A proof's size is bound to its root by whoever publishes the root (a block header carries
/// both), so each mutant is checked against the root of the size it claims.
#[test]
fn inclusion_proofs_verify_for_every_size_and_mutants_are_refused() {
    let data = leaves(MAX_SIZE + 1);
    let full = MerkleTree::new(&data);
    let roots: Vec<Hash32> = (0..=MAX_SIZE + 1)
        .map(|n| full.root_at(n).unwrap())
        .collect();
    for n in 1..=MAX_SIZE {
        let tree = MerkleTree::new(&data[..n as usize]);
        let root = tree.root();
        assert_eq!(root, roots[n as usize]);
        for index in 0..n {
            let proof = tree.inclusion_proof(index).unwrap();
            proof
                .verify(&data[index as usize], &root)
                .unwrap_or_else(|e| panic!("size {n} index {index}: {e}"));
            // The proof does not prove another leaf.
            let other = format!("not-a-leaf-{index}");
            assert!(proof.verify(other.as_bytes(), &root).is_err());
            // Mutants are only checked on a sample of indices to keep the test quick.
            if index % 7 == 0 || index + 1 == n {
                for mutant in inclusion_mutants(&proof) {
                    let claimed_root = roots[mutant.tree_size as usize];
                    assert!(
                        mutant.verify(&data[index as usize], &claimed_root).is_err(),
                        "size {n} index {index}: mutant {mutant:?} verified"
                    );
                }
            }
        }
        assert!(tree.inclusion_proof(n).is_err());
    }
}

fn consistency_mutants(p: &ConsistencyProof) -> Vec<ConsistencyProof> {
    let mut out = Vec::new();
    for i in 0..p.path.len() {
        let mut m = p.clone();
        m.path[i].0[31 - i % 32] ^= 0x80;
        out.push(m);
        let mut m = p.clone();
        m.path.remove(i);
        out.push(m);
    }
    let mut m = p.clone();
    m.path.push(Hash32([9; 32]));
    out.push(m);
    if p.first_size > 1 {
        let mut m = p.clone();
        m.first_size -= 1;
        out.push(m);
    }
    let mut m = p.clone();
    m.second_size += 1;
    out.push(m);
    out
}

#[test]
fn consistency_proofs_verify_for_every_pair_of_sizes_and_mutants_are_refused() {
    let data = leaves(MAX_SIZE + 1);
    let full = MerkleTree::new(&data);
    let roots: Vec<Hash32> = (0..=MAX_SIZE + 1)
        .map(|n| full.root_at(n).unwrap())
        .collect();
    for second in 1..=MAX_SIZE {
        for first in 1..=second {
            let proof = full.consistency_proof(first, second).unwrap();
            proof
                .verify(&roots[first as usize], &roots[second as usize])
                .unwrap_or_else(|e| panic!("{first} -> {second}: {e}"));
            if first < second && (first % 5 == 0 || second % 11 == 0 || first == 1) {
                for mutant in consistency_mutants(&proof) {
                    let (a, b) = (mutant.first_size as usize, mutant.second_size as usize);
                    assert!(
                        mutant.verify(&roots[a], &roots[b]).is_err(),
                        "{first} -> {second}: mutant {mutant:?} verified"
                    );
                }
                // Against a wrong old root it fails.
                assert!(
                    proof
                        .verify(&roots[first as usize - 1], &roots[second as usize])
                        .is_err()
                );
            }
        }
    }
}

#[test]
fn a_tree_with_a_changed_leaf_is_not_consistent() {
    let mut data = leaves(40);
    let tree = MerkleTree::new(&data);
    let old_root = tree.root_at(17).unwrap();
    data[3] = b"rewritten history".to_vec();
    let forged = MerkleTree::new(&data);
    let proof = forged.consistency_proof(17, 40).unwrap();
    assert!(proof.verify(&old_root, &forged.root()).is_err());
}
