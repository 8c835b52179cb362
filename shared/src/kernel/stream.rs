//! Caps of any size (docs/kernel.md "Caps of any size"): the kernel's side
//! of `put_cap_stream` (an upload as a sequence of chunks of the canonical
//! encoding, verified against its hash at the end) and `get_cap_range`
//! (any byte range of a cap's encoding, computed from the cap).
//!
//! One upload at a time: `begin` drops an unfinished one, `sweep` and any
//! refused chunk drop it too, so a half-sent cap never stays and an upload holds
//! at most its own cap. A Data upload builds its pages as chunks arrive
//! (memory ~ the Data itself); the other kinds (at most a few hundred MiB
//! for an Image) are buffered and decoded at the end.
//!
//! A cap that came in by upload is pinned (this state holds a reference,
//! so eviction, which drops only unheld blobs, never drops it): the host
//! keeps no copy of such caps and `fetch_blob` moves one message, so it
//! could not be fetched back. The export reads from the directory and
//! caches one layout (the cap being exported), released when the range
//! reaches the end or another cap is asked for.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::service::{KernelHost, KernelState};
use super::stream_codec::{DataParser, EncodingLayout, PageSink, max_encoded_len};
use crate::abi::{self, ErrorKind, GuestFunction, RemoteError, StreamRequest};
use crate::cap::{Cap, CapError, CapKind, Data, Page, SharedPage};
use crate::hash::CapHash;

/// Most bytes one `get_cap_range` reply carries (a larger `max_len` is
/// cut to this); the host asks for less than its message limit.
pub const MAX_RANGE_BYTES: u32 = 16 << 20;

/// Most caps pinned by uploads at once; the oldest pin is released
/// beyond this (the cap may then be evicted like any host-known blob).
pub const MAX_PINNED_UPLOADS: usize = 64;

enum Body {
    Data(DataParser, DataBuild),
    Bytes(Vec<u8>),
}

struct DataBuild(Option<Data>);

impl PageSink for DataBuild {
    fn begin(&mut self, len: u64) -> Result<(), CapError> {
        self.0 = Some(Data::new(len)?);
        Ok(())
    }

    fn page(&mut self, index: u32, page: &Page) -> Result<(), CapError> {
        match &mut self.0 {
            Some(data) => data.write_page_shared(index, SharedPage::new(page)),
            None => Err(CapError::Truncated("Data header")),
        }
    }
}

struct Upload {
    id: u64,
    kind: CapKind,
    total: u64,
    expected: CapHash,
    received: u64,
    body: Body,
}

struct Export {
    hash: CapHash,
    cap: Arc<Cap>,
    layout: EncodingLayout,
}

#[derive(Default)]
struct Inner {
    upload: Option<Upload>,
    export: Option<Export>,
    pinned: Vec<(CapHash, Arc<Cap>)>,
}

/// The kernel's transfer state (one per kernel, beside its directory).
pub struct StreamState {
    inner: spin::Mutex<Inner>,
}

impl Default for StreamState {
    fn default() -> Self {
        Self::new()
    }
}

fn err(kind: ErrorKind, message: impl core::fmt::Display, hash: Option<&CapHash>) -> RemoteError {
    RemoteError {
        kind,
        message: format!("{message}"),
        hash: hash.map(|h| h.0),
    }
}

impl StreamState {
    /// No upload, no export, nothing pinned.
    pub const fn new() -> Self {
        StreamState {
            inner: spin::Mutex::new(Inner {
                upload: None,
                export: None,
                pinned: Vec::new(),
            }),
        }
    }

    /// Whether an upload is in progress.
    pub fn upload_open(&self) -> bool {
        self.inner.lock().upload.is_some()
    }

    /// Drops an unfinished upload and the cached export (`sweep` does).
    pub fn drop_unfinished(&self) {
        let mut inner = self.inner.lock();
        inner.upload = None;
        inner.export = None;
    }

    /// How many caps uploads pin.
    pub fn pinned(&self) -> usize {
        self.inner.lock().pinned.len()
    }
}

