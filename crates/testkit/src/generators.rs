//! Property-test generators for kernel values: signing keys, transaction bodies and signed
//! transactions on a given chain.

use citychain_kernel::tx::{SignedTx, TxBody};
use citychain_kernel::{ChainId, Height, SigningKey};
use proptest::prelude::*;

/// Any signing key.
pub fn signing_key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_seed(&seed))
}

/// A body with a plausible type name and up to `max_value` bytes of payload.
pub fn tx_body(max_value: usize) -> impl Strategy<Value = TxBody> {
    (
        "[a-z]{1,8}\\.v1\\.[A-Z][a-zA-Z]{0,12}",
        proptest::collection::vec(any::<u8>(), 0..=max_value),
    )
        .prop_map(|(type_url, value)| TxBody::new(format!("citychain.{type_url}"), value))
}

/// A transaction signed by one of `keys` on `chain`.
pub fn signed_tx(chain: ChainId, keys: Vec<SigningKey>) -> impl Strategy<Value = SignedTx> {
    assert!(!keys.is_empty(), "signed_tx needs at least one key");
    (0..keys.len(), any::<u64>(), 1u64..1_000_000, tx_body(256)).prop_map(
        move |(signer, nonce, expiry, body)| {
            SignedTx::sign(&chain, &keys[signer], nonce, Height(expiry), body)
                .expect("bodies of at most 256 bytes fit the size limit")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        #[test]
        fn generated_transactions_verify(tx in signed_tx(
            ChainId::new("city-test").unwrap(),
            vec![SigningKey::from_seed(&[1; 32]), SigningKey::from_seed(&[2; 32])],
        )) {
            prop_assert!(tx.verify().is_ok());
        }
    }
}
