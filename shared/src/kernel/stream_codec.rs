//! A cap's canonical encoding in pieces: read any byte range of it without
//! building the whole encoding ([`EncodingLayout`]), parse a Data encoding
//! as it arrives ([`DataParser`]), and check an encoding against its hash
//! while it streams past ([`EncodingVerifier`], keeping 36 bytes per Data
//! page, or the encoding itself only for the small kinds and CNodes).
//!
//! Layout of a Data encoding (see `cap/codec.rs`): `tag ‖ len u64 ‖ count
//! u32` (13 bytes), then `count` records `index u32 ‖ page [4096]` of the
//! non-zero pages in ascending order.

use alloc::vec::Vec;

use crate::cap::{
    Cap, CapError, CapKind, Data, MAX_CNODE_SLOTS, MAX_DATA_LEN, MAX_DATA_PAGES,
    MAX_ENDPOINT_NAME_LEN, MAX_ENDPOINTS, MAX_IMAGE_SECTION_LEN, PAGE_SIZE, Page,
};
use crate::hash::{CapHash, Domain, hash_in, hash_parts_in, hasher_in};

/// Bytes before the first page record of a Data encoding.
pub const DATA_HEADER: usize = 13;
/// Bytes of one page record (index + page).
pub const DATA_RECORD: usize = 4 + PAGE_SIZE;

/// The longest encoding a cap of `kind` can have (a bound checked before
/// an upload of that kind starts).
pub fn max_encoded_len(kind: CapKind) -> u64 {
    match kind {
        CapKind::Data => DATA_HEADER as u64 + u64::from(MAX_DATA_PAGES) * DATA_RECORD as u64,
        CapKind::CNode => 5 + u64::from(MAX_CNODE_SLOTS) * 36,
        CapKind::Image => {
            1 + 3 * (4 + u64::from(MAX_IMAGE_SECTION_LEN))
                + 12
                + u64::from(MAX_ENDPOINTS) * (4 + 4 + u64::from(MAX_ENDPOINT_NAME_LEN))
        }
        CapKind::Instance => 1 + 4 * 32,
        CapKind::Type => 1 + 32,
    }
}

/// Where the bytes of one cap's encoding come from, computed once per
/// cap: for Data the list of non-zero pages (4 bytes per page), for an
/// Image its small header and trailer (the sections are read in place),
/// for the other kinds the (small) encoding itself.
pub struct EncodingLayout {
    total: u64,
    form: Form,
}

enum Form {
    Data { len: u64, nonzero: Vec<u32> },
    Image { lens: [u32; 3], trailer: Vec<u8> },
    Bytes(Vec<u8>),
}

/// Copies the part of `piece` (which starts at `at` in the encoding)
/// that overlaps `offset..end` into `out`; the new `at`.
fn copy_piece(piece: &[u8], at: u64, offset: u64, end: u64, out: &mut Vec<u8>) -> u64 {
    let piece_end = at + piece.len() as u64;
    if piece_end > offset && at < end {
        let from = offset.saturating_sub(at) as usize;
        let to = (end.min(piece_end) - at) as usize;
        out.extend_from_slice(&piece[from..to]);
    }
    piece_end
}

impl EncodingLayout {
    /// The layout of `cap`'s encoding.
    pub fn new(cap: &Cap) -> Result<Self, CapError> {
        match cap {
            Cap::Data(data) => {
                let nonzero: Vec<u32> = data
                    .pages()
                    .filter(|(_, page)| page.iter().any(|&b| b != 0))
                    .map(|(i, _)| i)
                    .collect();
                let total = (DATA_HEADER + nonzero.len() * DATA_RECORD) as u64;
                Ok(EncodingLayout {
                    total,
                    form: Form::Data {
                        len: data.len(),
                        nonzero,
                    },
                })
            }
            Cap::Image(image) => {
                image.check_limits()?;
                let mut trailer = Vec::new();
                trailer.extend_from_slice(&image.heap_pages.to_le_bytes());
                trailer.extend_from_slice(&image.stack_size.to_le_bytes());
                trailer.extend_from_slice(&(image.endpoints.len() as u32).to_le_bytes());
                for pc in &image.endpoints {
                    trailer.extend_from_slice(&pc.to_le_bytes());
                }
                for name in &image.endpoint_names {
                    trailer.extend_from_slice(&(name.len() as u32).to_le_bytes());
                    trailer.extend_from_slice(name.as_bytes());
                }
                let lens = [
                    image.code.len() as u32,
                    image.ro_data.len() as u32,
                    image.rw_data.len() as u32,
                ];
                let total =
                    1 + lens.iter().map(|&l| 4 + u64::from(l)).sum::<u64>() + trailer.len() as u64;
                Ok(EncodingLayout {
                    total,
                    form: Form::Image { lens, trailer },
                })
            }
            _ => {
                let bytes = cap.encode()?;
                Ok(EncodingLayout {
                    total: bytes.len() as u64,
                    form: Form::Bytes(bytes),
                })
            }
        }
    }

