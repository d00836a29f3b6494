//! Signing and verifying consensus messages with a validator's kernel key: votes, proposals,
//! and (through Malachite's `SigningProviderExt`) commit, polka and round certificates.
//!
//! Verification is the kernel's strict ed25519 over the byte layouts of [`crate::context`].

use citychain_kernel::{CommitCertificate, PublicKey, SigningKey};
use malachitebft_core_types::{self as mt, SignedMessage, SigningProvider};

use crate::context::{
    Address, BlockPartBytes, CityContext, ConsensusSignature, Height, Proposal, Vote,
};

/// A validator's signer: its kernel key bound to one chain's context.
#[derive(Clone)]
pub struct CitySigner {
    ctx: CityContext,
    key: SigningKey,
}

impl std::fmt::Debug for CitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CitySigner")
            .field("chain_id", self.ctx.chain_id())
            .field("public_key", &self.key.public_key())
            .finish()
    }
}

impl CitySigner {
    /// A signer for `key` on the chain of `ctx`.
    pub fn new(ctx: CityContext, key: SigningKey) -> Self {
        CitySigner { ctx, key }
    }

    /// The signer's public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The context the signer binds signatures to.
    pub fn context(&self) -> &CityContext {
        &self.ctx
    }
}

/// Whether `signature` is `key`'s signature of `vote` on the chain of `ctx`.
pub fn verify_vote(
    ctx: &CityContext,
    vote: &Vote,
    signature: &ConsensusSignature,
    key: &PublicKey,
) -> bool {
    key.verify(&ctx.vote_sign_bytes(vote), &signature.0).is_ok()
}

/// Whether `signature` is `key`'s signature of `proposal` on the chain of `ctx`.
pub fn verify_proposal(
    ctx: &CityContext,
    proposal: &Proposal,
    signature: &ConsensusSignature,
    key: &PublicKey,
) -> bool {
    key.verify(&ctx.proposal_sign_bytes(proposal), &signature.0)
        .is_ok()
}

impl SigningProvider<CityContext> for CitySigner {
    fn sign_vote(&self, vote: Vote) -> SignedMessage<CityContext, Vote> {
        let signature = self.key.sign(&self.ctx.vote_sign_bytes(&vote));
        SignedMessage::new(vote, ConsensusSignature(signature))
    }

    fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &ConsensusSignature,
        public_key: &PublicKey,
    ) -> bool {
        verify_vote(&self.ctx, vote, signature, public_key)
    }

    fn sign_proposal(&self, proposal: Proposal) -> SignedMessage<CityContext, Proposal> {
        let signature = self.key.sign(&self.ctx.proposal_sign_bytes(&proposal));
        SignedMessage::new(proposal, ConsensusSignature(signature))
    }

    fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &ConsensusSignature,
        public_key: &PublicKey,
    ) -> bool {
        verify_proposal(&self.ctx, proposal, signature, public_key)
    }

    fn sign_proposal_part(
        &self,
        proposal_part: BlockPartBytes,
    ) -> SignedMessage<CityContext, BlockPartBytes> {
        let signature = self.key.sign(&self.ctx.part_sign_bytes(&proposal_part));
        SignedMessage::new(proposal_part, ConsensusSignature(signature))
    }

    fn verify_signed_proposal_part(
        &self,
        proposal_part: &BlockPartBytes,
        signature: &ConsensusSignature,
        public_key: &PublicKey,
    ) -> bool {
        public_key
            .verify(&self.ctx.part_sign_bytes(proposal_part), &signature.0)
            .is_ok()
    }

    fn sign_vote_extension(&self, extension: ()) -> SignedMessage<CityContext, ()> {
        // Extensions are unit and never sent; a signature over the empty message keeps the
        // trait total without a meaningless panic path.
        SignedMessage::new(extension, ConsensusSignature(self.key.sign(&[])))
    }

    fn verify_signed_vote_extension(
        &self,
        _extension: &(),
        _signature: &ConsensusSignature,
        _public_key: &PublicKey,
    ) -> bool {
        // Nothing is ever extended, so nothing extended can be trusted.
        false
    }
}