impl<S: BuildHasher> KernelState<'_, S> {
    /// Runs `function`: the stream functions on `streams`, the others as
    /// [`Self::handle_owned`]. Both backends call this.
    pub fn handle_with_streams(
        &self,
        streams: &StreamState,
        host: &mut dyn KernelHost,
        function: GuestFunction,
        request: Vec<u8>,
    ) -> Vec<u8> {
        match function {
            GuestFunction::PutCapStream => {
                let result = abi::decode_stream_request(&request)
                    .map_err(|e| err(ErrorKind::BadMessage, e, None))
                    .and_then(|r| self.stream_put(streams, host, r));
                match result {
                    Ok(Some(hash)) => abi::encode_put_cap_reply(Ok(&[hash.0])),
                    Ok(None) => abi::encode_put_cap_reply(Ok(&[])),
                    Err(e) => abi::encode_put_cap_reply(Err(&e)),
                }
            }
            GuestFunction::GetCapRange => {
                let mut out = Vec::new();
                let result = abi::decode_range_request(&request)
                    .map_err(|e| err(ErrorKind::BadMessage, e, None))
                    .and_then(|r| self.stream_range(streams, &r, &mut out));
                match result {
                    Ok(total) => abi::encode_range_reply(Ok((total, &out))),
                    Err(e) => abi::encode_range_reply(Err(&e)),
                }
            }
            GuestFunction::Sweep => {
                // Sweeping also ends an abandoned upload and export.
                streams.drop_unfinished();
                self.handle_owned(host, function, request)
            }
            _ => self.handle_owned(host, function, request),
        }
    }

    fn stream_put(
        &self,
        streams: &StreamState,
        host: &mut dyn KernelHost,
        request: StreamRequest<'_>,
    ) -> Result<Option<CapHash>, RemoteError> {
        let mut inner = streams.inner.lock();
        match request {
            StreamRequest::Begin {
                id,
                kind,
                total,
                hash,
            } => {
                // A new upload replaces an unfinished one.
                inner.upload = None;
                let expected = CapHash(hash);
                let kind = CapKind::from_tag(kind).ok_or_else(|| {
                    err(
                        ErrorKind::BadCap,
                        CapError::UnknownTag(kind),
                        Some(&expected),
                    )
                })?;
                if total == 0 || total > max_encoded_len(kind) {
                    return Err(err(
                        ErrorKind::BadCap,
                        format!("a {kind:?} encoding cannot be {total} bytes"),
                        Some(&expected),
                    ));
                }
                let body = match kind {
                    CapKind::Data => Body::Data(
                        DataParser::new(total)
                            .map_err(|e| err(ErrorKind::BadCap, e, Some(&expected)))?,
                        DataBuild(None),
                    ),
                    _ => Body::Bytes(Vec::new()),
                };
                inner.upload = Some(Upload {
                    id,
                    kind,
                    total,
                    expected,
                    received: 0,
                    body,
                });
                Ok(None)
            }
            StreamRequest::Chunk { id, offset, bytes } => {
                let upload = open_upload(&mut inner, id)?;
                let result = feed(upload, offset, bytes);
                if result.is_err() {
                    // A refused chunk ends the upload: nothing half-sent stays.
                    inner.upload = None;
                }
                result.map(|()| None)
            }
            StreamRequest::End { id } => {
                open_upload(&mut inner, id)?;
                let upload = inner.upload.take().ok_or_else(|| no_upload(id))?;
                drop(inner);
                let cap = Arc::new(finish(upload)?);
                let hash = cap.hash().map_err(|e| err(ErrorKind::BadCap, e, None))?;
                self.dir.put_host_blob(hash, cap.clone());
                // Pin the directory's own copy (it keeps an existing one).
                let cap = self.dir.get_blob(&hash).unwrap_or(cap);
                let mut inner = streams.inner.lock();
                if !inner.pinned.iter().any(|(h, _)| *h == hash) {
                    if inner.pinned.len() >= MAX_PINNED_UPLOADS {
                        inner.pinned.remove(0);
                    }
                    inner.pinned.push((hash, cap));
                }
                drop(inner);
                self.enforce_budget(host);
                Ok(Some(hash))
            }
            StreamRequest::Abort { id } => {
                if inner.upload.as_ref().is_some_and(|u| u.id == id) {
                    inner.upload = None;
                }
                Ok(None)
            }
        }
    }

    /// Appends the requested range of a cap's encoding to `out`; the
    /// encoding's total length.
    fn stream_range(
        &self,
        streams: &StreamState,
        request: &abi::RangeRequest,
        out: &mut Vec<u8>,
    ) -> Result<u64, RemoteError> {
        let hash = CapHash(request.hash);
        let mut inner = streams.inner.lock();
        if inner.export.as_ref().is_none_or(|e| e.hash != hash) {
            inner.export = None;
            let cap = self.dir.get_blob(&hash).ok_or_else(|| {
                err(
                    ErrorKind::MissingCap,
                    crate::CacheError::BlobMissing(hash),
                    Some(&hash),
                )
            })?;
            let layout =
                EncodingLayout::new(&cap).map_err(|e| err(ErrorKind::Kernel, e, Some(&hash)))?;
            inner.export = Some(Export { hash, cap, layout });
        }
        let Some(export) = inner.export.as_ref() else {
            return Err(err(ErrorKind::Kernel, "export state lost", Some(&hash)));
        };
        let total = export.layout.total();
        if request.offset > total {
            return Err(err(
                ErrorKind::BadMessage,
                format!(
                    "range offset {} is past the encoding's end ({total} bytes)",
                    request.offset
                ),
                Some(&hash),
            ));
        }
        let len = request.max_len.min(MAX_RANGE_BYTES) as usize;
        export.layout.read(&export.cap, request.offset, len, out);
        if request.keep && request.offset == 0 && out.len() as u64 == total {
            // The host keeps it (as after `get_cap`): evictable unspilled.
            self.dir.mark_host_known(core::slice::from_ref(&hash), 0);
        }
        if request.offset + out.len() as u64 >= total {
            // Done: let the cap go.
            inner.export = None;
        }
        Ok(total)
    }
}

