//! Blosc1 frames read block by block: the header and the block-start table are parsed and
//! validated, then a run of blocks is re-framed as a small valid blosc1 frame that the
//! blosc codec decodes. Layout (c-blosc 1.x `blosc.c`): a 16-byte header (version,
//! compressor version, flags, typesize, then little-endian `i32` nbytes, blocksize,
//! cbytes), then, unless the frame is MEMCPYED, `nblocks` little-endian `i32` offsets of
//! each block's compressed bytes (blocks compressed by several threads may be stored out
//! of order), then the blocks. A MEMCPYED frame holds the raw bytes right after the header.

use std::borrow::Cow;
use std::ops::Range;

/// Length of a blosc1 header.
const HEADER_LEN: usize = 16;
/// The only frame format version c-blosc 1.x decodes (`BLOSC_VERSION_FORMAT`).
const VERSION_FORMAT: u8 = 2;
/// Header flag: the data is stored uncompressed after the header.
const MEMCPYED: u8 = 0x02;
/// Header flag c-blosc 1.x refuses ("compressor flags from the future").
const FUTURE_FLAG: u8 = 0x08;
/// Header flag: blocks are not split per byte of the type.
const DONT_SPLIT: u8 = 0x10;

/// Reads a byte range of the stored frame.
pub(crate) type ReadRange<'r, 'b> = dyn FnMut(Range<usize>) -> Result<Cow<'b, [u8]>, String> + 'r;

/// Decodes a complete blosc1 frame to the given number of bytes.
pub(crate) type DecodeFrame<'d> = dyn FnMut(&[u8], usize) -> Result<Vec<u8>, String> + 'd;

/// A parsed, validated blosc1 frame: what is needed to decode any run of its blocks.
#[derive(Debug)]
pub(crate) struct Frame {
    header: [u8; HEADER_LEN],
    nbytes: usize,
    blocksize: usize,
    memcpyed: bool,
    /// Compressed byte range of each block, in block (decoded) order; empty if MEMCPYED.
    blocks: Vec<Range<usize>>,
}

fn le_i32(b: &[u8], at: usize, what: &str) -> Result<usize, String> {
    let v = b
        .get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(i32::from_le_bytes)
        .ok_or_else(|| format!("blosc frame too short to hold {what}"))?;
    usize::try_from(v).map_err(|_| format!("blosc {what} is negative ({v})"))
}

fn read_exact<'b>(
    read: &mut ReadRange<'_, 'b>,
    range: Range<usize>,
    what: &str,
) -> Result<Cow<'b, [u8]>, String> {
    let want = range.len();
    let b = read(range.clone())?;
    if b.len() != want {
        return Err(format!(
            "reading {what} (bytes {range:?}) gave {} bytes",
            b.len()
        ));
    }
    Ok(b)
}

