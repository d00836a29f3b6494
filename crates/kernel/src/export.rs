//! The chain export file: a self-describing stream of every block from height 1, with a
//! trailer that makes truncation and stray bytes detectable. Reading and writing only; whether
//! the blocks form a valid chain is for a verifier such as [`crate::ChainVerifier`].
//!
//! Layout (all integers big-endian; `docs/formats.md` has the same byte by byte):
//!
//! ```text
//! header   "citychain-export" (16 ASCII bytes) | version u16 = 1
//!          | len(chain_id) u8 | chain_id | genesis hash (32)
//! record   'B' (0x42) | length u32 (1 ..= MAX_RECORD_BYTES) | Block::encode (length bytes)
//!          ... one per block, heights 1, 2, 3, ... in order
//! trailer  'E' (0x45) | block count u64 | blake3 of every byte before this hash (32)
//! ```
//!
//! Nothing may follow the trailer. The reader hashes as it reads, so one pass checks the
//! trailer without holding the file.

use std::io::{self, Read, Write};

use thiserror::Error;

use crate::block::{Block, BlockError};
use crate::error::DecodeError;
use crate::genesis::Genesis;
use crate::hash::Hash32;
use crate::ids::{ChainId, Height};

/// The first 16 bytes of every export.
pub const MAGIC: &[u8; 16] = b"citychain-export";

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// The largest block record accepted, in bytes (64 MiB). A reader refuses a longer length
/// prefix before allocating anything.
pub const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;

/// The kind byte of a block record.
pub const RECORD_BLOCK: u8 = b'B';

/// The kind byte of the trailer.
pub const RECORD_TRAILER: u8 = b'E';

/// An export that cannot be written or read. Errors about a record name the height the record
/// should have.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The file does not start with [`MAGIC`].
    #[error("not a citychain export: the file starts with {found}, expected {expected:?}")]
    BadMagic {
        /// Hex of the first bytes.
        found: String,
        /// The magic expected.
        expected: &'static str,
    },
    /// A format version this code does not read.
    #[error(
        "export format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u16,
        /// The version supported.
        supported: u16,
    },
    /// The chain id in the header breaks its rules.
    #[error("export header chain id: {0}")]
    ChainId(DecodeError),
    /// The file ends inside its header.
    #[error("export header is truncated: the file ends inside the {part}")]
    HeaderTruncated {
        /// The field being read.
        part: &'static str,
    },
    /// The header names another chain or genesis than the one given.
    #[error("export header {field} is {export}, the genesis has {genesis}")]
    GenesisMismatch {
        /// `chain id` or `genesis hash`.
        field: &'static str,
        /// The value in the export.
        export: String,
        /// The value of the genesis.
        genesis: String,
    },
    /// The file ends inside a record or the trailer.
    #[error("block {height}: the file ends inside the {part} (truncated)")]
    Truncated {
        /// The height being read.
        height: Height,
        /// What was being read.
        part: &'static str,
    },
    /// The file ends between records, without a trailer.
    #[error("block {height}: the file ends after {blocks} blocks without a trailer (truncated)")]
    MissingTrailer {
        /// The height that would come next.
        height: Height,
        /// Blocks read.
        blocks: u64,
    },
    /// A record kind other than block or trailer.
    #[error(
        "block {height}: unknown record kind 0x{kind:02x} (expected 0x42 block or 0x45 trailer)"
    )]
    UnknownKind {
        /// The height being read.
        height: Height,
        /// The kind byte found.
        kind: u8,
    },
    /// A record's length is zero or above [`MAX_RECORD_BYTES`].
    #[error("block {height}: record length {length} is outside 1..={limit} bytes")]
    RecordLength {
        /// The height of the record.
        height: Height,
        /// The length found (or of the block being written).
        length: u64,
        /// The limit.
        limit: u32,
    },
    /// A record's bytes are not a canonical block.
    #[error("block {height}: record does not decode: {source}")]
    Block {
        /// The height the record should have.
        height: Height,
        /// Why.
        source: BlockError,
    },
    /// A record holds a block of another height (blocks missing, repeated or reordered).
    #[error("block {expected}: the record holds block {found}")]
    WrongHeight {
        /// The height this record should have.
        expected: Height,
        /// The height of the block in it.
        found: Height,
    },
    /// A block for another chain was pushed to a writer.
    #[error("block {height} is for chain {found:?}, the export is for {expected:?}")]
    WrongChain {
        /// The block's height.
        height: Height,
        /// The export's chain.
        expected: String,
        /// The block's chain.
        found: String,
    },
    /// The trailer's block count is not the number of blocks read.
    #[error("block {height}: the trailer says {trailer} blocks, {read} were read")]
    TrailerCount {
        /// The height that would come next.
        height: Height,
        /// The count in the trailer.
        trailer: u64,
        /// Blocks read.
        read: u64,
    },
    /// The trailer's hash is not the hash of the bytes before it.
    #[error("block {height}: the trailer hash is {found}, the bytes before it hash to {computed}")]
    TrailerHash {
        /// The height that would come next.
        height: Height,
        /// The hash in the trailer.
        found: Hash32,
        /// The hash computed.
        computed: Hash32,
    },
    /// Bytes after the trailer.
    #[error("block {height}: bytes follow the trailer")]
    TrailingData {
        /// The height that would come next.
        height: Height,
    },
    /// Reading failed (other than by ending early).
    #[error("block {height}: cannot read the export: {source}")]
    Read {
        /// The height being read.
        height: Height,
        /// The error.
        source: io::Error,
    },
    /// Reading the header failed (other than by ending early).
    #[error("cannot read the export header: {0}")]
    HeaderRead(io::Error),
    /// Writing failed.
    #[error("cannot write the export: {0}")]
    Write(io::Error),
}

