//! harp's extension messages (tags 13 and up) and [`Message`], the union of reference and
//! extension messages that a harp node sends and receives.
//!
//! The twelve reference messages keep their exact layout; these five carry what the
//! reference messages cannot (the term of a log's last entry, the log-matching check of the
//! replication stream, and the pre-vote that keeps a cut-off voter from deposing a working
//! master). Their layouts, in the reference's primitives:
//!
//! | tag | extension | fields |
//! |---|---|---|
//! | 13 | LogTerm | term: u64, log_term: u64 |
//! | 14 | SyncPoint | vlsn: u64, log_term: u64 |
//! | 15 | SyncNack | vlsn: u64 |
//! | 16 | PreProposal | term: u64 |
//! | 17 | PreVote | term: u64 |
//!
//! A peer that only speaks the reference rejects these tags as unknown, which is the clean
//! failure; [`MessageRef::decode`] does the same.

use super::codec::{Reader, Sink, SliceSink};
use super::error::{Error, Field};
use super::MessageRef;
use core::fmt;

/// An extension message (tags 13..=17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Extension {
    /// Tag 13. Sent by a voter with its `ElectionProposal` for election term `term`: the term
    /// in which the last entry of its log was written. Ranking compares it first, so a node
    /// with a longer log from an older term never beats one holding the newer term's entries.
    LogTerm {
        /// The election term of the proposal this accompanies.
        term: u64,
        /// The term of the sender's last log entry (0 for an empty log).
        log_term: u64,
    },
    /// Tag 14. Master to replica: "my entry at `vlsn` was written in `log_term`; the entries
    /// I send next follow it". The replica checks its own entry at `vlsn` (log matching).
    SyncPoint {
        /// The VLSN the stream continues after (0: from the start).
        vlsn: u64,
        /// The term of the master's entry at `vlsn` (0 when `vlsn` is 0).
        log_term: u64,
    },
    /// Tag 15. Replica to master: "I do not match at your sync point (or I missed entries);
    /// my log agrees with yours at most up to `vlsn`" (a hint; the master retries there).
    SyncNack {
        /// Where the master should try next.
        vlsn: u64,
    },
    /// Tag 16. A voter whose master has been silent for an election timeout, to the other
    /// voters: "would you join term `term` if I started it?" It changes no term and binds
    /// nothing; the sender starts `term` only once a quorum answered [`PreVote`](Self::PreVote).
    PreProposal {
        /// The term the sender would start (its current term + 1).
        term: u64,
    },
    /// Tag 17. The answer "yes" to a [`PreProposal`](Self::PreProposal): "I have not heard a
    /// master for an election timeout either, so I would join `term`". Not persisted: it is
    /// no vote, and a refusal is silence (or the master's `ElectionResult`).
    PreVote {
        /// The term of the pre-proposal it answers.
        term: u64,
    },
}

impl Extension {
    /// The wire tag.
    pub const fn tag(&self) -> u8 {
        match self {
            Extension::LogTerm { .. } => 13,
            Extension::SyncPoint { .. } => 14,
            Extension::SyncNack { .. } => 15,
            Extension::PreProposal { .. } => 16,
            Extension::PreVote { .. } => 17,
        }
    }

    /// The encoded length in bytes.
    pub const fn encoded_len(&self) -> usize {
        match self {
            Extension::LogTerm { .. } | Extension::SyncPoint { .. } => 17,
            Extension::SyncNack { .. }
            | Extension::PreProposal { .. }
            | Extension::PreVote { .. } => 9,
        }
    }

