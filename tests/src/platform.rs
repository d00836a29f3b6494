//! The licence and token platforms on a [`Network`]: four validators, the ledger, the token
//! service and the licence service, with two record types declared (a survey owned by the
//! surveying institute, a housing filing owned by the filing office), and the steps the
//! scenarios take on them.

use std::time::Duration;

use citychain_client::{Expected, LedgerClient, LicenceClient, Signer};
use citychain_governance::{Action, FieldKind, RecordType};
use citychain_kernel::genesis::MemberPlan;
use citychain_kernel::{Height, Role, TxId};
use citychain_proto::citychain::tokens::v1 as tpb;
use citychain_proto::citychain::tokens::v1::token_service_client::TokenServiceClient;
use citychain_records::{ReadTarget, read_body};
use citychain_testkit::genesis::network_with;
use citychain_testkit::nats::NatsServerBuilder;

use crate::{Network, Service};

/// The seed of the platform's keys.
pub const SEED: u64 = 61;
/// The citizen the records are about.
pub const CITIZEN: &str = "citizen:330102-19900101-0042";
/// The survey record type.
pub const SURVEY: &str = "survey.property";
/// The housing filing record type.
pub const FILING: &str = "housing.filing";
/// How long a step waits at most.
pub const WAIT: Duration = Duration::from_secs(30);

/// Declares `name`, owned by `owner`, read by departments, earning 5 per upload.
pub fn record_type(
    name: &str,
    owner: &str,
    fields: &[(&str, FieldKind, bool)],
    price: u64,
) -> Action {
    Action::DeclareRecordType(
        RecordType::build(name, owner, fields, &[Role::Department], price, 5).unwrap(),
    )
}

/// The whole platform: validators, ledger, tokens, licence; two record types declared.
pub struct Platform {
    /// The network.
    pub net: Network,
    /// A ledger client.
    pub ledger: LedgerClient,
    /// A licence client.
    pub licence: LicenceClient,
    /// A token service client.
    pub tokens: TokenServiceClient<tonic::transport::Channel>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("net", &self.net)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// Starts everything and declares the two record types.
    pub async fn start() -> Platform {
        Platform::start_with(|builder| builder).await
    }

    /// [`Platform::start`], with users of the test's own added to the nats-server by `more`.
    pub async fn start_with(more: impl FnOnce(NatsServerBuilder) -> NatsServerBuilder) -> Platform {
        let extra = [
            ("dept.surveying", "Surveying and Mapping Institute"),
            ("dept.housing", "Housing Transaction Filing Office"),
        ]
        .map(|(id, name)| MemberPlan {
            id: id.into(),
            name: name.into(),
            role: Role::Department,
        });
        let mut net = Network::with_nats(network_with(4, &extra, SEED), more).await;
        net.start_validators().await;
        net.start(Service::Ledger, "ledger").await;
        net.start(Service::Tokens, "tokens").await;
        net.start(Service::Licence, "licence").await;
        let mut ledger = net.client().await;
        let survey = record_type(
            SURVEY,
            "dept.surveying",
            &[
                ("parcel_id", FieldKind::Text, true),
                ("floor_area_m2", FieldKind::Integer, true),
            ],
            2,
        );
        let filing = record_type(
            FILING,
            "dept.housing",
            &[
                ("contract_no", FieldKind::Text, true),
                ("price_cny", FieldKind::Integer, true),
                ("signed_on", FieldKind::Date, true),
            ],
            3,
        );
        net.pass(&mut ledger, "declare-survey", &survey).await;
        let declared = net.pass(&mut ledger, "declare-filing", &filing).await;
        let licence = LicenceClient::connect(&format!("http://{}", net.licence_addr))
            .await
            .unwrap();
        let tokens = TokenServiceClient::connect(format!("http://{}", net.tokens_addr))
            .await
            .unwrap();
        let mut platform = Platform {
            net,
            ledger,
            licence,
            tokens,
        };
        platform.wait_licence_at(declared).await;
        platform
    }

    /// `member`'s signer from `nonce`.
    pub fn signer(&self, member: &str, nonce: u64) -> Signer {
        self.net.signer(member, nonce)
    }

    /// An expiry 50 heights past the tip.
    pub async fn expiry(&mut self) -> Height {
        Height(self.ledger.tip_height().await.unwrap() + 50)
    }

    /// Waits until the licence service has applied `height`.
    pub async fn wait_licence_at(&mut self, height: u64) {
        self.licence.wait_applied(height, WAIT).await.unwrap();
    }

    /// Uploads `payload` as `record_type` through the licence service and waits for it on
    /// the chain; returns its id.
    pub async fn upload(
        &mut self,
        member: &str,
        nonce: u64,
        record_type: &str,
        payload: &str,
    ) -> TxId {
        let expiry = self.expiry().await;
        let id = self
            .licence
            .upload(
                &self.signer(member, nonce),
                expiry,
                record_type,
                CITIZEN,
                payload.as_bytes(),
            )
            .await
            .unwrap_or_else(|e| panic!("upload of {record_type} by {member}: {e}"));
        self.ledger.wait_on_chain(&id, WAIT).await.unwrap();
        id.parse().unwrap()
    }

    /// Submits a read of `record` by `reader` straight to the ledger (as any service's API
    /// may) and waits for its commit; returns its id.
    pub async fn read_via_ledger(&mut self, reader: &str, nonce: u64, record: TxId) -> String {
        let expiry = self.expiry().await;
        let body = read_body(&ReadTarget::Record(record), CITIZEN, "deed tax assessment");
        let tx = self.signer(reader, nonce).sign(body, expiry).unwrap();
        let id = self.ledger.submit(&tx).await.unwrap();
        self.ledger.wait(&id, WAIT).await.unwrap();
        id
    }

    /// Submits a read of `record` by `reader` and waits for its commit; returns its id.
    pub async fn read(&mut self, reader: &str, nonce: u64, record: TxId) -> String {
        let expiry = self.expiry().await;
        let body = read_body(&ReadTarget::Record(record), CITIZEN, "deed tax assessment");
        let reply = self
            .licence
            .submit_read(&self.signer(reader, nonce), expiry, body)
            .await
            .unwrap_or_else(|e| panic!("read by {reader}: {e}"));
        self.ledger
            .wait_on_chain(&reply.read_id, WAIT)
            .await
            .unwrap();
        reply.read_id
    }

    /// What the reader of `read` asked for: `record`.
    pub fn expected(&self, read: &str, record: TxId) -> Expected {
        Expected {
            chain_id: self.net.net.genesis.chain_id.clone(),
            read_id: read.parse().unwrap(),
            record_id: Some(record),
        }
    }

    /// `member`'s token balance.
    pub async fn balance(&mut self, member: &str) -> i64 {
        self.tokens
            .get_balance(tpb::GetBalanceRequest {
                account: format!("member:{member}"),
            })
            .await
            .unwrap()
            .into_inner()
            .balance
    }

    /// Waits until `member`'s balance is `expected`.
    pub async fn wait_balance(&mut self, member: &str, expected: i64) {
        let mut last = 0;
        for _ in 0..150 {
            last = self.balance(member).await;
            if last == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{member}'s balance stays {last}, expected {expected}");
    }
}

/// A housing filing that matches [`FILING`].
pub const FILING_PAYLOAD: &str =
    r#"{"contract_no":"HZ-2026-118734","price_cny":3200000,"signed_on":"2026-11-02"}"#;
/// A survey that matches [`SURVEY`].
pub const SURVEY_PAYLOAD: &str = r#"{"floor_area_m2":89,"parcel_id":"330102-017-0042"}"#;
