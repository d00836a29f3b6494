//! Shared fixtures: a four-department network, transaction builders, and real blocks with
//! commit certificates signed by the validator keys in force.

#![allow(dead_code)]

use std::collections::BTreeMap;

use citychain_governance::{
    Action, BlockOutcome, ProposalId, Registry, approve_body, propose_body,
};
use citychain_kernel::{
    Block, BlockHash, BlockHeader, CommitCertificate, EncryptionSecret, Height, KeyPair, Member,
    MemberId, PublicKey, Role, SignedTx, SigningKey, TxBody, ValidatorSet,
};
use citychain_testkit::genesis::{TestNetwork, network};

/// The four departments of `network(4, _)`, in genesis order.
pub const DEPTS: [&str; 4] = [
    "dept.civil-affairs",
    "dept.public-security",
    "dept.real-estate",
    "dept.tax",
];

/// A bank of the sample members.
pub const BANK: &str = "bank.city-commercial";

/// A member id.
pub fn mid(s: &str) -> MemberId {
    MemberId::new(s).unwrap()
}

/// A proposal id.
pub fn pid(s: &str) -> ProposalId {
    ProposalId::new(s).unwrap()
}

/// Fresh keys derived from `n`, distinct from any testkit key.
pub fn fresh_keys(n: u8) -> KeyPair {
    KeyPair::from_seeds(None, &[n; 32], &[n.wrapping_add(128); 32])
}

/// A new member with fresh keys.
pub fn new_member(id: &str, role: Role, keys: &KeyPair) -> Member {
    Member {
        id: mid(id),
        name: format!("Member {id}"),
        role,
        signing_key: keys.signing.public_key(),
        encryption_key: keys.encryption.public_key(),
    }
}

/// A body any member may send.
pub fn plain_body() -> TxBody {
    TxBody::new("citychain.licence.v1.UploadRecord", vec![1, 2, 3])
}

/// A network, its registry, and every signing key seen so far.
pub struct Net {
    pub net: TestNetwork,
    pub registry: Registry,
    pub signing: BTreeMap<PublicKey, SigningKey>,
    nonce: u64,
}

impl Net {
    pub fn new(seed: u64) -> Net {
        let net = network(4, seed);
        let registry = Registry::from_genesis(&net.genesis);
        let signing = net
            .keys
            .values()
            .map(|k| (k.signing.public_key(), k.signing.clone()))
            .collect();
        Net {
            net,
            registry,
            signing,
            nonce: 0,
        }
    }

    /// A member's genesis signing key.
    pub fn key(&self, member: &str) -> SigningKey {
        self.net.keys[member].signing.clone()
    }

    /// Remembers a key so certificates can be signed with it.
    pub fn learn(&mut self, keys: &KeyPair) {
        self.signing
            .insert(keys.signing.public_key(), keys.signing.clone());
    }

    pub fn tx(&mut self, key: &SigningKey, body: TxBody) -> SignedTx {
        self.nonce += 1;
        SignedTx::sign(
            &self.net.genesis.chain_id,
            key,
            self.nonce,
            Height(1_000_000),
            body,
        )
        .unwrap()
    }

    pub fn propose(&mut self, by: &str, id: &str, action: Action) -> SignedTx {
        let key = self.key(by);
        self.tx(&key, propose_body(&pid(id), &action))
    }

    pub fn approve(&mut self, by: &str, id: &str) -> SignedTx {
        let key = self.key(by);
        self.tx(&key, approve_body(&pid(id)))
    }

    /// Applies a block with `txs` at the registry's next height.
    pub fn block(&mut self, txs: Vec<SignedTx>) -> BlockOutcome {
        let h = self.registry.next_height();
        self.registry.apply_block(h, &txs).unwrap()
    }

    /// Proposes `action` by the first department and approves it by the next two, in one block;
    /// the change is in force after that block.
    pub fn pass(&mut self, id: &str, action: Action) -> BlockOutcome {
        let txs = vec![
            self.propose(DEPTS[0], id, action),
            self.approve(DEPTS[1], id),
            self.approve(DEPTS[2], id),
        ];
        self.block(txs)
    }
}

/// Builds real blocks on top of each other.
pub struct ChainBuilder {
    pub prev: BlockHash,
    pub time: u64,
}

impl ChainBuilder {
    pub fn new() -> Self {
        ChainBuilder {
            prev: BlockHash::default(),
            time: 1_700_000_000_000,
        }
    }

    /// A block at `height` naming `set`, its certificate signed by `signers`. Does not advance.
    pub fn block(
        &self,
        net: &Net,
        height: Height,
        txs: Vec<SignedTx>,
        set: &ValidatorSet,
        signers: &[PublicKey],
    ) -> Block {
        let chain_id = net.net.genesis.chain_id.clone();
        let proposer = set.proposer(height, 0).key;
        let header = BlockHeader::new(
            chain_id.clone(),
            height,
            self.time + 1_000,
            self.prev,
            &txs,
            set,
            proposer,
        );
        let keys: Vec<&SigningKey> = signers.iter().map(|k| &net.signing[k]).collect();
        let certificate = CommitCertificate::sign(&chain_id, height, 0, header.hash(), &keys);
        Block {
            header,
            txs,
            certificate,
        }
    }

    /// A block certified by every validator of `set`.
    pub fn block_by_all(
        &self,
        net: &Net,
        height: Height,
        txs: Vec<SignedTx>,
        set: &ValidatorSet,
    ) -> Block {
        let signers: Vec<PublicKey> = set.validators().iter().map(|v| v.key).collect();
        self.block(net, height, txs, set, &signers)
    }

    /// Moves on after `block` was accepted.
    pub fn advance(&mut self, block: &Block) {
        self.prev = block.hash();
        self.time = block.header.time_unix_ms;
    }
}

/// An unused encryption key derived from `n`.
pub fn encryption_key(n: u8) -> citychain_kernel::EncryptionPublicKey {
    EncryptionSecret::from_seed(&[n; 32]).public_key()
}
