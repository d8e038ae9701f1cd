//! Frames on a TCP stream: a preamble with the protocol version, then length-delimited
//! frames each holding one serde-encoded message and optional raw bytes (a chunk's body).
//! See `docs/protocol.md`.

use crate::{DistError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The protocol version; peers of another version are refused at the handshake.
pub const PROTOCOL_VERSION: u32 = 7;

/// The first four bytes every peer sends.
pub const MAGIC: [u8; 4] = *b"GFLW";

/// Largest frame accepted (a message plus a payload): 2 GiB. A length above this is a
/// corrupt or hostile stream, refused before allocating.
pub const MAX_FRAME: u32 = 1 << 31;

/// Largest serde-encoded message part of a frame (graphs of millions of tasks fit).
pub const MAX_MESSAGE: u32 = 1 << 30;

/// Sends the preamble: magic and protocol version.
pub async fn write_preamble<W: AsyncWriteExt + Unpin>(w: &mut W, peer: &str) -> Result<()> {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&MAGIC);
    p[4..].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    w.write_all(&p)
        .await
        .map_err(|e| DistError::io(format!("{peer}: sending the handshake"), e))?;
    w.flush()
        .await
        .map_err(|e| DistError::io(format!("{peer}: sending the handshake"), e))
}

/// Reads and checks the peer's preamble.
pub async fn read_preamble<R: AsyncReadExt + Unpin>(r: &mut R, peer: &str) -> Result<()> {
    let mut p = [0u8; 8];
    let mut got = 0;
    while got < p.len() {
        let n = r
            .read(&mut p[got..])
            .await
            .map_err(|e| DistError::io(format!("{peer}: reading the handshake"), e))?;
        if n == 0 {
            return Err(DistError::Closed {
                peer: peer.to_owned(),
                during: "during the handshake".into(),
            });
        }
        got += n;
        // Fail early on a wrong first byte instead of waiting for eight.
        if !MAGIC.starts_with(&p[..got.min(4)]) {
            return Err(DistError::BadMagic {
                peer: peer.to_owned(),
                got: p[..got].to_vec(),
            });
        }
    }
    let theirs = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
    if theirs != PROTOCOL_VERSION {
        return Err(DistError::VersionMismatch {
            peer: peer.to_owned(),
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    Ok(())
}

/// Encodes a message with postcard.
pub fn encode<M: Serialize>(msg: &M) -> Result<Vec<u8>> {
    postcard::to_allocvec(msg).map_err(|source| DistError::Codec {
        what: "encoding a message".into(),
        source,
    })
}

/// Writes one frame: `u32` length of the rest, `u32` length of the message, the message,
/// then the payload bytes as they are (no copy into a frame buffer).
pub async fn write_frame<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    peer: &str,
    message: &[u8],
    payload: &[u8],
) -> Result<()> {
    let total = 4u64 + message.len() as u64 + payload.len() as u64;
    if total > u64::from(MAX_FRAME) || message.len() as u64 > u64::from(MAX_MESSAGE) {
        return Err(DistError::protocol(
            peer,
            format!("frame of {total} bytes exceeds the limit of {MAX_FRAME} bytes"),
        ));
    }
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&(total as u32).to_le_bytes());
    head[4..].copy_from_slice(&(message.len() as u32).to_le_bytes());
    let io = |e| DistError::io(format!("{peer}: sending"), e);
    w.write_all(&head).await.map_err(io)?;
    w.write_all(message).await.map_err(io)?;
    if !payload.is_empty() {
        w.write_all(payload).await.map_err(io)?;
    }
    Ok(())
}

/// A received frame: the message bytes and the payload, each in its own buffer.
pub struct Frame {
    /// The serde-encoded message.
    pub message: Vec<u8>,
    /// The raw payload (empty for control messages).
    pub payload: Vec<u8>,
}

impl Frame {
    /// Decodes the message part.
    pub fn decode<M: DeserializeOwned>(&self, peer: &str) -> Result<M> {
        postcard::from_bytes(&self.message)
            .map_err(|e| DistError::protocol(peer, format!("undecodable message ({e})")))
    }
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, peer: &str) -> Result<Option<Frame>> {
    read_frame_limited(r, peer, MAX_FRAME).await
}

/// Reads one frame of at most `limit` bytes (the handshake's frames are small).
pub async fn read_frame_limited<R: AsyncReadExt + Unpin>(
    r: &mut R,
    peer: &str,
    limit: u32,
) -> Result<Option<Frame>> {
    let limit = limit.min(MAX_FRAME);
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        let n = r
            .read(&mut head[got..])
            .await
            .map_err(|e| DistError::io(format!("{peer}: receiving"), e))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(DistError::Closed {
                peer: peer.to_owned(),
                during: "in the middle of a frame header".into(),
            });
        }
        got += n;
    }
    let total = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let mlen = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(4..=limit).contains(&total) || mlen > total - 4 || mlen > MAX_MESSAGE {
        return Err(DistError::protocol(
            peer,
            format!("bad frame header (length {total}, message length {mlen}; limit {limit})"),
        ));
    }
    // Buffers grow as bytes arrive (up to 64 MiB reserved at once), so a corrupt length
    // costs nothing before the bytes are really there.
    let plen = (total - 4 - mlen) as usize;
    let mut message = Vec::with_capacity((mlen as usize).min(64 << 20));
    let mut payload = Vec::with_capacity(plen.min(64 << 20));
    let short = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            DistError::Closed {
                peer: peer.to_owned(),
                during: "in the middle of a frame".into(),
            }
        } else {
            DistError::io(format!("{peer}: receiving"), e)
        }
    };
    read_n(r, &mut message, mlen as usize)
        .await
        .map_err(short)?;
    read_n(r, &mut payload, plen).await.map_err(short)?;
    Ok(Some(Frame { message, payload }))
}

/// Appends exactly `n` bytes from `r` to `buf`.
async fn read_n<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    n: usize,
) -> std::io::Result<()> {
    let got = (&mut *r).take(n as u64).read_to_end(buf).await?;
    if got < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Encodes a task's expression as its payload: MessagePack, which (unlike the control
/// messages' postcard) describes itself, so operations may hold free-form values (a
/// kernel's JSON parameters). The scheduler never decodes payloads.
pub fn encode_task<T: Serialize>(expr: &T) -> std::result::Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(expr).map_err(|e| e.to_string())
}

/// Decodes a payload written by [`encode_task`].
pub fn decode_task<T: DeserializeOwned>(payload: &[u8]) -> std::result::Result<T, String> {
    rmp_serde::from_slice(payload).map_err(|e| e.to_string())
}
