//! Genesis builders for tests: a network of N validator departments and the sample members,
//! with keys derived deterministically from a seed so a failing test can be replayed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use citychain_kernel::genesis::{
    MemberPlan, build_genesis, department_plans, sample_member_plans, service_member_plans,
};
use citychain_kernel::{Genesis, KeyPair, Role};

/// A generated network: its genesis and every member's keys by member id.
#[derive(Debug, Clone)]
pub struct TestNetwork {
    /// The genesis document.
    pub genesis: Genesis,
    /// Each member's keys, by member id.
    pub keys: BTreeMap<String, KeyPair>,
}

/// A seed source: blake3 of the test seed and a counter, so keys differ per seed and per call.
pub fn deterministic_seeds(seed: u64) -> impl FnMut() -> [u8; 32] {
    let mut counter = 0u64;
    move || {
        counter += 1;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&seed.to_le_bytes());
        hasher.update(&counter.to_le_bytes());
        *hasher.finalize().as_bytes()
    }
}

/// Builds a network with `validators` departments (all validating), the sample members, the
/// service identities and any `extra` members, on chain `city-test`.
pub fn network_with(validators: usize, extra: &[MemberPlan], seed: u64) -> TestNetwork {
    let mut plans = department_plans(validators);
    plans.extend(sample_member_plans());
    plans.extend(service_member_plans());
    plans.extend_from_slice(extra);
    let (genesis, keys) = build_genesis(
        "city-test",
        1_700_000_000_000,
        &plans,
        validators,
        deterministic_seeds(seed),
    )
    .unwrap_or_else(|e| panic!("test genesis (seed {seed}) is invalid: {e}"));
    let keys = keys
        .into_iter()
        .map(|k| (k.member_id.clone().expect("planned members have ids"), k))
        .collect();
    TestNetwork { genesis, keys }
}

/// [`network_with`] without extra members.
pub fn network(validators: usize, seed: u64) -> TestNetwork {
    network_with(validators, &[], seed)
}

impl TestNetwork {
    /// The keys of the validators, in the genesis order of their member ids.
    pub fn validator_keys(&self) -> Vec<&KeyPair> {
        self.genesis
            .validators
            .iter()
            .map(|id| &self.keys[id.as_str()])
            .collect()
    }

    /// The keys of every member that signs transactions (all but the service identities,
    /// which sign events only), by member id.
    pub fn transaction_signers(&self) -> impl Iterator<Item = (&str, &KeyPair)> {
        self.genesis
            .members
            .iter()
            .filter(|m| m.role != Role::Service)
            .map(|m| (m.id.as_str(), &self.keys[m.id.as_str()]))
    }

    /// Writes `genesis.json` and `keys/<member>.json` under `dir`; returns the genesis path.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir.join("keys"))?;
        let genesis = dir.join("genesis.json");
        std::fs::write(&genesis, self.genesis.to_json())?;
        for (id, key) in &self.keys {
            std::fs::write(
                dir.join("keys").join(format!("{id}.json")),
                key.to_key_file(),
            )?;
        }
        Ok(genesis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_network_other_seed_other_keys() {
        let a = network(4, 7);
        let b = network(4, 7);
        let c = network(4, 8);
        assert_eq!(a.genesis, b.genesis);
        assert_ne!(a.genesis.hash(), c.genesis.hash());
        assert_eq!(a.validator_keys().len(), 4);
        assert_eq!(a.genesis.validator_set().quorum(), 3);
    }
}