    /// Length of the whole encoding.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Appends bytes `offset..offset + max_len` of the encoding (cut at its
    /// end) to `out`. `cap` must be the cap the layout was made from.
    pub fn read(&self, cap: &Cap, offset: u64, max_len: usize, out: &mut Vec<u8>) {
        let end = offset.saturating_add(max_len as u64).min(self.total);
        if offset >= end {
            return;
        }
        out.reserve((end - offset) as usize);
        match (&self.form, cap) {
            (Form::Data { len, nonzero }, Cap::Data(data)) => {
                read_data(data, *len, nonzero, offset, end, out)
            }
            (Form::Image { lens, trailer }, Cap::Image(image)) => {
                let mut at = copy_piece(&[CapKind::Image.tag()], 0, offset, end, out);
                for (len, section) in lens
                    .iter()
                    .zip([&image.code, &image.ro_data, &image.rw_data])
                {
                    at = copy_piece(&len.to_le_bytes(), at, offset, end, out);
                    at = copy_piece(section, at, offset, end, out);
                }
                copy_piece(trailer, at, offset, end, out);
            }
            (Form::Bytes(bytes), _) => {
                copy_piece(bytes, 0, offset, end, out);
            }
            // A layout read with another cap: nothing (callers keep the
            // pair together, so this does not happen).
            _ => {}
        }
    }
}

fn read_data(data: &Data, len: u64, nonzero: &[u32], offset: u64, end: u64, out: &mut Vec<u8>) {
    let mut header = [0u8; DATA_HEADER];
    header[0] = CapKind::Data.tag();
    header[1..9].copy_from_slice(&len.to_le_bytes());
    header[9..13].copy_from_slice(&(nonzero.len() as u32).to_le_bytes());
    copy_piece(&header, 0, offset, end, out);
    let first = offset.saturating_sub(DATA_HEADER as u64) / DATA_RECORD as u64;
    for (record, &index) in nonzero.iter().enumerate().skip(first as usize) {
        let at = (DATA_HEADER + record * DATA_RECORD) as u64;
        if at >= end {
            break;
        }
        let at = copy_piece(&index.to_le_bytes(), at, offset, end, out);
        let page = data.page(index).unwrap_or(&[0u8; PAGE_SIZE]);
        copy_piece(page, at, offset, end, out);
    }
}

/// Receives what a [`DataParser`] reads.
pub trait PageSink {
    /// The Data's length (once, first).
    fn begin(&mut self, len: u64) -> Result<(), CapError>;
    /// One non-zero page, in ascending index order.
    fn page(&mut self, index: u32, page: &Page) -> Result<(), CapError>;
}

/// Parses a Data encoding fed in arbitrary pieces, with the checks of the
/// strict decoder (ascending pages below the length, no all-zero page, no
/// bytes past the length, the record count matching the total), holding
/// at most one record.
pub struct DataParser {
    total: u64,
    seen: u64,
    len: u64,
    previous: Option<u32>,
    buffer: Vec<u8>,
}

