//! A gRPC reflection client for tests, in both protocol versions (`grpc.reflection.v1` and
//! `grpc.reflection.v1alpha`), doing what a generic client (grpcurl, Python's
//! grpcio-reflection) does: list a server's services, and fetch the file that defines a symbol
//! with every file it imports, by name, until nothing is missing.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

/// Which reflection protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `grpc.reflection.v1`.
    V1,
    /// `grpc.reflection.v1alpha`.
    V1Alpha,
}

/// What a reflection request asks.
#[derive(Debug, Clone)]
enum Ask {
    ListServices,
    Symbol(String),
    File(String),
}

/// What a reflection answer holds.
#[derive(Debug)]
enum Answer {
    Services(Vec<String>),
    Files(Vec<Vec<u8>>),
}

/// One request and its answer, in the protocol `$pb`.
macro_rules! ask_in {
    ($pb:path, $url:expr, $ask:expr) => {{
        use pb::server_reflection_request::MessageRequest;
        use pb::server_reflection_response::MessageResponse;
        use $pb as pb;
        let channel = tonic::transport::Endpoint::from_shared($url)
            .map_err(|e| format!("address: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut client = pb::server_reflection_client::ServerReflectionClient::new(channel);
        let request = pb::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(match $ask {
                Ask::ListServices => MessageRequest::ListServices(String::new()),
                Ask::Symbol(symbol) => MessageRequest::FileContainingSymbol(symbol),
                Ask::File(name) => MessageRequest::FileByFilename(name),
            }),
        };
        let mut answers = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .map_err(|status| format!("{}: {}", status.code(), status.message()))?
            .into_inner();
        let answer = answers
            .message()
            .await
            .map_err(|status| format!("{}: {}", status.code(), status.message()))?
            .ok_or("the server sent no answer")?;
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => Ok(Answer::Services(
                list.service.into_iter().map(|s| s.name).collect(),
            )),
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                Ok(Answer::Files(files.file_descriptor_proto))
            }
            Some(MessageResponse::ErrorResponse(err)) => {
                Err(format!("error {}: {}", err.error_code, err.error_message))
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    }};
}

async fn ask(url: &str, version: Version, what: Ask) -> Result<Answer, String> {
    let url = url.to_owned();
    match version {
        Version::V1 => ask_in!(tonic_reflection::pb::v1, url, what),
        Version::V1Alpha => ask_in!(tonic_reflection::pb::v1alpha, url, what),
    }
}

/// The services the server at `url` advertises, sorted.
pub async fn list_services(url: &str, version: Version) -> Result<Vec<String>, String> {
    match ask(url, version, Ask::ListServices).await? {
        Answer::Services(mut names) => {
            names.sort();
            Ok(names)
        }
        Answer::Files(_) => Err("a file answer to list_services".into()),
    }
}

fn decode_files(
    raw: Vec<Vec<u8>>,
    into: &mut BTreeMap<String, FileDescriptorProto>,
) -> Result<(), String> {
    for bytes in raw {
        let file = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
        into.insert(file.name().to_owned(), file);
    }
    Ok(())
}

/// The file defining `symbol` on the server at `url`, with every file it imports, directly or
/// not, each fetched by name as a generic client does: a set from which a descriptor pool can
/// be built with nothing else.
pub async fn files_for_symbol(
    url: &str,
    version: Version,
    symbol: &str,
) -> Result<FileDescriptorSet, String> {
    let mut files = BTreeMap::new();
    match ask(url, version, Ask::Symbol(symbol.to_owned())).await? {
        Answer::Files(raw) => decode_files(raw, &mut files)?,
        Answer::Services(_) => return Err("a services answer to a symbol".into()),
    }
    loop {
        let missing: BTreeSet<String> = files
            .values()
            .flat_map(|f| f.dependency.iter().cloned())
            .filter(|name| !files.contains_key(name))
            .collect();
        let Some(name) = missing.into_iter().next() else {
            break;
        };
        match ask(url, version, Ask::File(name.clone())).await? {
            Answer::Files(raw) => decode_files(raw, &mut files)?,
            Answer::Services(_) => return Err(format!("a services answer to file {name}")),
        }
        if !files.contains_key(&name) {
            return Err(format!("the server did not send {name}"));
        }
    }
    Ok(FileDescriptorSet {
        file: files.into_values().collect(),
    })
}
