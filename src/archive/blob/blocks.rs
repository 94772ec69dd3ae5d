//! Block ids that make a staged upload resumable and unmixable: each block's id carries its place in the file,
//! the SHA-256 state of the file after it, and a link that commits to the source of the bytes and to the block
//! before it.
//!
//! Why the hash lives in the ids: a retried job must resume the file's SHA-256 where the last attempt stopped, and
//! Blob Storage cannot read back uncommitted blocks. Re-downloading the prefix from ACS would double the traffic;
//! a sidecar blob with the hasher's state would be one more write per block, and could disagree with the blocks.
//! The id is written in the same request as the block's bytes, so the two can never disagree: listing the
//! uncommitted blocks gives back both the bytes already kept and the hash state to continue from.
//!
//! The state after a block is a function of every byte up to its end, so an id names its content: two writers of
//! one file (a duplicate job) that stage the same id stage the same bytes. The state alone cannot tie a block to
//! the one before it, though — two attempts that got different bytes (two URLs announced for one chunk) would each
//! leave a block at every offset — so each id also carries a link: a digest of the source URL and of the previous
//! block's id. A resumed writer follows the chain from the file's start, one block per place whose link is the one
//! expected, and stops at the first place with none or with more than one: a chain of another source, or a fork,
//! is never continued. The last block, staged only at commit, carries the finished SHA-256 of the whole file
//! instead.
//!
//! SHA-256's state can be carried only at 64-byte boundaries, so every full block is a multiple of 64 bytes; the
//! running hash here is SHA-256 ([FIPS 180-4]) built on the `sha2` crate's compression function, with its padding,
//! and is checked against `sha2`'s own digest.
//!
//! [FIPS 180-4]: https://csrc.nist.gov/pubs/fips/180-4/upd1/final

use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

/// SHA-256's initial state.
const INITIAL_STATE: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
/// SHA-256 processes 64-byte blocks.
pub const HASH_BLOCK: usize = 64;

/// The first bytes of every id: which layout follows (a full block with its state and link, or the last block).
/// Full blocks of earlier versions (`acs1`, without a link) are never continued.
const FULL: &[u8; 2] = b"a2";
const LAST: &[u8; 4] = b"acsZ";
/// Full: magic (2) + place (4) + state (32) + link (10). Last: magic (4) + offset (8) + length (4) + digest (32).
/// Both 48 bytes, 64 in base64, the most Blob Storage takes.
const ID_BYTES: usize = 48;
/// Bytes of a link: 80 bits, so that no chance agreement joins two chains.
pub const LINK_BYTES: usize = 10;

/// A SHA-256 whose state can be taken out at a 64-byte boundary and put back later.
#[derive(Debug, Clone)]
pub struct RunningSha256 {
    state: [u32; 8],
    /// Bytes hashed so far.
    length: u64,
    /// Bytes not yet compressed (fewer than 64).
    tail: Vec<u8>,
}

impl Default for RunningSha256 {
    fn default() -> Self {
        Self::resume(INITIAL_STATE, 0)
    }
}