impl Frame {
    /// Reads and validates the header and block-start table of a frame stored in `size`
    /// bytes that must decode to `expected` bytes.
    pub(crate) fn open(
        size: usize,
        expected: usize,
        read: &mut ReadRange<'_, '_>,
    ) -> Result<Frame, String> {
        if size < HEADER_LEN {
            return Err(format!(
                "the stored chunk is {size} bytes, shorter than a blosc header ({HEADER_LEN} bytes)"
            ));
        }
        let h = read_exact(read, 0..HEADER_LEN, "the blosc header")?;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&h);
        let (version, flags, typesize) = (header[0], header[2], header[3]);
        if version != VERSION_FORMAT {
            return Err(format!(
                "blosc header version {version}, expected {VERSION_FORMAT} (blosc1 format)"
            ));
        }
        if flags & FUTURE_FLAG != 0 {
            return Err(format!(
                "blosc header flags {flags:#04x} set bit 0x08, unknown to blosc1"
            ));
        }
        if typesize == 0 {
            return Err("blosc header typesize is 0".into());
        }
        let nbytes = le_i32(&header, 4, "nbytes")?;
        let blocksize = le_i32(&header, 8, "blocksize")?;
        let cbytes = le_i32(&header, 12, "cbytes")?;
        if nbytes != expected {
            return Err(format!(
                "the blosc header says {nbytes} decoded bytes, the chunk holds {expected}"
            ));
        }
        if cbytes != size {
            return Err(format!(
                "the blosc header says {cbytes} compressed bytes, the stored chunk has {size}"
            ));
        }
        if blocksize == 0 || blocksize > nbytes {
            return Err(format!(
                "blosc blocksize {blocksize} is not in 1..={nbytes} (nbytes)"
            ));
        }
        let memcpyed = flags & MEMCPYED != 0;
        if memcpyed {
            if cbytes != nbytes + HEADER_LEN {
                return Err(format!(
                    "uncompressed (MEMCPYED) blosc frame of {cbytes} bytes for {nbytes} data bytes"
                ));
            }
            return Ok(Frame {
                header,
                nbytes,
                blocksize,
                memcpyed,
                blocks: Vec::new(),
            });
        }
        let nblocks = nbytes.div_ceil(blocksize);
        let table_end = nblocks
            .checked_mul(4)
            .and_then(|t| t.checked_add(HEADER_LEN))
            .filter(|&t| t <= cbytes)
            .ok_or_else(|| {
                format!("{nblocks} blosc block starts do not fit in a frame of {cbytes} bytes")
            })?;
        let table = read_exact(read, HEADER_LEN..table_end, "the blosc block starts")?;
        let mut starts = Vec::with_capacity(nblocks);
        for i in 0..nblocks {
            let s = le_i32(&table, 4 * i, "block start")?;
            if s < table_end || s >= cbytes {
                return Err(format!(
                    "blosc block {i} starts at byte {s}, outside the data bytes {table_end}..{cbytes}"
                ));
            }
            starts.push(s);
        }
        // a block ends where the next one in storage order starts
        let mut order: Vec<usize> = (0..nblocks).collect();
        order.sort_unstable_by_key(|&i| starts[i]);
        let mut blocks = vec![0..0; nblocks];
        for (k, &i) in order.iter().enumerate() {
            let end = order.get(k + 1).map_or(cbytes, |&j| starts[j]);
            // each split of a block starts with its 4-byte compressed length
            if end < starts[i] + 4 {
                return Err(format!(
                    "blosc block {i} at byte {} is {} bytes long, too short to be a block",
                    starts[i],
                    end - starts[i]
                ));
            }
            blocks[i] = starts[i]..end;
        }
        Ok(Frame {
            header,
            nbytes,
            blocksize,
            memcpyed,
            blocks,
        })
    }

    /// Bytes per block (the last block may be shorter).
    pub(crate) fn blocksize(&self) -> usize {
        self.blocksize
    }

    /// Decoded bytes of blocks `first..end`.
    fn decoded_range(&self, blocks: &Range<usize>) -> Range<usize> {
        let lo = (blocks.start * self.blocksize).min(self.nbytes);
        let hi = (blocks.end * self.blocksize).min(self.nbytes);
        lo..hi
    }

    /// Decodes blocks `blocks` (in decoded order), reading only their compressed bytes
    /// (one read when they are stored contiguously, as single-threaded blosc writes them).
    /// `decode` decodes a complete blosc1 frame to the given number of bytes.
    pub(crate) fn decode_blocks(
        &self,
        blocks: Range<usize>,
        read: &mut ReadRange<'_, '_>,
        decode: &mut DecodeFrame<'_>,
    ) -> Result<Vec<u8>, String> {
        let out = self.decoded_range(&blocks);
        let n = out.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.memcpyed {
            let r = HEADER_LEN + out.start..HEADER_LEN + out.end;
            return Ok(read_exact(read, r, "uncompressed blosc data")?.into_owned());
        }
        let run = self
            .blocks
            .get(blocks.clone())
            .ok_or_else(|| format!("blosc blocks {blocks:?} out of range"))?;
        let k = run.len();
        let prefix = HEADER_LEN + 4 * k;
        let body: usize = run.iter().map(Range::len).sum();
        let contiguous = run.windows(2).all(|w| w[0].end == w[1].start);
        let mut frame = match run.first().map(|r| r.start.checked_sub(prefix)) {
            // read the bytes before the first block too, and overwrite them with the new
            // header and table: the frame is then built without copying the blocks
            Some(Some(start)) if contiguous => {
                let end = start + prefix + body;
                read_exact(read, start..end, "blosc blocks")?.into_owned()
            }
            _ => {
                let mut f = vec![0u8; prefix];
                f.reserve(body);
                // one read per run of blocks adjacent in storage
                let mut sorted: Vec<&Range<usize>> = run.iter().collect();
                sorted.sort_unstable_by_key(|r| r.start);
                let mut pieces: Vec<(Range<usize>, Cow<'_, [u8]>)> = Vec::new();
                let mut i = 0;
                while i < sorted.len() {
                    let (lo, mut hi) = (sorted[i].start, sorted[i].end);
                    i += 1;
                    while i < sorted.len() && sorted[i].start == hi {
                        hi = sorted[i].end;
                        i += 1;
                    }
                    pieces.push((lo..hi, read_exact(read, lo..hi, "blosc blocks")?));
                }
                for r in run {
                    let (pr, bytes) = pieces
                        .iter()
                        .find(|(p, _)| p.start <= r.start && r.end <= p.end)
                        .ok_or_else(|| format!("blosc block bytes {r:?} not read"))?;
                    f.extend_from_slice(&bytes[r.start - pr.start..r.end - pr.start]);
                }
                f
            }
        };
        let to_i32 = |v: usize| {
            i32::try_from(v)
                .map(i32::to_le_bytes)
                .map_err(|_| format!("blosc frame size {v} too large"))
        };
        frame[..HEADER_LEN].copy_from_slice(&self.header);
        frame[4..8].copy_from_slice(&to_i32(n)?);
        if n < self.blocksize {
            // only the short last block: it becomes the whole (single) block of the frame.
            // blosc never splits a short last block, so say so, or the decoder would
            // expect it split now that it is a full block
            frame[8..12].copy_from_slice(&to_i32(n)?);
            frame[2] |= DONT_SPLIT;
        }
        let total = frame.len();
        frame[12..16].copy_from_slice(&to_i32(total)?);
        let mut at = prefix;
        for (j, r) in run.iter().enumerate() {
            frame[HEADER_LEN + 4 * j..HEADER_LEN + 4 * j + 4].copy_from_slice(&to_i32(at)?);
            at += r.len();
        }
        let bytes = decode(&frame, n)?;
        if bytes.len() != n {
            return Err(format!(
                "blosc blocks {blocks:?} decoded to {} bytes, expected {n}",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}
