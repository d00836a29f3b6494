//! Folding one committed block into the registry, with the exact ordering that makes a
//! change passed in block `h` take effect at height `h + 1`:
//!
//! 1. Pending proposals that reach the two-thirds rule without a new approval (because the
//!    previous block's changes reduced the number of active departments) pass in this block.
//! 2. Each transaction is authorized against the state in force for this height (which no
//!    transaction of the block changes), then, for governance bodies, decided and evolved.
//!    Proposals passing here are queued.
//! 3. At the end of the block the queued proposals are checked again, in the order they
//!    passed, and applied with effect height `h + 1` (or recorded as failed).
//!
//! So the registry after block `h` is the state that checks block `h + 1`, including the
//! validator set that must certify it.

use citychain_kernel::{Height, SignedTx};

use crate::action::GovernanceBody;
use crate::authorize::Signer;
use crate::error::{ApplyError, Refusal, Rejection};
use crate::rules::Event;
use crate::state::Registry;

/// What became of one transaction of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    /// Authorized; for a governance body also decided and applied, with its events.
    Accepted {
        /// Who signed it.
        signer: Signer,
        /// The governance events it caused (empty for other bodies).
        events: Vec<Event>,
    },
    /// Authorized, but a governance body whose content is rejected; nothing changed.
    Rejected {
        /// Who signed it.
        signer: Signer,
        /// Why.
        reason: Rejection,
    },
    /// The signer may not send it. A committed block must not contain such a transaction.
    Refused(Refusal),
}

impl TxOutcome {
    /// Whether the transaction was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, TxOutcome::Accepted { .. })
    }
}

/// What applying a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// The block's height.
    pub height: Height,
    /// One outcome per transaction, in block order.
    pub txs: Vec<TxOutcome>,
    /// Proposals that passed at the start of the block without a new approval.
    pub opening: Vec<Event>,
    /// Proposals applied or failed at the end of the block, in force from `height + 1`.
    pub closing: Vec<Event>,
    /// Whether the validator set for `height + 1` differs from the one of `height`.
    pub validators_changed: bool,
}

impl BlockOutcome {
    /// Every governance event of the block in the order it happened.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        let tx_events = self.txs.iter().flat_map(|t| match t {
            TxOutcome::Accepted { events, .. } => events.as_slice(),
            _ => &[],
        });
        self.opening
            .iter()
            .chain(tx_events)
            .chain(self.closing.iter())
    }
}

impl Registry {
    /// Applies committed block `height` (which must be [`Registry::next_height`]) with its
    /// transactions in order. See the module docs for the ordering.
    pub fn apply_block(
        &mut self,
        height: Height,
        txs: &[SignedTx],
    ) -> Result<BlockOutcome, ApplyError> {
        if height != self.next_height() || height.0 == u64::MAX {
            return Err(ApplyError::Height {
                expected: self.next_height(),
                found: height,
            });
        }
        let effect_height = Height(height.0 + 1);
        let before = self.next_validator_set();

        let opening: Vec<Event> = self
            .proposals
            .values()
            .filter(|p| self.has_quorum(p))
            .map(|p| Event::Passed {
                id: p.id.clone(),
                effect_height,
            })
            .collect();
        for event in &opening {
            self.evolve(event);
        }

        let outcomes = txs.iter().map(|tx| self.apply_tx(tx)).collect();

        let mut closing = Vec::new();
        while let Some(proposal) = self.passed.first() {
            let event = match self.check_action(&proposal.action) {
                Ok(()) => Event::Applied {
                    id: proposal.id.clone(),
                    action: Box::new(proposal.action.clone()),
                    effect_height,
                },
                Err(reason) => Event::Failed {
                    id: proposal.id.clone(),
                    effect_height,
                    reason,
                },
            };
            self.evolve(&event);
            closing.push(event);
        }

        let after = self.next_validator_set();
        let validators_changed = after != before;
        if validators_changed {
            self.epochs.insert(effect_height, after);
        }
        self.height = height;
        Ok(BlockOutcome {
            height,
            txs: outcomes,
            opening,
            closing,
            validators_changed,
        })
    }

    fn apply_tx(&mut self, tx: &SignedTx) -> TxOutcome {
        let signer = match self.authorize(tx.signer(), &tx.body().type_url) {
            Ok(signer) => signer,
            Err(refusal) => return TxOutcome::Refused(refusal),
        };
        let decided = GovernanceBody::decode(tx.body()).and_then(|body| match body {
            Some(body) => self.decide(&signer, &body),
            None => Ok(Vec::new()),
        });
        match decided {
            Ok(events) => {
                for event in &events {
                    self.evolve(event);
                }
                TxOutcome::Accepted { signer, events }
            }
            Err(reason) => TxOutcome::Rejected { signer, reason },
        }
    }
}
