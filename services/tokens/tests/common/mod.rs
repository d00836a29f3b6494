//! Shared by the token service's tests: a writer of valid chains carrying governance,
//! uploads and reads (signed by the test network's members, certified by its validators),
//! and the record type and bodies the scenarios use.

use std::collections::BTreeMap;

use citychain_governance::{
    Action, ChainAuditor, FieldKind, ProposalId, RecordType, approve_body, propose_body,
};
use citychain_kernel::{
    Block, BlockHash, BlockHeader, CommitCertificate, Hash32, Height, MemberId, Role, SignedTx,
    SigningKey, TxBody, TxId,
};
use citychain_records::{ReadTarget, read_body, upload_body};
use citychain_testkit::genesis::TestNetwork;

/// The record type of the scenarios.
pub const FILING: &str = "tax.filing";

/// A citizen the records are about.
pub const CITIZEN: &str = "citizen:330102-19900101-0042";

/// The bank of the sample members.
pub const BANK: &str = "bank.city-commercial";

/// The `i`-th department of the network (the first four validate).
pub fn dept(net: &TestNetwork, i: usize) -> String {
    net.genesis.validators[i].to_string()
}

/// `tax.filing`, owned by `owner`, read by departments and banks, at `price`, earning
/// `reward` per upload.
pub fn filing_type(owner: &str, price: u64, reward: u64) -> RecordType {
    RecordType::build(
        FILING,
        owner,
        &[("amount", FieldKind::Integer, true)],
        &[Role::Department, Role::Bank],
        price,
        reward,
    )
    .unwrap()
}

/// An upload of a filing with payload `payload`.
pub fn upload(payload: &str) -> TxBody {
    upload_body(FILING, CITIZEN, payload.as_bytes())
}

/// A read of record `record`.
pub fn read(record: TxId) -> TxBody {
    read_body(&ReadTarget::Record(record), CITIZEN, "tax assessment")
}

/// Writes a valid chain block by block, checking each with the same audit the follower runs.
#[derive(Debug)]
pub struct ChainWriter<'a> {
    net: &'a TestNetwork,
    auditor: ChainAuditor,
    prev: BlockHash,
    nonces: BTreeMap<String, u64>,
    signing: BTreeMap<String, SigningKey>,
    /// The blocks written so far.
    pub blocks: Vec<Block>,
}

impl<'a> ChainWriter<'a> {
    /// A chain of `net` at genesis.
    pub fn new(net: &'a TestNetwork) -> Self {
        ChainWriter {
            net,
            auditor: ChainAuditor::new(&net.genesis),
            prev: BlockHash(Hash32::ZERO),
            nonces: BTreeMap::new(),
            signing: net
                .keys
                .iter()
                .map(|(id, k)| (id.clone(), k.signing.clone()))
                .collect(),
            blocks: Vec::new(),
        }
    }

    /// `body` signed by `member` with its next nonce.
    pub fn tx(&mut self, member: &str, body: TxBody) -> SignedTx {
        let nonce = self.nonces.entry(member.to_string()).or_insert(0);
        *nonce += 1;
        SignedTx::sign(
            &self.net.genesis.chain_id,
            &self.signing[member],
            *nonce,
            Height(self.blocks.len() as u64 + 100),
            body,
        )
        .unwrap()
    }

    /// Appends a block of `txs`, certified by every validator in force.
    pub fn block(&mut self, txs: Vec<SignedTx>) -> &Block {
        let genesis = &self.net.genesis;
        let height = Height(self.blocks.len() as u64 + 1);
        let set = self.auditor.verifier().validators().clone();
        let header = BlockHeader::new(
            genesis.chain_id.clone(),
            height,
            genesis.genesis_time_unix_ms + height.0 * 1_000,
            self.prev,
            &txs,
            &set,
            set.proposer(height, 0).key,
        );
        let keys: Vec<SigningKey> = set
            .validators()
            .iter()
            .map(|v| self.signing[v.member_id.as_str()].clone())
            .collect();
        let signers: Vec<&SigningKey> = keys.iter().collect();
        let certificate =
            CommitCertificate::sign(&genesis.chain_id, height, 0, header.hash(), &signers);
        let block = Block {
            header,
            txs,
            certificate,
        };
        self.auditor
            .push(&block)
            .unwrap_or_else(|e| panic!("block {height}: {e}"));
        self.prev = block.hash();
        self.blocks.push(block);
        self.blocks.last().unwrap()
    }

    /// The transactions passing `action` as proposal `id` in one block: proposed by the
    /// first department, approved by the next two (three of four: the two-thirds rule).
    pub fn passing(&mut self, id: &str, action: &Action) -> Vec<SignedTx> {
        let proposal = ProposalId::new(id).unwrap();
        let (a, b, c) = (dept(self.net, 0), dept(self.net, 1), dept(self.net, 2));
        vec![
            self.tx(&a, propose_body(&proposal, action)),
            self.tx(&b, approve_body(&proposal)),
            self.tx(&c, approve_body(&proposal)),
        ]
    }

    /// A block passing `action`.
    pub fn pass(&mut self, id: &str, action: &Action) -> &Block {
        let txs = self.passing(id, action);
        self.block(txs)
    }
}

/// `GrantTokens` to `member`.
pub fn grant(member: &str, amount: u64) -> Action {
    Action::GrantTokens {
        member: MemberId::new(member).unwrap(),
        amount,
    }
}
