//! What an outside integrator sees through gRPC reflection, with no citychain code: each
//! service's endpoint lists exactly the services it serves, in both reflection protocols
//! (`v1` and the older `v1alpha` that many clients speak), and every message needed to build
//! a transaction body that the endpoint accepts (governance and licence bodies through the
//! ledger, licence bodies through the licence service) resolves from that endpoint's own
//! files, fetched as a generic client fetches them.

use citychain_proto::citychain::governance::v1 as gpb;
use citychain_runtime::grpc::BUILT_IN_SERVICES;
use citychain_scenarios::{Network, Service};
use citychain_testkit::genesis::network;
use citychain_testkit::reflection::{Version, files_for_symbol, list_services};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};

/// Seed of the test network's keys.
const SEED: u64 = 83;

/// Every message of `package` in the project's own descriptors.
fn messages_of(package: &str) -> Vec<String> {
    let own = DescriptorPool::decode(citychain_proto::FILE_DESCRIPTOR_SET).unwrap();
    own.all_messages()
        .filter(|m| m.package_name() == package)
        .map(|m| m.full_name().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_endpoint_lists_exactly_its_services_and_resolves_the_bodies_it_accepts() {
    let mut net = Network::new(network(4, SEED)).await;
    net.start_validators().await;
    for service in [Service::Ledger, Service::Tokens, Service::Licence] {
        net.start(service, service.name()).await;
        net.wait_serving(service).await;
    }
    let governance = messages_of("citychain.governance.v1");
    let licence = messages_of("citychain.licence.v1");
    assert!(
        governance
            .iter()
            .any(|m| m == "citychain.governance.v1.Propose")
    );
    assert!(licence.iter().any(|m| m == "citychain.licence.v1.Upload"));

    for version in [Version::V1, Version::V1Alpha] {
        for service in [Service::Ledger, Service::Tokens, Service::Licence] {
            let url = format!("http://{}", net.addr(service));
            let listed = list_services(&url, version).await.unwrap();
            let mut expected = vec![service.health_name()];
            expected.extend(BUILT_IN_SERVICES);
            expected.sort_unstable();
            assert_eq!(listed, expected, "{} over {version:?}", service.name());
        }

        // The ledger admits governance and licence bodies: all their messages resolve from
        // the ledger service's file and its imports.
        let ledger = format!("http://{}", net.addr(Service::Ledger));
        let set = files_for_symbol(&ledger, version, Service::Ledger.health_name())
            .await
            .unwrap();
        let pool = DescriptorPool::from_file_descriptor_set(set).unwrap();
        for name in governance.iter().chain(&licence) {
            assert!(
                pool.get_message_by_name(name).is_some(),
                "{name} is not reachable from the ledger over {version:?}"
            );
        }
        // The licence service admits uploads and reads.
        let url = format!("http://{}", net.addr(Service::Licence));
        let set = files_for_symbol(&url, version, Service::Licence.health_name())
            .await
            .unwrap();
        let licence_pool = DescriptorPool::from_file_descriptor_set(set).unwrap();
        for name in &licence {
            assert!(
                licence_pool.get_message_by_name(name).is_some(),
                "{name} is not reachable from the licence service over {version:?}"
            );
        }

        // A body built from the reflected descriptors alone is the one the services decode.
        let descriptor = pool
            .get_message_by_name("citychain.governance.v1.Approve")
            .unwrap();
        let mut approve = DynamicMessage::new(descriptor);
        approve.set_field_by_name("proposal_id", Value::String("grant-7".into()));
        let decoded = gpb::Approve::decode(approve.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.proposal_id, "grant-7");
    }
}

#[test]
fn the_ledgers_body_catalogue_names_the_body_types_governance_and_licence_define() {
    let own = DescriptorPool::decode(citychain_proto::FILE_DESCRIPTOR_SET).unwrap();
    let catalogue = own
        .get_message_by_name("citychain.ledger.v1.TransactionBodies")
        .unwrap();
    let mut listed: Vec<String> = catalogue
        .fields()
        .filter_map(|f| match f.kind() {
            prost_reflect::Kind::Message(m) => Some(m.full_name().to_owned()),
            _ => None,
        })
        .collect();
    listed.sort();
    let mut defined = vec![
        citychain_governance::PROPOSE_TYPE_URL,
        citychain_governance::APPROVE_TYPE_URL,
        citychain_records::UPLOAD_TYPE_URL,
        citychain_records::READ_TYPE_URL,
        citychain_records::BIND_SUBJECT_TYPE_URL,
        citychain_records::RECEIPTS_QUERY_TYPE_URL,
    ];
    defined.sort_unstable();
    assert_eq!(listed, defined);
}
