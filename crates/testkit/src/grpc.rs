//! gRPC helpers for tests: free local ports and a service's health as its health service
//! reports it.

use std::net::SocketAddr;

/// A local address nothing listens on right now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// The serving status (`ServingStatus as i32`) the health service at `addr` reports for a
/// service; `None` when nothing answers there.
pub use citychain_runtime::grpc::health_status as health;
