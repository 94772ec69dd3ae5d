//! A chunk's files, generated: the content from its document id and the offset asked for, so that a chunk of any
//! size costs no memory; the metadata as ACS publishes it, the same on every run.

use std::io::{self, Read};
use std::sync::OnceLock;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::FRAME;
use crate::support::rng::Rng;

/// The ACS resource's immutable id, as recording metadata names it.
pub const RESOURCE_ID: &str = "5f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

/// A chunk's content: 64 KiB blocks, each a window of one random pad shared by every chunk, the windows placed by
/// the SplitMix64 stream seeded from the document id. Any SplitMix64 output can be computed without the ones before
/// it, so any piece of the content is produced alone, at the speed of a copy even in a debug build.
#[derive(Debug, Clone, Copy)]
pub(super) struct Generator {
    seed: u64,
}

/// The pad's length: its windows can start at this many places, so two blocks of a chunk are almost never alike.
const PAD_LEN: usize = 4 * 1024 * 1024;
/// The content is cut from the pad in blocks of this size.
const BLOCK: usize = 64 * 1024;

/// The pad, made once per process: [`PAD_LEN`] bytes of SplitMix64 output and a block more, so that no window wraps.
fn pad() -> &'static [u8] {
    static PAD: OnceLock<Vec<u8>> = OnceLock::new();
    PAD.get_or_init(|| {
        let mut rng = Rng::new(0xAC5_C0DE);
        let mut pad = Vec::with_capacity(PAD_LEN + BLOCK);
        while pad.len() < PAD_LEN + BLOCK {
            pad.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        pad
    })
}

impl Generator {
    pub(super) fn new(document_id: &str) -> Self {
        let digest = Sha256::digest(document_id.as_bytes());
        let seed = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        Self { seed }
    }

    /// Where block `index` starts in the pad: the stream's `index`th output.
    fn window(&self, index: u64) -> usize {
        let output = Rng::new(self.seed.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))).next_u64();
        (output % PAD_LEN as u64) as usize
    }

    /// Fills `buf` with the content from `offset` on.
    pub(super) fn fill(&self, offset: u64, buf: &mut [u8]) {
        let pad = pad();
        let mut offset = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let within = (offset % BLOCK as u64) as usize;
            let n = (BLOCK - within).min(rest.len());
            let start = self.window(offset / BLOCK as u64) + within;
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            head.copy_from_slice(&pad[start..start + n]);
            rest = tail;
            offset += n as u64;
        }
    }
}

/// A chunk's content as a reader, generated as it is read: what the server sends for that chunk, to compare with.
#[derive(Debug, Clone)]
pub struct ContentReader {
    generator: Generator,
    position: u64,
    end: u64,
}

impl ContentReader {
    /// The content of a chunk of `len` bytes.
    pub fn new(document_id: &str, len: u64) -> Self {
        Self {
            generator: Generator::new(document_id),
            position: 0,
            end: len,
        }
    }
}

impl Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.end - self.position).min(buf.len() as u64) as usize;
        self.generator.fill(self.position, &mut buf[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

/// The lowercase hex SHA-256 of everything `reader` yields.
pub fn sha256_hex(mut reader: impl Read) -> String {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; FRAME];
    loop {
        let n = reader.read(&mut buffer).expect("read");
        if n == 0 {
            return format!("{:x}", hasher.finalize());
        }
        hasher.update(&buffer[..n]);
    }
}

/// A chunk's metadata as ACS publishes it (the `acsmetadata` file of a mixed audio-video MP4 recording), with ids
/// derived from the document id so that it is the same on every run.
pub fn metadata_json(document_id: &str) -> Vec<u8> {
    let digest = Sha256::digest(document_id.as_bytes());
    let participant = |n: u8| {
        format!(
            "8:acs:{RESOURCE_ID}_{}",
            guid(&Sha256::digest([&digest[..], &[n]].concat()))
        )
    };
    let metadata = json!({
        "resourceId": RESOURCE_ID,
        "callId": guid(&digest),
        "chunkDocumentId": document_id,
        "chunkIndex": 0,
        "chunkStartTime": "2026-11-27T15:20:23.6089755Z",
        "chunkDuration": 6620.0,
        "pauseResumeIntervals": [],
        "recordingInfo": {
            "contentType": "mixed",
            "channelType": "audioVideo",
            "format": "mp4",
            "audioConfiguration": { "sampleRate": 16000, "bitRate": 32000, "channels": 1 },
            "videoConfiguration": {
                "longerSideLength": 1920,
                "shorterSideLength": 1080,
                "frameRate": 8,
                "bitRate": 1_000_000
            }
        },
        "participants": [
            { "participantId": participant(1) },
            { "participantId": participant(2) }
        ]
    });
    serde_json::to_vec_pretty(&metadata).expect("JSON")
}

/// A GUID's text from the first 16 of `bytes`.
fn guid(bytes: &[u8]) -> String {
    let hex: String = bytes[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
