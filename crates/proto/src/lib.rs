//! Generated protobuf messages and gRPC services for every `citychain.<domain>.v1` package.
//!
//! The sources live in the workspace's `proto/` folder and are compiled at build time without
//! `protoc`. Wire types stop at the service edge: domain code converts them with `TryFrom`.

#![allow(missing_docs, clippy::all, missing_debug_implementations)]

include!(concat!(env!("OUT_DIR"), "/citychain.rs"));

/// The encoded `FileDescriptorSet` of every package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/citychain_descriptor.bin"));
