//! # harp — a high-availability replication protocol core
//!
//! harp speaks the wire protocol of Berkeley DB Java Edition High Availability (the twelve
//! messages of the reference `ProtocolMessage` enum, byte for byte) and is built as a
//! `no_std`, allocation-optional core in the sans-IO style: no clock, socket, thread or OS
//! randomness lives in this crate.
//!
//! | module | what it holds |
//! |---|---|
//! | [`wire`] | the message codec: [`MessageRef`] (zero-copy) and its errors |
//! | [`frame`] | stream framing for TCP (length + CRC-32C) and COBS framing for UARTs |
//! | [`checksum`] | CRC-32C with a table size chosen by cargo feature |
//! | `driver` (feature `async`) | runs a node over `embedded-io-async` links (UART, TCP) |
//! | [`election`] | the master election state machine (sans-IO) |
//! | [`membership`] | the group's members, node types and quorums |
//! | [`node`] | a whole node: election and replication behind one sans-IO surface |
//! | [`replication`] | the replicated log (`LogStore`, in RAM or on NOR flash), reserved entry types, ack policies |
//! | [`storage`] | the stable-store trait, the persisted election record, a NOR-flash store |
//! | [`rng`] | the small seeded PRNG behind randomised timeouts |
//! | `ProtocolMessage` (feature `alloc`) | the owned message with the reference API |
//!
//! ```
//! use harp::{MessageRef, NodeType};
//!
//! let msg = MessageRef::Handshake { node_name: "n1", group_name: "g", node_type: NodeType::Secondary };
//! let mut buf = [0u8; 64];
//! let len = msg.encode_into(&mut buf)?;
//! assert_eq!(&buf[..len], &[1, 2, 0, 0, 0, b'n', b'1', 1, 0, 0, 0, b'g', 2]);
//! assert_eq!(MessageRef::decode(&buf[..len])?, msg);
//! # Ok::<(), harp::wire::Error>(())
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod arith;
pub mod checksum;
#[cfg(feature = "async")]
pub mod driver;
pub mod election;
pub mod frame;
pub mod membership;
pub mod node;
pub mod replication;
pub mod rng;
pub mod storage;
pub mod wire;

#[cfg(feature = "alloc")]
mod owned;
#[cfg(feature = "sim")]
pub mod sim;

/// The `embedded-io` version harp is written against, re-exported so users match it.
pub use embedded_io;
/// The `embedded-storage` version whose `NorFlash` [`storage::NorFlashStore`] and
/// [`replication::NorFlashLog`] run on.
pub use embedded_storage;
/// The `heapless` version harp's fixed-capacity types come from.
pub use heapless;

#[cfg(feature = "alloc")]
pub use owned::{ProtocolMessage, RepNode};
pub use wire::{GroupChangeType, MessageRef, NodeType, RepNodeRef};
