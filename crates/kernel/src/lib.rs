//! The pure core of citychain: identifiers, keys and strict signatures, canonical encoding,
//! signed transactions, Merkle proofs, blocks with their commit certificates, the replay
//! window, genesis, transaction proofs and the chain export file.
//!
//! Nothing here opens files or sockets, reads a clock or draws randomness (the export reads
//! and writes whatever `Read`/`Write` it is handed): keys are built from seeds the caller
//! supplies, times come in as values. Every check returns a typed error whose
//! message names the value or the limit involved.

pub mod block;
pub mod codec;
pub mod error;
pub mod event;
pub mod export;
pub mod genesis;
pub mod hash;
pub mod ids;
pub mod keys;
pub mod merkle;
pub mod proof;
pub mod replay;
pub mod tx;
pub mod validators;

pub use block::{Block, BlockError, BlockHeader, ChainVerifier, CommitCertificate};
pub use error::{DecodeError, SignatureError};
pub use event::{EventError, SignedEvent};
pub use export::{ExportError, ExportReader, ExportWriter};
pub use genesis::{Genesis, GenesisError, Member, Role};
pub use hash::Hash32;
pub use ids::{Amount, AmountError, BlockHash, ChainId, Height, MemberId, TxId};
pub use keys::{
    EncryptionPublicKey, EncryptionSecret, KeyError, KeyPair, PublicKey, Signature, SigningKey,
};
pub use merkle::{ConsistencyProof, InclusionProof, MerkleError, MerkleTree};
pub use proof::{ProofError, TransactionProof, VerifiedProof};
pub use tx::{SignedTx, TxBody, TxError};
pub use validators::{Validator, ValidatorSet, proposer_index};
