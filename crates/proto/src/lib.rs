//! Generated protobuf messages and gRPC services for every `citychain.<domain>.v1` package.
//!
//! The sources live in the workspace's `proto/` folder and are compiled at build time without
//! `protoc`. Wire types stop at the service edge: domain code converts them with `TryFrom`.
//! Every generated client and server uses [`codec::ProtoCodec`], so a request body that does
//! not decode is INVALID_ARGUMENT.

#![allow(missing_docs, clippy::all, missing_debug_implementations)]

pub mod codec;

include!(concat!(env!("OUT_DIR"), "/citychain.rs"));

/// The encoded `FileDescriptorSet` of every package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/citychain_descriptor.bin"));
