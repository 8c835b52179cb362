//! Caps of any size on the host side (docs/kernel.md "Caps of any size"):
//! publishing a cap whose encoding is larger than a message as a sequence
//! of chunks (`put_cap_stream`) and exporting one by byte ranges
//! (`get_cap_range`), verified against its hash as the bytes pass. At most
//! a few chunks are held at once; the host's blob copy never keeps such a
//! cap (it is served from the caller or the store).

use std::io::{Read, Write};

use capbox_shared::abi::{self, GuestFunction, RangeRequest, StreamRequest};
use capbox_shared::cap::{Cap, CapKind};
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::{EncodingLayout, EncodingVerifier, MAX_RANGE_BYTES};

use super::{Kernel, lock};
use crate::error::KernelError;
use crate::store::Store;

/// Takes each exported chunk: the cap's kind, the encoding's total
/// length, the bytes.
type ChunkSink<'a> = dyn FnMut(CapKind, u64, &[u8]) -> Result<(), KernelError> + 'a;

/// Smallest transfer chunk, whatever the message limit.
const MIN_CHUNK_BYTES: usize = 4096;

/// An upper bound of `cap`'s encoded length, without encoding it.
fn encoded_len_bound(cap: &Cap) -> u64 {
    match cap {
        Cap::Data(data) => 13 + data.present_page_count() as u64 * 4100,
        Cap::CNode(cnode) => 5 + cnode.len() as u64 * 36,
        Cap::Image(image) => {
            25 + (image.code.len() + image.ro_data.len() + image.rw_data.len()) as u64
                + image.endpoints.len() as u64 * 4
                + image
                    .endpoint_names
                    .iter()
                    .map(|n| 4 + n.len() as u64)
                    .sum::<u64>()
        }
        Cap::Instance(_) | Cap::Type(_) => 129,
    }
}

fn bad_cap(e: impl std::fmt::Display) -> KernelError {
    KernelError::BadCap(e.to_string())
}

impl Kernel {
    /// Bytes per chunk of a streamed transfer: a quarter of the message
    /// limit (so a request or reply with its framing stays well inside
    /// it), at least 4 KiB, at most the kernel's range limit.
    pub fn stream_chunk_bytes(&self) -> usize {
        (self.message_bytes / 4).clamp(MIN_CHUNK_BYTES, MAX_RANGE_BYTES as usize)
    }

    /// Whether `cap` goes by the chunked path in `put_cap(s)`: its
    /// encoding may be larger than one chunk.
    pub fn is_large_cap(&self, cap: &Cap) -> bool {
        encoded_len_bound(cap) > self.stream_chunk_bytes() as u64
    }

    /// [`Self::put_caps`] when some caps are large: the small ones go in
    /// one batch as usual, each large one by [`Self::put_cap_streamed`].
    pub(super) fn put_caps_mixed(&mut self, caps: &[Cap]) -> Result<Vec<CapHash>, KernelError> {
        let small: Vec<Cap> = caps
            .iter()
            .filter(|c| !self.is_large_cap(c))
            .cloned()
            .collect();
        let mut small_hashes = self.put_caps_whole(&small)?.into_iter();
        let mut hashes = Vec::with_capacity(caps.len());
        for cap in caps {
            if self.is_large_cap(cap) {
                hashes.push(self.put_cap_streamed(cap)?);
            } else {
                hashes.push(small_hashes.next().ok_or_else(|| {
                    KernelError::Protocol("put_caps returned too few hashes".into())
                })?);
            }
        }
        Ok(hashes)
    }

    /// Publishes `cap` in chunks of its encoding, computed from the cap
    /// piece by piece (never the whole encoding at once); skipped if the
    /// kernel already has it. The host's copy does not keep it.
    pub fn put_cap_streamed(&mut self, cap: &Cap) -> Result<CapHash, KernelError> {
        let hash = cap.hash().map_err(bad_cap)?;
        if lock(&self.blobs).is_published(&hash) {
            return Ok(hash);
        }
        let layout = EncodingLayout::new(cap).map_err(bad_cap)?;
        let chunk = self.stream_chunk_bytes();
        let mut offset = 0u64;
        let total = layout.total();
        // Each call gets an empty buffer: the next chunk goes straight in.
        self.upload(cap.kind(), total, &hash, &mut |buf: &mut Vec<u8>| {
            layout.read(cap, offset, chunk, buf);
            offset += buf.len() as u64;
            Ok(())
        })
    }