impl DataParser {
    /// A parser for an encoding of `total` bytes (kind tag included).
    pub fn new(total: u64) -> Result<Self, CapError> {
        if total < DATA_HEADER as u64
            || !(total - DATA_HEADER as u64).is_multiple_of(DATA_RECORD as u64)
        {
            return Err(CapError::NonCanonical(
                "Data encoding length is not header + whole page records",
            ));
        }
        if total > max_encoded_len(CapKind::Data) {
            return Err(CapError::LimitExceeded {
                what: "Data encoding length",
                value: total,
                max: max_encoded_len(CapKind::Data),
            });
        }
        Ok(DataParser {
            total,
            seen: 0,
            len: 0,
            previous: None,
            buffer: Vec::new(),
        })
    }

    /// Bytes fed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Feeds the next bytes of the encoding.
    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut dyn PageSink) -> Result<(), CapError> {
        if bytes.len() as u64 > self.total - self.seen {
            return Err(CapError::TrailingBytes(bytes.len()));
        }
        while !bytes.is_empty() {
            let want = if self.seen < DATA_HEADER as u64 {
                DATA_HEADER
            } else {
                DATA_RECORD
            };
            let take = (want - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == want {
                if want == DATA_HEADER {
                    self.header(sink)?;
                } else {
                    self.record(sink)?;
                }
                self.seen += want as u64;
                self.buffer.clear();
            }
        }
        Ok(())
    }

    fn header(&mut self, sink: &mut dyn PageSink) -> Result<(), CapError> {
        let b = &self.buffer;
        if b[0] != CapKind::Data.tag() {
            return Err(CapError::UnknownTag(b[0]));
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[1..9]);
        let len = u64::from_le_bytes(word);
        if len > MAX_DATA_LEN {
            return Err(CapError::LimitExceeded {
                what: "Data length",
                value: len,
                max: MAX_DATA_LEN,
            });
        }
        let count = u32::from_le_bytes([b[9], b[10], b[11], b[12]]);
        if DATA_HEADER as u64 + u64::from(count) * DATA_RECORD as u64 != self.total {
            return Err(CapError::NonCanonical(
                "Data page count does not match the encoding length",
            ));
        }
        self.len = len;
        sink.begin(len)
    }

    fn record(&mut self, sink: &mut dyn PageSink) -> Result<(), CapError> {
        let index = u32::from_le_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]);
        if self.previous.is_some_and(|p| index <= p) {
            return Err(CapError::NonCanonical("Data pages not strictly ascending"));
        }
        self.previous = Some(index);
        let start = u64::from(index) * PAGE_SIZE as u64;
        if start >= self.len {
            return Err(CapError::NonCanonical("Data page past the length"));
        }
        let page: &Page = self.buffer[4..]
            .try_into()
            .map_err(|_| CapError::NonCanonical("Data page length"))?;
        if page.iter().all(|&b| b == 0) {
            return Err(CapError::NonCanonical("all-zero Data page present"));
        }
        let in_range = (self.len - start).min(PAGE_SIZE as u64) as usize;
        if page[in_range..].iter().any(|&b| b != 0) {
            return Err(CapError::NonCanonical(
                "non-zero bytes past the Data length",
            ));
        }
        sink.page(index, page)
    }
}

/// The Data Merkle root over sparse leaves (ascending `(index, page
/// digest)`; absent leaves are zero pages) for `page_count` pages: the
/// definition in `cap/merkle.rs`, computed without the page tree.
pub fn data_root(page_count: u32, leaves: &[(u32, [u8; 32])]) -> [u8; 32] {
    let depth = if page_count <= 1 {
        0
    } else {
        u32::BITS - (page_count - 1).leading_zeros()
    } as usize;
    let mut zeros = Vec::with_capacity(depth + 1);
    zeros.push(hash_in(Domain::DataPage, &[0u8; PAGE_SIZE]));
    for level in 1..=depth {
        let below = zeros[level - 1];
        zeros.push(hash_parts_in(Domain::DataNode, &[&below, &below]));
    }
    subtree_root(&zeros, depth, 0, leaves)
}

fn subtree_root(
    zeros: &[[u8; 32]],
    height: usize,
    start: u64,
    leaves: &[(u32, [u8; 32])],
) -> [u8; 32] {
    match leaves {
        [] => zeros[height],
        [(_, digest)] if height == 0 => *digest,
        _ if height == 0 => zeros[0],
        _ => {
            let mid = start + (1u64 << (height - 1));
            let split = leaves.partition_point(|(i, _)| u64::from(*i) < mid);
            let left = subtree_root(zeros, height - 1, start, &leaves[..split]);
            let right = subtree_root(zeros, height - 1, mid, &leaves[split..]);
            hash_parts_in(Domain::DataNode, &[&left, &right])
        }
    }
}