impl RunningSha256 {
    /// Continues a hash whose state after `length` bytes (a multiple of 64) was `state`.
    pub fn resume(state: [u32; 8], length: u64) -> Self {
        debug_assert_eq!(length % HASH_BLOCK as u64, 0);
        Self {
            state,
            length,
            tail: Vec::with_capacity(HASH_BLOCK),
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len() as u64;
        if !self.tail.is_empty() {
            let take = (HASH_BLOCK - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() < HASH_BLOCK {
                return;
            }
            sha2::compress256(&mut self.state, &[*GenericArray::<u8, U64>::from_slice(&self.tail)]);
            self.tail.clear();
        }
        let whole = bytes.len() - bytes.len() % HASH_BLOCK;
        for block in bytes[..whole].chunks_exact(HASH_BLOCK) {
            sha2::compress256(&mut self.state, std::slice::from_ref(GenericArray::from_slice(block)));
        }
        self.tail.extend_from_slice(&bytes[whole..]);
    }

    /// The state, when the bytes hashed so far are a whole number of 64-byte blocks.
    pub fn state(&self) -> Option<[u32; 8]> {
        self.tail.is_empty().then_some(self.state)
    }

    /// The digest of every byte hashed: the padding of FIPS 180-4 (a 1 bit, zeros, the length in bits).
    pub fn finalize(&self) -> [u8; 32] {
        let mut state = self.state;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % HASH_BLOCK != HASH_BLOCK - 8 {
            last.push(0);
        }
        last.extend_from_slice(&(self.length.wrapping_mul(8)).to_be_bytes());
        for block in last.chunks_exact(HASH_BLOCK) {
            sha2::compress256(&mut state, std::slice::from_ref(GenericArray::from_slice(block)));
        }
        let mut digest = [0u8; 32];
        for (out, word) in digest.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// The link of the block that follows `previous` (the previous block's id; empty for the first block) in a file
/// whose bytes come from `source`.
pub fn link(source: &str, previous: &[u8]) -> [u8; LINK_BYTES] {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"acs-recording-block\0")
        .chain_update(source.as_bytes())
        .chain_update(b"\0")
        .chain_update(previous)
        .finalize();
    let mut link = [0u8; LINK_BYTES];
    link.copy_from_slice(&digest[..LINK_BYTES]);
    link
}

/// What a staged block's id says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockId {
    /// A full block: its place among the file's blocks (0 first), the file's hash state after its last byte, and
    /// its link to the source and the block before it.
    Full {
        place: u32,
        state: [u32; 8],
        link: [u8; LINK_BYTES],
    },
    /// The file's last block, staged at commit: the SHA-256 of the whole file.
    Last { offset: u64, length: u32, sha256: [u8; 32] },
}

impl BlockId {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut id = Vec::with_capacity(ID_BYTES);
        match self {
            BlockId::Full { place, state, link } => {
                id.extend_from_slice(FULL);
                id.extend_from_slice(&place.to_be_bytes());
                for word in state {
                    id.extend_from_slice(&word.to_be_bytes());
                }
                id.extend_from_slice(link);
            }
            BlockId::Last { offset, length, sha256 } => {
                id.extend_from_slice(LAST);
                id.extend_from_slice(&offset.to_be_bytes());
                id.extend_from_slice(&length.to_be_bytes());
                id.extend_from_slice(sha256);
            }
        }
        id
    }

    /// Reads an id this module made; `None` for anything else (another uploader's block).
    pub fn parse(id: &[u8]) -> Option<Self> {
        if id.len() != ID_BYTES {
            return None;
        }
        if id.starts_with(FULL) {
            let place = u32::from_be_bytes(id[2..6].try_into().ok()?);
            let mut state = [0u32; 8];
            for (word, bytes) in state.iter_mut().zip(id[6..38].chunks_exact(4)) {
                *word = u32::from_be_bytes(bytes.try_into().ok()?);
            }
            let link = id[38..].try_into().ok()?;
            return Some(BlockId::Full { place, state, link });
        }
        if id.starts_with(LAST) {
            return Some(BlockId::Last {
                offset: u64::from_be_bytes(id[4..12].try_into().ok()?),
                length: u32::from_be_bytes(id[12..16].try_into().ok()?),
                sha256: id[16..].try_into().ok()?,
            });
        }
        None
    }
}

/// A chain of full blocks from the file's start, as listed by Blob Storage: what a resumed writer continues from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumable {
    /// The blocks' ids, in file order.
    pub ids: Vec<Vec<u8>>,
    /// Bytes they hold.
    pub bytes: u64,
    /// The hash state after them (the initial state when there are none).
    pub state: Option<[u32; 8]>,
}