    /// Publishes the encoding read from `reader` (`len` bytes, which must
    /// hash to `hash`) in chunks; the kernel checks the hash and refuses
    /// anything else. Holds one chunk at a time.
    pub fn put_encoded_from(
        &mut self,
        reader: &mut dyn Read,
        len: u64,
        hash: &CapHash,
    ) -> Result<CapHash, KernelError> {
        if lock(&self.blobs).is_published(hash) {
            return Ok(*hash);
        }
        let chunk = self.stream_chunk_bytes();
        // The kind tag is the encoding's first byte.
        let mut tag = [0u8; 1];
        reader
            .read_exact(&mut tag)
            .map_err(KernelError::TransferIo)?;
        let kind = CapKind::from_tag(tag[0])
            .ok_or_else(|| bad_cap(format!("unknown kind tag {}", tag[0])))?;
        let mut first = Some(tag[0]);
        let mut left = len.saturating_sub(1);
        self.upload(kind, len, hash, &mut |buf: &mut Vec<u8>| {
            if let Some(tag) = first.take() {
                buf.push(tag);
            }
            let want = (chunk - buf.len()).min(usize::try_from(left).unwrap_or(usize::MAX));
            let start = buf.len();
            buf.resize(start + want, 0);
            reader
                .read_exact(&mut buf[start..])
                .map_err(KernelError::TransferIo)?;
            left -= want as u64;
            Ok(())
        })
    }

    /// Publishes the blob `hash` from `store` in chunks (re-hashed as it
    /// is read), without loading it whole.
    pub fn put_from_store(&mut self, store: &Store, hash: &CapHash) -> Result<(), KernelError> {
        let (mut reader, len) = store
            .blob_reader(hash)?
            .ok_or_else(|| KernelError::Protocol(format!("{hash} is not in the store")))?;
        self.put_encoded_from(&mut reader, len, hash).map(drop)
    }