impl ExportError {
    /// The height of the record the error is about; `None` for the file header and writes.
    pub fn height(&self) -> Option<Height> {
        match self {
            ExportError::Truncated { height, .. }
            | ExportError::MissingTrailer { height, .. }
            | ExportError::UnknownKind { height, .. }
            | ExportError::RecordLength { height, .. }
            | ExportError::Block { height, .. }
            | ExportError::WrongChain { height, .. }
            | ExportError::TrailerCount { height, .. }
            | ExportError::TrailerHash { height, .. }
            | ExportError::TrailingData { height }
            | ExportError::Read { height, .. } => Some(*height),
            ExportError::WrongHeight { expected, .. } => Some(*expected),
            ExportError::BadMagic { .. }
            | ExportError::UnsupportedVersion { .. }
            | ExportError::ChainId(_)
            | ExportError::HeaderTruncated { .. }
            | ExportError::GenesisMismatch { .. }
            | ExportError::HeaderRead(_)
            | ExportError::Write(_) => None,
        }
    }
}

/// Writes an export: the header on creation, one record per [`ExportWriter::push`], the
/// trailer on [`ExportWriter::finish`]. Blocks must come in height order from 1.
#[derive(Debug)]
pub struct ExportWriter<W: Write> {
    writer: W,
    hasher: blake3::Hasher,
    chain_id: ChainId,
    next_height: Height,
    blocks: u64,
}

impl<W: Write> ExportWriter<W> {
    /// Writes the header for `genesis`'s chain.
    pub fn new(writer: W, genesis: &Genesis) -> Result<Self, ExportError> {
        let mut out = ExportWriter {
            writer,
            hasher: blake3::Hasher::new(),
            chain_id: genesis.chain_id.clone(),
            next_height: Height(1),
            blocks: 0,
        };
        let chain = genesis.chain_id.as_str().as_bytes();
        let mut header = Vec::with_capacity(16 + 2 + 1 + chain.len() + 32);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        // Chain ids are at most 64 bytes, so one length byte suffices.
        header.push(chain.len() as u8);
        header.extend_from_slice(chain);
        header.extend_from_slice(genesis.hash().as_bytes());
        out.put(&header)?;
        Ok(out)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.hasher.update(bytes);
        self.writer.write_all(bytes).map_err(ExportError::Write)
    }

    /// Appends `block`, which must be the next height and on the export's chain.
    pub fn push(&mut self, block: &Block) -> Result<(), ExportError> {
        let height = block.header.height;
        if height != self.next_height {
            return Err(ExportError::WrongHeight {
                expected: self.next_height,
                found: height,
            });
        }
        if block.header.chain_id != self.chain_id {
            return Err(ExportError::WrongChain {
                height,
                expected: self.chain_id.to_string(),
                found: block.header.chain_id.to_string(),
            });
        }
        let bytes = block.encode();
        let length = u32::try_from(bytes.len())
            .ok()
            .filter(|l| (1..=MAX_RECORD_BYTES).contains(l))
            .ok_or(ExportError::RecordLength {
                height,
                length: bytes.len() as u64,
                limit: MAX_RECORD_BYTES,
            })?;
        self.put(&[RECORD_BLOCK])?;
        self.put(&length.to_be_bytes())?;
        self.put(&bytes)?;
        self.blocks += 1;
        self.next_height = Height(height.0 + 1);
        Ok(())
    }

