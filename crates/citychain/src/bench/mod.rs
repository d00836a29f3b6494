//! The consensus benchmark, in parts:
//!
//! * [`cluster`]: a local nats-server and N validators as tasks of this process, each with its
//!   own NATS connection and its own embedded block store in a temporary directory.
//! * [`load`]: pre-signed licence reads and the open-loop publisher.
//! * [`observe`]: the CHAIN reader that dates every transaction's commit.
//! * [`verify`]: this machine's batch signature verification rate on all cores.
//! * [`report`]: percentiles, the table and the JSON lines.
//! * [`consensus`]: one run per rate, each on a fresh cluster.
//! * [`tracing`]: with `--tracing`, the telemetry of a traced deployment, exporting nowhere.
//!
//! # What is measured
//!
//! Transaction `i` of a run at rate `r` has the intended send time `t0 + i / r`. The publisher
//! sends it at that time or, when it has fallen behind, as soon as it can: it never waits for
//! commits (an open loop), so a saturated cluster shows up as growing latency instead of a
//! slower client. A transaction's latency runs from its intended send time to the moment the
//! block carrying it is delivered from CHAIN, so publisher lag counts against the system too.
//! Percentiles are taken over every offered transaction; one that did not commit before the
//! drain deadline counts as infinitely late, and a percentile that falls among those is
//! reported as missing (`null` in JSON, `-` in the table).
//!
//! Committed throughput is the number of committed transactions divided by the time from the
//! first intended send to the arrival of the block carrying the last of them.

pub mod consensus;
pub mod tracing;

mod cluster;
mod load;
mod observe;
mod report;
mod verify;