    /// Runs one upload: begin, chunks from `next` (each call appends the
    /// next bytes of the encoding to the buffer it gets), end. Any failure
    /// aborts the upload in the kernel.
    fn upload(
        &mut self,
        kind: CapKind,
        total: u64,
        hash: &CapHash,
        next: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), KernelError>,
    ) -> Result<CapHash, KernelError> {
        let id = {
            let mut b = lock(&self.blobs);
            b.sent += 1;
            b.sent
        };
        let result = self.upload_chunks(id, kind, total, hash, next);
        if result.is_err() {
            // Best effort: the kernel drops a failed upload itself, and a
            // later `begin` replaces any leftover.
            let _ = self.call_raw(
                GuestFunction::PutCapStream,
                &abi::encode_stream_request(&StreamRequest::Abort { id }),
            );
            return result;
        }
        lock(&self.blobs).mark_published(*hash);
        result
    }

    fn upload_chunks(
        &mut self,
        id: u64,
        kind: CapKind,
        total: u64,
        hash: &CapHash,
        next: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), KernelError>,
    ) -> Result<CapHash, KernelError> {
        self.stream_call(&StreamRequest::Begin {
            id,
            kind: kind.tag(),
            total,
            hash: hash.0,
        })?;
        let mut offset = 0u64;
        let mut bytes = Vec::with_capacity(self.stream_chunk_bytes());
        while offset < total {
            bytes.clear();
            next(&mut bytes)?;
            if bytes.is_empty() {
                return Err(KernelError::Protocol(format!(
                    "upload of {hash}: the source ended at {offset} of {total} bytes"
                )));
            }
            self.stream_call(&StreamRequest::Chunk {
                id,
                offset,
                bytes: &bytes,
            })?;
            offset += bytes.len() as u64;
        }
        let got = self.stream_call(&StreamRequest::End { id })?;
        match got.as_slice() {
            [h] if *h == hash.0 => Ok(*hash),
            _ => Err(KernelError::Protocol(format!(
                "put_cap_stream of {hash}: the kernel answered {} hashes",
                got.len()
            ))),
        }
    }

    /// One `put_cap_stream` call; the hashes of its reply.
    pub fn stream_call(
        &mut self,
        request: &StreamRequest<'_>,
    ) -> Result<Vec<[u8; 32]>, KernelError> {
        let reply = self.call_raw(
            GuestFunction::PutCapStream,
            &abi::encode_stream_request(request),
        )?;
        abi::decode_put_cap_reply(&reply)?.map_err(KernelError::Refused)
    }

    /// One `get_cap_range` call: the encoding's total length and the bytes.
    /// `keep`: the host keeps a reply holding the whole encoding.
    pub fn read_range(
        &mut self,
        hash: &CapHash,
        offset: u64,
        max_len: u32,
        keep: bool,
    ) -> Result<(u64, Vec<u8>), KernelError> {
        let request = RangeRequest {
            hash: hash.0,
            offset,
            max_len,
            keep,
        };
        let reply = self.call_raw(
            GuestFunction::GetCapRange,
            &abi::encode_range_request(&request),
        )?;
        let (total, bytes) = abi::decode_range_reply(&reply)?.map_err(KernelError::Refused)?;
        if offset > total || bytes.len() as u64 > (total - offset).min(u64::from(max_len)) {
            return Err(KernelError::Protocol(format!(
                "get_cap_range {hash} at {offset}: {} bytes of a {total}-byte encoding",
                bytes.len()
            )));
        }
        Ok((total, bytes))
    }

    /// Streams the encoding of `hash` from the kernel to `sink` chunk by
    /// chunk, checking it against `hash` on the way; the byte count. On a
    /// mismatch `sink` has seen bytes but the call fails.
    fn export_chunks(
        &mut self,
        hash: &CapHash,
        sink: &mut ChunkSink<'_>,
    ) -> Result<u64, KernelError> {
        let chunk = self.stream_chunk_bytes() as u32;
        let mut offset = 0u64;
        let mut verifier: Option<EncodingVerifier> = None;
        let mut kind = CapKind::Data;
        loop {
            let (total, bytes) = self.read_range(hash, offset, chunk, false)?;
            if offset == 0 {
                let tag = *bytes.first().ok_or_else(|| {
                    KernelError::Protocol(format!("get_cap_range {hash}: empty encoding"))
                })?;
                kind = CapKind::from_tag(tag)
                    .ok_or_else(|| bad_cap(format!("{hash}: unknown kind tag {tag}")))?;
                verifier = Some(EncodingVerifier::new(kind, total).map_err(bad_cap)?);
            }
            let Some(check) = verifier.as_mut() else {
                return Err(KernelError::Protocol("export without a verifier".into()));
            };
            check.feed(&bytes).map_err(bad_cap)?;
            sink(kind, total, &bytes)?;
            offset += bytes.len() as u64;
            if offset == total {
                break;
            }
            if bytes.is_empty() {
                return Err(KernelError::Protocol(format!(
                    "get_cap_range {hash}: no progress at {offset} of {total}"
                )));
            }
        }
        let got = verifier
            .ok_or_else(|| KernelError::Protocol("export without a verifier".into()))?
            .finish()
            .map_err(bad_cap)?;
        if got != *hash {
            return Err(KernelError::Protocol(format!(
                "export of {hash}: the kernel's bytes hash to {got}"
            )));
        }
        Ok(offset)
    }

    /// Writes the canonical encoding of `hash` to `writer`, from the
    /// host's copy or from the kernel by ranges, verified on the fly
    /// (Data: page digests only); the byte count. On a hash mismatch the
    /// bytes written so far are not the cap and the call fails.
    pub fn export_to(
        &mut self,
        hash: &CapHash,
        writer: &mut dyn Write,
    ) -> Result<u64, KernelError> {
        if let Some(bytes) = lock(&self.blobs).local(hash) {
            writer.write_all(&bytes).map_err(KernelError::TransferIo)?;
            return Ok(bytes.len() as u64);
        }
        self.export_chunks(hash, &mut |_, _, bytes| {
            writer.write_all(bytes).map_err(KernelError::TransferIo)
        })
    }

    /// Stores the blob `hash` from the kernel in `store` by ranges (a temp
    /// file, renamed into place only once the hash checks, so the store
    /// never holds a wrong blob); the byte count.
    pub fn export_to_store(&mut self, hash: &CapHash, store: &Store) -> Result<u64, KernelError> {
        let mut writer = None;
        let n = self.export_chunks(hash, &mut |kind, total, bytes| {
            if writer.is_none() {
                writer = Some(store.blob_writer(hash, kind, total)?);
            }
            match writer.as_mut() {
                Some(w) => Ok(w.write_chunk(bytes)?),
                None => Err(KernelError::Protocol("no blob writer".into())),
            }
        })?;
        writer
            .ok_or_else(|| KernelError::Protocol("export wrote nothing".into()))?
            .commit()?;
        Ok(n)
    }

    /// The encoding of `hash` from the kernel: one `get_cap_range` call
    /// when it fits in a chunk, else several (checked against the hash);
    /// whether it took more than one.
    pub(super) fn read_encoding(&mut self, hash: &CapHash) -> Result<(Vec<u8>, bool), KernelError> {
        let chunk = self.stream_chunk_bytes() as u32;
        let (total, first) = self.read_range(hash, 0, chunk, true)?;
        if first.len() as u64 == total {
            return Ok((first, false));
        }
        let mut all = Vec::new();
        self.export_chunks(hash, &mut |_, _, bytes| {
            all.extend_from_slice(bytes);
            Ok(())
        })?;
        Ok((all, true))
    }
}