/// The kernel form of a Malachite commit certificate: same height, round and block hash, the
/// precommit signatures sorted by validator key. Because a precommit for a block signs exactly
/// the kernel's precommit bytes, the result verifies with
/// [`CommitCertificate::verify`](citychain_kernel::CommitCertificate::verify).
pub fn to_kernel_certificate(cert: &mt::CommitCertificate<CityContext>) -> CommitCertificate {
    let mut signatures: Vec<(PublicKey, citychain_kernel::Signature)> = cert
        .commit_signatures
        .iter()
        .map(|s| (s.address.0, s.signature.0))
        .collect();
    signatures.sort_by_key(|(k, _)| *k);
    signatures.dedup_by_key(|(k, _)| *k);
    CommitCertificate {
        height: citychain_kernel::Height(cert.height.0),
        round: crate::context::round_u32(cert.round),
        block_hash: cert.value_id,
        signatures,
    }
}

/// The Malachite form of a kernel commit certificate.
pub fn from_kernel_certificate(cert: &CommitCertificate) -> mt::CommitCertificate<CityContext> {
    mt::CommitCertificate {
        height: Height(cert.height.0),
        round: mt::Round::new(cert.round),
        value_id: cert.block_hash,
        commit_signatures: cert
            .signatures
            .iter()
            .map(|(k, s)| mt::CommitSignature::new(Address(*k), ConsensusSignature(*s)))
            .collect(),
    }
}

/// Re-exported so callers can verify certificates without naming Malachite's trait path.
pub use mt::SigningProviderExt;

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::{BlockHeader, ChainId, Height as KHeight, MemberId, ValidatorSet};
    use malachitebft_core_consensus::ThresholdParams;
    use malachitebft_core_types::{Context as _, NilOrVal, Round};

    use crate::context::ValidatorSet as CSet;

    fn setup() -> (CityContext, Vec<SigningKey>, ValidatorSet) {
        let ctx = CityContext::new(ChainId::new("test-chain").unwrap());
        let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let set = ValidatorSet::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| citychain_kernel::Validator {
                    member_id: MemberId::new(format!("dept.{i}")).unwrap(),
                    key: k.public_key(),
                })
                .collect(),
        );
        (ctx, keys, set)
    }

    #[test]
    fn a_decided_certificate_converts_to_a_kernel_certificate_that_verifies() {
        let (ctx, keys, set) = setup();
        let header = BlockHeader::new(
            ctx.chain_id().clone(),
            KHeight(1),
            1_000,
            Default::default(),
            &[],
            &set,
            keys[0].public_key(),
        );
        let hash = header.hash();
        // Three of four precommit (a quorum), signed the way the node signs them.
        let commits = keys[1..]
            .iter()
            .map(|k| {
                let signer = CitySigner::new(ctx.clone(), k.clone());
                let vote = ctx.new_precommit(
                    Height(1),
                    Round::new(2),
                    NilOrVal::Val(hash),
                    Address(k.public_key()),
                );
                let signed = signer.sign_vote(vote);
                mt::CommitSignature::new(Address(k.public_key()), signed.signature)
            })
            .collect();
        let cert = mt::CommitCertificate {
            height: Height(1),
            round: Round::new(2),
            value_id: hash,
            commit_signatures: commits,
        };
        let signer = CitySigner::new(ctx.clone(), keys[0].clone());
        signer
            .verify_commit_certificate(
                &ctx,
                &cert,
                &CSet::from_kernel(&set),
                ThresholdParams::default(),
            )
            .expect("Malachite's check accepts it");
        let kernel = to_kernel_certificate(&cert);
        assert_eq!(kernel.round, 2);
        assert_eq!(kernel.verify(&header, &set), Ok(3));
        assert_eq!(from_kernel_certificate(&kernel).commit_signatures.len(), 3);
    }

    #[test]
    fn a_signature_from_another_chain_or_key_does_not_verify() {
        let (ctx, keys, _) = setup();
        let other = CityContext::new(ChainId::new("other-chain").unwrap());
        let vote = ctx.new_prevote(
            Height(3),
            Round::new(0),
            NilOrVal::Nil,
            Address(keys[0].public_key()),
        );
        let signed = CitySigner::new(ctx.clone(), keys[0].clone()).sign_vote(vote.clone());
        assert!(verify_vote(
            &ctx,
            &vote,
            &signed.signature,
            &keys[0].public_key()
        ));
        assert!(!verify_vote(
            &other,
            &vote,
            &signed.signature,
            &keys[0].public_key()
        ));
        assert!(!verify_vote(
            &ctx,
            &vote,
            &signed.signature,
            &keys[1].public_key()
        ));
    }
}
