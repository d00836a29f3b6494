//! Pure rules of the consensus service.

pub mod replay;