/// Keeps page digests only (36 bytes per page).
#[derive(Default)]
struct PageDigests {
    len: u64,
    leaves: Vec<(u32, [u8; 32])>,
}

impl PageSink for PageDigests {
    fn begin(&mut self, len: u64) -> Result<(), CapError> {
        self.len = len;
        Ok(())
    }

    fn page(&mut self, index: u32, page: &Page) -> Result<(), CapError> {
        self.leaves.push((index, hash_in(Domain::DataPage, page)));
        Ok(())
    }
}

enum Check {
    Data(DataParser, PageDigests),
    Image(alloc::boxed::Box<blake3::Hasher>),
    Bytes(Vec<u8>),
}

/// Checks an encoding fed in order against the hash it must have, without
/// keeping it: Data by page digests, Image by an incremental hash, CNode
/// (36 bytes per slot, i.e. its leaf digests) and the small kinds by
/// decoding at the end.
pub struct EncodingVerifier {
    total: u64,
    seen: u64,
    check: Check,
}

impl EncodingVerifier {
    /// A verifier for an encoding of `total` bytes of a cap of `kind`.
    pub fn new(kind: CapKind, total: u64) -> Result<Self, CapError> {
        if total > max_encoded_len(kind) {
            return Err(CapError::LimitExceeded {
                what: "encoding length",
                value: total,
                max: max_encoded_len(kind),
            });
        }
        let check = match kind {
            CapKind::Data => Check::Data(DataParser::new(total)?, PageDigests::default()),
            CapKind::Image => Check::Image(alloc::boxed::Box::new(hasher_in(Domain::CapImage))),
            _ => Check::Bytes(Vec::new()),
        };
        Ok(EncodingVerifier {
            total,
            seen: 0,
            check,
        })
    }