    pub(crate) fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        s.put_u8(self.tag())?;
        match *self {
            Extension::LogTerm { term: a, log_term: b }
            | Extension::SyncPoint { vlsn: a, log_term: b } => {
                s.put_u64(a)?;
                s.put_u64(b)
            }
            Extension::SyncNack { vlsn: a }
            | Extension::PreProposal { term: a }
            | Extension::PreVote { term: a } => s.put_u64(a),
        }
    }

    fn decode_fields(tag: u8, r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(match tag {
            13 => Extension::LogTerm {
                term: r.u64(Field::LogTermTerm)?,
                log_term: r.u64(Field::LogTermLogTerm)?,
            },
            14 => Extension::SyncPoint {
                vlsn: r.u64(Field::SyncPointVlsn)?,
                log_term: r.u64(Field::SyncPointLogTerm)?,
            },
            15 => Extension::SyncNack { vlsn: r.u64(Field::SyncNackVlsn)? },
            16 => Extension::PreProposal { term: r.u64(Field::PreProposalTerm)? },
            17 => Extension::PreVote { term: r.u64(Field::PreVoteTerm)? },
            tag => return Err(Error::UnknownTag { tag }),
        })
    }
}

/// Any message a harp node exchanges: a reference message or an extension.
///
/// ```
/// use harp::wire::{Extension, Message};
/// use harp::MessageRef;
///
/// let mut buf = [0u8; 32];
/// let n = Message::Ext(Extension::SyncNack { vlsn: 7 }).encode_into(&mut buf)?;
/// assert_eq!(&buf[..n], &[15, 7, 0, 0, 0, 0, 0, 0, 0]);
/// assert_eq!(Message::decode(&buf[..n])?, Message::Ext(Extension::SyncNack { vlsn: 7 }));
/// let n = MessageRef::Ack { vlsn: 7 }.encode_into(&mut buf)?;
/// assert_eq!(Message::decode(&buf[..n])?, Message::Core(MessageRef::Ack { vlsn: 7 }));
/// # Ok::<(), harp::wire::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Message<'a> {
    /// One of the twelve reference messages.
    Core(MessageRef<'a>),
    /// A harp extension (tags 13 and up).
    Ext(Extension),
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Core(m) => m.fmt(f),
            Message::Ext(e) => e.fmt(f),
        }
    }
}

impl<'a> From<MessageRef<'a>> for Message<'a> {
    fn from(m: MessageRef<'a>) -> Self {
        Message::Core(m)
    }
}

impl<'a> From<&MessageRef<'a>> for Message<'a> {
    fn from(m: &MessageRef<'a>) -> Self {
        Message::Core(*m)
    }
}

impl<'a> From<&Message<'a>> for Message<'a> {
    fn from(m: &Message<'a>) -> Self {
        *m
    }
}

impl From<Extension> for Message<'_> {
    fn from(e: Extension) -> Self {
        Message::Ext(e)
    }
}

impl<'a> Message<'a> {
    /// Decodes a reference message or an extension that fills `bytes` exactly.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        match bytes.first() {
            Some(&tag) if tag >= 13 => {
                let mut r = Reader::new(bytes);
                r.u8(Field::Tag)?;
                let ext = Extension::decode_fields(tag, &mut r)?;
                r.finish()?;
                Ok(Message::Ext(ext))
            }
            _ => super::decode_core(bytes).map(Message::Core),
        }
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::Core(m) => m.encoded_len(),
            Message::Ext(e) => e.encoded_len(),
        }
    }

    /// Encodes into the front of `buf`; returns the length (see [`MessageRef::encode_into`]).
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, Error> {
        match self {
            Message::Core(m) => m.encode_into(buf),
            Message::Ext(e) => {
                let required = e.encoded_len();
                if buf.len() < required {
                    return Err(Error::BufferTooSmall { required, available: buf.len() });
                }
                let mut sink = SliceSink::new(buf);
                e.emit(&mut sink)?;
                Ok(sink.position())
            }
        }
    }

    pub(crate) fn emit<S: Sink>(&self, s: &mut S) -> Result<(), S::Error> {
        match self {
            Message::Core(m) => m.emit(s),
            Message::Ext(e) => e.emit(s),
        }
    }

    /// The reference message, if this is one.
    pub fn as_core(&self) -> Option<&MessageRef<'a>> {
        match self {
            Message::Core(m) => Some(m),
            Message::Ext(_) => None,
        }
    }
}