    /// Blocks written so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Writes the trailer, flushes, and gives the writer back.
    pub fn finish(mut self) -> Result<W, ExportError> {
        self.put(&[RECORD_TRAILER])?;
        self.put(&self.blocks.to_be_bytes())?;
        let digest = *self.hasher.finalize().as_bytes();
        self.writer.write_all(&digest).map_err(ExportError::Write)?;
        self.writer.flush().map_err(ExportError::Write)?;
        Ok(self.writer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Blocks,
    Complete,
    Failed,
}

/// Reads an export: the header on creation, then blocks as an iterator. The iterator ends
/// (`None`) after the trailer verified or after it yielded an error; [`ExportReader::is_complete`]
/// tells which. Give it a buffered reader: it reads records piece by piece.
#[derive(Debug)]
pub struct ExportReader<R: Read> {
    reader: R,
    hasher: blake3::Hasher,
    chain_id: ChainId,
    genesis_hash: Hash32,
    next_height: Height,
    blocks: u64,
    state: State,
}

/// How a read ended short.
enum Short {
    /// No byte at all was available.
    Empty,
    /// Some bytes, then the end.
    Partial,
    /// Another IO error.
    Io(io::Error),
}

/// Fills `buf` from `reader`, telling an end before the first byte from an end later.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<(), Short> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Err(Short::Empty),
            Ok(0) => return Err(Short::Partial),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Short::Io(e)),
        }
    }
    Ok(())
}