    /// Feeds the next bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), CapError> {
        if bytes.len() as u64 > self.total - self.seen {
            return Err(CapError::TrailingBytes(bytes.len()));
        }
        match &mut self.check {
            Check::Data(parser, digests) => parser.feed(bytes, digests)?,
            Check::Image(hasher) => {
                hasher.update(bytes);
            }
            Check::Bytes(buffer) => buffer.extend_from_slice(bytes),
        }
        self.seen += bytes.len() as u64;
        Ok(())
    }

    /// The hash of the whole encoding (every byte must have been fed).
    pub fn finish(self) -> Result<CapHash, CapError> {
        if self.seen != self.total {
            return Err(CapError::Truncated("streamed encoding"));
        }
        match self.check {
            Check::Data(_, digests) => {
                let pages = digests.len.div_ceil(PAGE_SIZE as u64) as u32;
                let root = data_root(pages, &digests.leaves);
                Ok(CapHash(hash_parts_in(
                    Domain::CapData,
                    &[&digests.len.to_le_bytes(), &root],
                )))
            }
            Check::Image(hasher) => Ok(CapHash(*hasher.finalize().as_bytes())),
            Check::Bytes(bytes) => Cap::decode(&bytes)?.hash(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::{CNode, CapHashOrRef, Image};

    fn sparse_data() -> Data {
        // 37 pages, some absent, one stored but zero, a partial last page.
        let mut data = Data::new(36 * PAGE_SIZE as u64 + 100).unwrap();
        for index in [0u32, 3, 4, 17, 31, 36] {
            data.write(u64::from(index) * PAGE_SIZE as u64, &[index as u8 + 1; 50])
                .unwrap();
        }
        data.write(5 * PAGE_SIZE as u64, &[0; 10]).unwrap();
        data
    }

    fn samples() -> Vec<Cap> {
        let mut cnode = CNode::new();
        for slot in [0u32, 9, 700] {
            cnode
                .set(slot, CapHashOrRef::Hash(CapHash([slot as u8; 32])))
                .unwrap();
        }
        let image = Image {
            code: alloc::vec![1; 5000],
            ro_data: alloc::vec![2; 3],
            rw_data: alloc::vec![],
            heap_pages: 1,
            stack_size: 4096,
            endpoints: alloc::vec![0, 4],
            endpoint_names: alloc::vec!["a".into(), "bc".into()],
        };
        alloc::vec![
            Cap::Data(sparse_data()),
            Cap::Data(Data::new(0).unwrap()),
            Cap::CNode(cnode),
            Cap::Image(image),
        ]
    }

    #[test]
    fn ranges_concatenate_to_the_encoding() {
        for cap in samples() {
            let encoding = cap.encode().unwrap();
            let layout = EncodingLayout::new(&cap).unwrap();
            assert_eq!(layout.total(), encoding.len() as u64);
            for step in [1usize, 7, 4100, 4101, 100_000] {
                let mut out = Vec::new();
                let mut offset = 0u64;
                while offset < layout.total() {
                    let before = out.len();
                    layout.read(&cap, offset, step, &mut out);
                    offset += (out.len() - before) as u64;
                }
                assert_eq!(out, encoding, "{:?} in steps of {step}", cap.kind());
            }
            let mut past = Vec::new();
            layout.read(&cap, layout.total() + 5, 10, &mut past);
            assert!(past.is_empty());
        }
    }

    #[test]
    fn the_verifier_recomputes_each_hash_from_pieces() {
        for cap in samples() {
            let encoding = cap.encode().unwrap();
            let mut verifier = EncodingVerifier::new(cap.kind(), encoding.len() as u64).unwrap();
            for piece in encoding.chunks(999) {
                verifier.feed(piece).unwrap();
            }
            assert_eq!(
                verifier.finish().unwrap(),
                cap.hash().unwrap(),
                "{:?}",
                cap.kind()
            );
        }
    }

    #[test]
    fn sparse_root_matches_the_tree() {
        let data = sparse_data();
        let leaves: Vec<(u32, [u8; 32])> = data
            .pages()
            .filter(|(_, p)| p.iter().any(|&b| b != 0))
            .map(|(i, p)| (i, hash_in(Domain::DataPage, p)))
            .collect();
        let root = data_root(data.page_count(), &leaves);
        let hash = hash_parts_in(Domain::CapData, &[&data.len().to_le_bytes(), &root]);
        assert_eq!(CapHash(hash), data.hash());
    }

    #[test]
    fn the_parser_refuses_what_the_decoder_refuses() {
        struct Null;
        impl PageSink for Null {
            fn begin(&mut self, _: u64) -> Result<(), CapError> {
                Ok(())
            }
            fn page(&mut self, _: u32, _: &Page) -> Result<(), CapError> {
                Ok(())
            }
        }
        let good = Cap::Data(sparse_data()).encode().unwrap();
        let parse = |bytes: &[u8]| {
            let mut parser = DataParser::new(bytes.len() as u64)?;
            parser.feed(bytes, &mut Null)
        };
        parse(&good).unwrap();
        // Pages swapped (not ascending), a page past the length, an
        // all-zero page, a byte past the length, a wrong tag.
        let record = |r: usize| DATA_HEADER + r * DATA_RECORD;
        let mut swapped = good.clone();
        swapped[record(0)..record(1)].copy_from_slice(&good[record(1)..record(2)]);
        swapped[record(1)..record(2)].copy_from_slice(&good[record(0)..record(1)]);
        let mut past = good.clone();
        past[record(5)..record(5) + 4].copy_from_slice(&40u32.to_le_bytes());
        let mut zero = good.clone();
        zero[record(2) + 4..record(3)].fill(0);
        let mut tail = good.clone();
        tail[record(6) - 1] = 1;
        let mut tag = good.clone();
        tag[0] = 1;
        for (what, bad) in [
            ("swapped", swapped),
            ("past", past),
            ("zero", zero),
            ("tail", tail),
            ("tag", tag),
        ] {
            assert!(parse(&bad).is_err(), "{what}");
            assert!(Cap::decode(&bad).is_err(), "{what}: the decoder agrees");
        }
        assert!(DataParser::new(good.len() as u64 + 1).is_err());
    }
}
