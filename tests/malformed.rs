//! Malformed bytes to every RPC of every service: each answers INVALID_ARGUMENT naming the
//! message it could not decode, in a short message, never INTERNAL or UNKNOWN.

use bytes::{Buf, BufMut};
use citychain_runtime::grpc::{BUILT_IN_SERVICES, MAX_STATUS_MESSAGE};
use citychain_scenarios::{Network, Service};
use citychain_testkit::genesis::network;
use citychain_testkit::reflection::{Version, list_services};
use prost_reflect::DescriptorPool;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

const SEED: u64 = 97;

/// Sends and receives bytes as they are.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug, Clone, Default)]
struct Raw;

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// Bytes no protobuf message decodes from: a field with wire type 7 (there is none), a
/// length prefix longer than the body, and a varint that never ends.
const MALFORMED: [&[u8]; 3] = [&[0x0f], &[0x0a, 0x7f, 0x01], &[0x08, 0xff, 0xff, 0xff]];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_bytes_to_every_rpc_are_invalid_argument_with_a_short_message() {
    let mut net = Network::new(network(4, SEED)).await;
    net.start_validators().await;
    let services = [Service::Ledger, Service::Licence, Service::Tokens];
    for service in services {
        net.start(service, service.name()).await;
    }
    let pool = DescriptorPool::decode(citychain_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut calls = 0;
    for service in services {
        let url = format!("http://{}", net.addr(service));
        let served = list_services(&url, Version::V1).await.unwrap();
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        for name in served
            .iter()
            .filter(|name| !BUILT_IN_SERVICES.contains(&name.as_str()))
        {
            let descriptor = pool
                .get_service_by_name(name)
                .unwrap_or_else(|| panic!("{url} serves {name}, which the descriptors lack"));
            for method in descriptor.methods() {
                for bytes in MALFORMED {
                    let path = format!("/{}/{}", name, method.name());
                    let mut grpc = tonic::client::Grpc::new(channel.clone());
                    grpc.ready().await.unwrap();
                    let answer = grpc
                        .unary(
                            tonic::Request::new(bytes.to_vec()),
                            path.parse().unwrap(),
                            RawCodec,
                        )
                        .await;
                    let status = answer.expect_err(&format!("{path} accepted {bytes:02x?}"));
                    assert_eq!(
                        status.code(),
                        Code::InvalidArgument,
                        "{path} with {bytes:02x?}: {status:?}"
                    );
                    assert!(
                        status.message().contains(method.input().name()),
                        "{path}: the message names what did not decode: {}",
                        status.message()
                    );
                    assert!(status.message().len() <= MAX_STATUS_MESSAGE);
                    calls += 1;
                }
            }
        }
    }
    assert!(calls >= 3 * 10, "only {calls} calls were made");
}