fn no_upload(id: u64) -> RemoteError {
    err(
        ErrorKind::BadMessage,
        format!("no upload {id} in progress"),
        None,
    )
}

fn open_upload(inner: &mut Inner, id: u64) -> Result<&mut Upload, RemoteError> {
    match &mut inner.upload {
        Some(upload) if upload.id == id => Ok(upload),
        _ => Err(no_upload(id)),
    }
}

fn feed(upload: &mut Upload, offset: u64, bytes: &[u8]) -> Result<(), RemoteError> {
    let expected = upload.expected;
    if offset != upload.received {
        return Err(err(
            ErrorKind::BadMessage,
            format!(
                "chunk at offset {offset}, expected {} (chunks go in order)",
                upload.received
            ),
            Some(&expected),
        ));
    }
    if bytes.len() as u64 > upload.total - upload.received {
        return Err(err(
            ErrorKind::BadMessage,
            format!(
                "chunk of {} bytes at {offset} runs past the announced {} bytes",
                bytes.len(),
                upload.total
            ),
            Some(&expected),
        ));
    }
    match &mut upload.body {
        Body::Data(parser, build) => parser
            .feed(bytes, build)
            .map_err(|e| err(ErrorKind::BadCap, e, Some(&expected)))?,
        Body::Bytes(buffer) => {
            buffer.try_reserve(bytes.len()).map_err(|_| {
                err(
                    ErrorKind::OutOfMemory,
                    "no memory for the upload's next chunk",
                    Some(&expected),
                )
            })?;
            buffer.extend_from_slice(bytes);
        }
    }
    upload.received += bytes.len() as u64;
    Ok(())
}

/// The uploaded cap, checked complete and against its expected hash.
fn finish(upload: Upload) -> Result<Cap, RemoteError> {
    let expected = upload.expected;
    if upload.received != upload.total {
        return Err(err(
            ErrorKind::BadMessage,
            format!(
                "upload ended after {} of {} bytes",
                upload.received, upload.total
            ),
            Some(&expected),
        ));
    }
    let cap = match upload.body {
        Body::Data(_, DataBuild(Some(data))) => Cap::Data(data),
        Body::Data(_, DataBuild(None)) => {
            return Err(err(ErrorKind::BadCap, "no Data header", Some(&expected)));
        }
        Body::Bytes(bytes) => {
            let cap =
                Cap::decode(&bytes).map_err(|e| err(ErrorKind::BadCap, e, Some(&expected)))?;
            if cap.kind() != upload.kind {
                return Err(err(
                    ErrorKind::BadCap,
                    format!("announced {:?}, sent {:?}", upload.kind, cap.kind()),
                    Some(&expected),
                ));
            }
            cap
        }
    };
    let hash = cap
        .hash()
        .map_err(|e| err(ErrorKind::BadCap, e, Some(&expected)))?;
    if hash != expected {
        return Err(err(
            ErrorKind::HashMismatch,
            format!("bytes sent as {expected} hash to {hash}"),
            Some(&expected),
        ));
    }
    Ok(cap)
}
