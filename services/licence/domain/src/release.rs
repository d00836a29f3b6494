//! When the record key of a committed read may be released: only for a read the record type's
//! policy allowed, once the token platform has paid it for exactly the price the read was
//! committed at, and never twice.

use thiserror::Error;

/// What the licence service decided when the read committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadVerdict {
    /// Allowed; the reader owes `price`.
    Allowed {
        /// The price.
        price: u64,
    },
    /// Refused by policy.
    Refused {
        /// Why.
        reason: String,
    },
}

/// The token platform's verdict, from its `ReadPaid` / `ReadPaymentFailed` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    /// Paid `amount`.
    Paid {
        /// The amount.
        amount: u64,
    },
    /// Not paid.
    Failed {
        /// The price.
        price: u64,
        /// The reader's balance.
        balance: u64,
        /// What was missing.
        shortfall: u64,
    },
}

impl Payment {
    /// The stored form: `1` ‖ amount, or `2` ‖ price ‖ balance ‖ shortfall (big-endian u64s).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Payment::Paid { amount } => [&[1u8][..], &amount.to_be_bytes()].concat(),
            Payment::Failed {
                price,
                balance,
                shortfall,
            } => [
                &[2u8][..],
                &price.to_be_bytes(),
                &balance.to_be_bytes(),
                &shortfall.to_be_bytes(),
            ]
            .concat(),
        }
    }

    /// Reads the stored form; `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Payment> {
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(
                bytes.get(1 + 8 * i..9 + 8 * i)?.try_into().ok()?,
            ))
        };
        match (bytes.first(), bytes.len()) {
            (Some(1), 9) => Some(Payment::Paid { amount: word(0)? }),
            (Some(2), 25) => Some(Payment::Failed {
                price: word(0)?,
                balance: word(1)?,
                shortfall: word(2)?,
            }),
            _ => None,
        }
    }
}

/// What to do with a read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Wrap the record key for the reader.
    Release,
    /// Nothing yet: the payment has not arrived.
    Wait,
    /// The key was released before; do nothing.
    AlreadyReleased,
    /// Never release it.
    Never(Withheld),
}

/// Why a read's key is withheld for good.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Withheld {
    /// The policy refused the read.
    #[error("refused: {0}")]
    Refused(String),
    /// The reader could not pay.
    #[error("payment failed: the read costs {price}, the reader had {balance}, {shortfall} short")]
    PaymentFailed {
        /// The price.
        price: u64,
        /// The balance.
        balance: u64,
        /// The shortfall.
        shortfall: u64,
    },
    /// The token platform charged another amount than the read's price: the two services
    /// disagree about the rules, so nothing is released until an operator looks.
    #[error("the token platform charged {paid} for a read priced at {price}")]
    AmountMismatch {
        /// The read's price.
        price: u64,
        /// What was charged.
        paid: u64,
    },
}

/// Decides what to do with a committed read.
pub fn decide_release(verdict: &ReadVerdict, payment: Option<&Payment>, granted: bool) -> Release {
    if granted {
        return Release::AlreadyReleased;
    }
    let price = match verdict {
        ReadVerdict::Refused { reason } => {
            return Release::Never(Withheld::Refused(reason.clone()));
        }
        ReadVerdict::Allowed { price } => *price,
    };
    match payment {
        None => Release::Wait,
        Some(Payment::Paid { amount }) if *amount == price => Release::Release,
        Some(Payment::Paid { amount }) => Release::Never(Withheld::AmountMismatch {
            price,
            paid: *amount,
        }),
        Some(Payment::Failed {
            price,
            balance,
            shortfall,
        }) => Release::Never(Withheld::PaymentFailed {
            price: *price,
            balance: *balance,
            shortfall: *shortfall,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_round_trip() {
        for p in [
            Payment::Paid { amount: 7 },
            Payment::Failed {
                price: 9,
                balance: 2,
                shortfall: 7,
            },
        ] {
            assert_eq!(Payment::decode(&p.encode()), Some(p));
        }
        assert_eq!(Payment::decode(&[1, 2]), None);
        assert_eq!(Payment::decode(&[]), None);
    }

    #[test]
    fn release_table() {
        let allowed = ReadVerdict::Allowed { price: 5 };
        let refused = ReadVerdict::Refused {
            reason: "role".into(),
        };
        let paid = Payment::Paid { amount: 5 };
        let wrong = Payment::Paid { amount: 4 };
        let failed = Payment::Failed {
            price: 5,
            balance: 2,
            shortfall: 3,
        };
        let table: [(&ReadVerdict, Option<&Payment>, bool, &str); 7] = [
            (&allowed, None, false, "Wait"),
            (&allowed, Some(&paid), false, "Release"),
            (&allowed, Some(&paid), true, "AlreadyReleased"),
            (&allowed, Some(&wrong), false, "Never(AmountMismatch"),
            (&allowed, Some(&failed), false, "Never(PaymentFailed"),
            (&refused, Some(&paid), false, "Never(Refused"),
            (&refused, None, false, "Never(Refused"),
        ];
        for (verdict, payment, granted, expected) in table {
            let got = format!("{:?}", decide_release(verdict, payment, granted));
            assert!(
                got.starts_with(expected),
                "{verdict:?} {payment:?} {granted}: {got}"
            );
        }
    }
}