/// The chain of full blocks of `block_bytes` each from the file's start, among `listed` (`(id, size)` as Blob
/// Storage lists the uncommitted blocks), for bytes from `source`: at each place, the one block whose link follows
/// the chain so far. The chain stops at the first place with no such block or with more than one (a fork: two
/// attempts that got different bytes), and a block whose listed size is not `block_bytes` is not trusted.
pub fn resumable(listed: &[(Vec<u8>, u64)], block_bytes: u32, source: &str) -> Resumable {
    let mut resumed = Resumable::default();
    loop {
        let expected = link(source, resumed.ids.last().map_or(&[][..], Vec::as_slice));
        let place = resumed.ids.len();
        let mut next = listed.iter().filter_map(|(raw, size)| match BlockId::parse(raw) {
            Some(BlockId::Full { place: at, state, link })
                if usize::try_from(at).is_ok_and(|at| at == place)
                    && link == expected
                    && *size == u64::from(block_bytes) =>
            {
                Some((raw, state))
            }
            _ => None,
        });
        let (Some((raw, state)), None) = (next.next(), next.next()) else {
            return resumed;
        };
        resumed.ids.push(raw.clone());
        resumed.bytes += u64::from(block_bytes);
        resumed.state = Some(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn the_running_hash_is_sha256_for_every_length_and_split() {
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4096 + 7] {
            let data = bytes(n);
            for split in [0, 1, n / 3, n / 2, n].into_iter().filter(|s| *s <= n) {
                let mut hasher = RunningSha256::default();
                hasher.update(&data[..split]);
                hasher.update(&data[split..]);
                assert_eq!(
                    hasher.finalize(),
                    <[u8; 32]>::from(Sha256::digest(&data)),
                    "{n} split at {split}"
                );
            }
        }
    }

    #[test]
    fn a_hash_resumed_from_its_state_at_a_block_boundary_ends_the_same() {
        let data = bytes(3 * 64 * 10 + 17);
        let mut first = RunningSha256::default();
        first.update(&data[..640]);
        let state = first.state().expect("640 bytes end on a boundary");
        let mut resumed = RunningSha256::resume(state, 640);
        resumed.update(&data[640..]);
        assert_eq!(resumed.finalize(), <[u8; 32]>::from(Sha256::digest(&data)));
        first.update(&data[640..641]);
        assert_eq!(first.state(), None, "no state in the middle of a block");
    }

    #[test]
    fn ids_round_trip_and_are_all_one_length() {
        let full = BlockId::Full {
            place: 7,
            state: [1, 2, 3, 4, 5, 6, 7, u32::MAX],
            link: [9; LINK_BYTES],
        };
        let last = BlockId::Last {
            offset: 12 << 20,
            length: 17,
            sha256: [9; 32],
        };
        for id in [full, last] {
            let raw = id.to_bytes();
            assert_eq!(raw.len(), ID_BYTES);
            assert_eq!(BlockId::parse(&raw), Some(id));
        }
        assert_eq!(BlockId::parse(b"a uuid-like id of another uploader"), None);
    }

    const SOURCE: &str = "https://us-storage.asm.skype.com/v1/objects/d0/content/video";

    /// The chain of `count` full blocks from `source`, with states `first`, `first + 1`, …
    fn chain(source: &str, count: u32, first: u32) -> Vec<Vec<u8>> {
        let mut ids: Vec<Vec<u8>> = Vec::new();
        for place in 0..count {
            let link = link(source, ids.last().map_or(&[][..], Vec::as_slice));
            ids.push(
                BlockId::Full {
                    place,
                    state: [first + place; 8],
                    link,
                }
                .to_bytes(),
            );
        }
        ids
    }

    fn listed(ids: &[Vec<u8>], size: u64) -> Vec<(Vec<u8>, u64)> {
        ids.iter().map(|id| (id.clone(), size)).collect()
    }

    #[test]
    fn only_a_gapless_chain_from_the_start_is_resumed() {
        let block = 128u32;
        let ids = chain(SOURCE, 4, 1);
        let mut blocks = listed(&[ids[1].clone(), ids[0].clone(), ids[3].clone()], 128); // place 2 is missing
        blocks.push((
            BlockId::Last {
                offset: 256,
                length: 5,
                sha256: [0; 32],
            }
            .to_bytes(),
            5,
        ));
        let resumed = resumable(&blocks, block, SOURCE);
        assert_eq!(resumed.ids, ids[..2]);
        assert_eq!(resumed.bytes, 256);
        assert_eq!(resumed.state, Some([2; 8]));
        assert_eq!(resumable(&[], block, SOURCE), Resumable::default());

        let mut wrong_size = listed(&ids, 128);
        wrong_size[1].1 = 100;
        assert_eq!(
            resumable(&wrong_size, block, SOURCE).ids,
            ids[..1],
            "a size that disagrees stops the chain"
        );
    }

    #[test]
    fn blocks_of_another_source_or_of_two_attempts_are_never_joined() {
        let block = 128u32;
        let ours = chain(SOURCE, 3, 1);
        let other = "https://us-storage.asm.skype.com/v1/objects/d0-again/content/video";
        let theirs = chain(other, 3, 100);
        assert_eq!(
            resumable(&listed(&theirs, 128), block, SOURCE),
            Resumable::default(),
            "another source's chain is not ours"
        );

        // Our first block, their second and third: their second links to their first, never to ours.
        let spliced = listed(&[ours[0].clone(), theirs[1].clone(), theirs[2].clone()], 128);
        assert_eq!(resumable(&spliced, block, SOURCE).ids, ours[..1]);

        // Two attempts at one source that got different bytes fork at the first block: nothing is trusted.
        let fork = chain(SOURCE, 2, 50);
        let forked = listed(&[ours.clone(), fork.clone()].concat(), 128);
        assert_eq!(resumable(&forked, block, SOURCE), Resumable::default());

        // A fork later in the chain keeps what comes before it.
        let mut late_fork = listed(&ours, 128);
        let odd_link = link(SOURCE, &ours[0]);
        late_fork.push((
            BlockId::Full {
                place: 1,
                state: [77; 8],
                link: odd_link,
            }
            .to_bytes(),
            128,
        ));
        assert_eq!(resumable(&late_fork, block, SOURCE).ids, ours[..1]);
    }

    #[test]
    fn blocks_of_earlier_versions_are_not_continued() {
        let mut old = b"acs1".to_vec();
        old.extend_from_slice(&0u64.to_be_bytes());
        old.extend_from_slice(&128u32.to_be_bytes());
        old.extend_from_slice(&[1u8; 32]);
        assert_eq!(BlockId::parse(&old), None);
        assert_eq!(resumable(&[(old, 128)], 128, SOURCE), Resumable::default());
    }
}