impl<R: Read> ExportReader<R> {
    /// Reads and checks the header: magic, version, chain id, genesis hash.
    pub fn new(mut reader: R) -> Result<Self, ExportError> {
        let mut hasher = blake3::Hasher::new();
        let mut field = |reader: &mut R, buf: &mut [u8], part: &'static str| {
            fill(reader, buf).map_err(|short| match short {
                Short::Io(e) => ExportError::HeaderRead(e),
                Short::Empty | Short::Partial => ExportError::HeaderTruncated { part },
            })?;
            hasher.update(buf);
            Ok::<(), ExportError>(())
        };
        let mut magic = [0u8; 16];
        field(&mut reader, &mut magic, "magic")?;
        if &magic != MAGIC {
            return Err(ExportError::BadMagic {
                found: hex::encode(magic),
                expected: "citychain-export",
            });
        }
        let mut version = [0u8; 2];
        field(&mut reader, &mut version, "format version")?;
        let version = u16::from_be_bytes(version);
        if version != FORMAT_VERSION {
            return Err(ExportError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut length = [0u8; 1];
        field(&mut reader, &mut length, "chain id length")?;
        let mut chain = vec![0u8; usize::from(length[0])];
        field(&mut reader, &mut chain, "chain id")?;
        let chain = String::from_utf8(chain).map_err(|e| {
            ExportError::ChainId(DecodeError::Invalid {
                field: "chain_id",
                value: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "it is not UTF-8",
            })
        })?;
        let chain_id = ChainId::new(chain).map_err(ExportError::ChainId)?;
        let mut genesis_hash = [0u8; 32];
        field(&mut reader, &mut genesis_hash, "genesis hash")?;
        Ok(ExportReader {
            reader,
            hasher,
            chain_id,
            genesis_hash: Hash32(genesis_hash),
            next_height: Height(1),
            blocks: 0,
            state: State::Blocks,
        })
    }

    /// The chain named in the header.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The genesis hash named in the header.
    pub fn genesis_hash(&self) -> Hash32 {
        self.genesis_hash
    }

    /// Refuses an export whose header names another chain id or genesis hash than `genesis`.
    pub fn check_genesis(&self, genesis: &Genesis) -> Result<(), ExportError> {
        if self.chain_id != genesis.chain_id {
            return Err(ExportError::GenesisMismatch {
                field: "chain id",
                export: format!("{:?}", self.chain_id.as_str()),
                genesis: format!("{:?}", genesis.chain_id.as_str()),
            });
        }
        let hash = genesis.hash();
        if self.genesis_hash != hash {
            return Err(ExportError::GenesisMismatch {
                field: "genesis hash",
                export: self.genesis_hash.to_string(),
                genesis: hash.to_string(),
            });
        }
        Ok(())
    }

    /// The height the next record must have.
    pub fn next_height(&self) -> Height {
        self.next_height
    }

    /// Blocks read so far.
    pub fn blocks_read(&self) -> u64 {
        self.blocks
    }

    /// Whether the trailer was read and verified (the file is complete).
    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// Reads `buf` through the running hash; `part` names it in a truncation error.
    fn take(&mut self, buf: &mut [u8], part: &'static str) -> Result<(), ExportError> {
        let height = self.next_height;
        fill(&mut self.reader, buf).map_err(|short| match short {
            Short::Io(source) => ExportError::Read { height, source },
            Short::Empty | Short::Partial => ExportError::Truncated { height, part },
        })?;
        self.hasher.update(buf);
        Ok(())
    }

    fn next_record(&mut self) -> Result<Option<Block>, ExportError> {
        let height = self.next_height;
        let mut kind = [0u8; 1];
        match fill(&mut self.reader, &mut kind) {
            Ok(()) => self.hasher.update(&kind),
            Err(Short::Empty) | Err(Short::Partial) => {
                return Err(ExportError::MissingTrailer {
                    height,
                    blocks: self.blocks,
                });
            }
            Err(Short::Io(source)) => return Err(ExportError::Read { height, source }),
        };
        match kind[0] {
            RECORD_BLOCK => self.block_record(height).map(Some),
            RECORD_TRAILER => self.trailer(height).map(|()| None),
            other => Err(ExportError::UnknownKind {
                height,
                kind: other,
            }),
        }
    }

    fn block_record(&mut self, height: Height) -> Result<Block, ExportError> {
        let mut length = [0u8; 4];
        self.take(&mut length, "record length")?;
        let length = u32::from_be_bytes(length);
        if length == 0 || length > MAX_RECORD_BYTES {
            return Err(ExportError::RecordLength {
                height,
                length: u64::from(length),
                limit: MAX_RECORD_BYTES,
            });
        }
        // Read through `take` so a lying length allocates only what the file holds.
        let mut bytes = Vec::new();
        (&mut self.reader)
            .take(u64::from(length))
            .read_to_end(&mut bytes)
            .map_err(|source| ExportError::Read { height, source })?;
        if bytes.len() != length as usize {
            return Err(ExportError::Truncated {
                height,
                part: "block record",
            });
        }
        self.hasher.update(&bytes);
        let block =
            Block::decode(&bytes).map_err(|source| ExportError::Block { height, source })?;
        if block.header.height != height {
            return Err(ExportError::WrongHeight {
                expected: height,
                found: block.header.height,
            });
        }
        self.blocks += 1;
        self.next_height = Height(height.0.saturating_add(1));
        Ok(block)
    }

    fn trailer(&mut self, height: Height) -> Result<(), ExportError> {
        let mut count = [0u8; 8];
        self.take(&mut count, "trailer")?;
        let count = u64::from_be_bytes(count);
        let computed = Hash32(*self.hasher.finalize().as_bytes());
        let mut found = [0u8; 32];
        self.take(&mut found, "trailer")?;
        let found = Hash32(found);
        if count != self.blocks {
            return Err(ExportError::TrailerCount {
                height,
                trailer: count,
                read: self.blocks,
            });
        }
        if found != computed {
            return Err(ExportError::TrailerHash {
                height,
                found,
                computed,
            });
        }
        let mut extra = [0u8; 1];
        match fill(&mut self.reader, &mut extra) {
            Err(Short::Empty) => Ok(()),
            Ok(()) | Err(Short::Partial) => Err(ExportError::TrailingData { height }),
            Err(Short::Io(source)) => Err(ExportError::Read { height, source }),
        }
    }
}

impl<R: Read> Iterator for ExportReader<R> {
    type Item = Result<Block, ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != State::Blocks {
            return None;
        }
        match self.next_record() {
            Ok(Some(block)) => Some(Ok(block)),
            Ok(None) => {
                self.state = State::Complete;
                None
            }
            Err(e) => {
                self.state = State::Failed;
                Some(Err(e))
            }
        }
    }
}
