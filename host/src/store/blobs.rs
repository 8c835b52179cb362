//! Blob operations: put (verified), get (re-verified), contains, list, stats.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capbox_shared::kernel::EncodingVerifier;
use capbox_shared::{Cap, CapHash, CapKind};

use super::error::{IoContext, StoreError};
use super::fsio::{self, LockMode};
use super::{Store, graph, pages};

/// One stored blob, as [`Store::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its name.
    pub hash: CapHash,
    /// Its kind from the tag byte; `None` if the file is empty or the tag is
    /// unknown (a corrupt blob; [`Store::get`] reports why).
    pub kind: Option<CapKind>,
    /// Bytes of its file: the encoded size, except a Data (format 4),
    /// whose file is its 41-byte root record (its pages count in
    /// [`StoreStats::data_part_bytes`]).
    pub size: u64,
    /// Last put or get (the file's mtime).
    pub last_access: SystemTime,
}

/// Totals over the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Number of blobs.
    pub entries: u64,
    /// Sum of their encoded sizes.
    pub bytes: u64,
    /// Number of heads.
    pub heads: u64,
    /// Data pages and tree nodes stored beside the blobs (format 4: a
    /// Data blob is a small root record; docs/store.md "Data pages").
    pub data_parts: u64,
    /// Their bytes.
    pub data_part_bytes: u64,
}

impl Store {
    /// Stores `cap` (its canonical encoding) and returns its hash. Idempotent.
    /// Fails if the cap cannot be encoded (e.g. it still holds a `Ref`).
    pub fn put(&self, cap: &Cap) -> Result<CapHash, StoreError> {
        let unencodable = |source| StoreError::Unencodable {
            kind: cap.kind(),
            source,
        };
        let bytes = cap.encode().map_err(unencodable)?;
        let hash = cap.hash().map_err(unencodable)?;
        self.write_blob(&hash, &bytes)?;
        Ok(hash)
    }

    /// Decodes `bytes` as one canonical cap encoding (rejecting anything
    /// else), stores them, and returns their hash.
    pub fn put_encoded(&self, bytes: &[u8]) -> Result<CapHash, StoreError> {
        let hash = hash_encoding(bytes, None)?;
        self.write_blob(&hash, bytes)?;
        Ok(hash)
    }

    /// Like [`Store::put_encoded`], for bytes the caller names: stores them
    /// only if they hash to `hash` ([`StoreError::HashMismatch`] otherwise).
    pub fn put_encoded_with_hash(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError> {
        let actual = hash_encoding(bytes, Some(hash))?;
        if actual != *hash {
            return Err(StoreError::HashMismatch {
                expected: *hash,
                actual,
            });
        }
        self.write_blob(hash, bytes)
    }

    /// The cap named `hash`, if stored. The bytes read are decoded and
    /// re-hashed: a file that does not match its name is
    /// [`StoreError::CorruptBlob`]. Marks the blob as recently used.
    pub fn get(&self, hash: &CapHash) -> Result<Option<Cap>, StoreError> {
        Ok(self.read_verified(hash, true)?.map(|(cap, _)| cap))
    }

    /// The canonical encoding of the cap named `hash`, verified like
    /// [`Store::get`].
    pub fn get_encoded(&self, hash: &CapHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_verified(hash, true)?.map(|(_, bytes)| bytes))
    }

    /// Whether a blob named `hash` is stored (not verified).
    pub fn contains(&self, hash: &CapHash) -> Result<bool, StoreError> {
        let path = self.blob_path(hash);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("stat", path, e)),
        }
    }

    /// Every stored blob, sorted by hash. Reads one byte per blob (its kind).
    pub fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let mut out = Vec::new();
        self.scan_blobs(|hash, path, meta| {
            let kind = match graph::read_kind(path) {
                Ok(kind) => kind,
                // Pruned while we listed it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StoreError::io("read", path, e)),
            };
            out.push(BlobInfo {
                hash,
                kind,
                size: meta.len(),
                last_access: meta.modified().at("read mtime of", path)?,
            });
            Ok(())
        })?;
        out.sort_by_key(|info| info.hash);
        Ok(out)
    }

    /// Blob count and bytes, Data part count and bytes, and head count.
    /// Reads only directory metadata.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut stats = StoreStats::default();
        self.scan_blobs(|_, _, meta| {
            stats.entries += 1;
            stats.bytes += meta.len();
            Ok(())
        })?;
        self.scan_parts(|_, _, meta| {
            stats.data_parts += 1;
            stats.data_part_bytes += meta.len();
            Ok(())
        })?;
        stats.heads = self.head_names()?.len() as u64;
        Ok(stats)
    }

    /// Calls `visit` for every blob file: `blobs/<2 hex>/<64 hex>` whose name
    /// parses and sits in the right fan-out directory. Anything else (stray
    /// files, editor backups) is not a blob and is skipped.
    pub(super) fn scan_blobs(
        &self,
        mut visit: impl FnMut(CapHash, &Path, &fs::Metadata) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for prefix_entry in fs::read_dir(&self.blobs).at("list", &self.blobs)? {
            let prefix_entry = prefix_entry.at("list", &self.blobs)?;
            let prefix_dir = prefix_entry.path();
            let prefix = prefix_entry.file_name();
            let Some(prefix) = prefix.to_str().filter(|p| p.len() == 2) else {
                continue;
            };
            if !prefix_dir.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&prefix_dir).at("list", &prefix_dir)? {
                let entry = entry.at("list", &prefix_dir)?;
                let name = entry.file_name();
                let Some(hash) = name.to_str().and_then(|n| parse_blob_name(n, prefix)) else {
                    continue;
                };
                let path = entry.path();
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io("stat", path, e)),
                };
                if meta.is_file() {
                    visit(hash, &path, &meta)?;
                }
            }
        }
        Ok(())
    }

    /// Reads, decodes and re-hashes the blob `hash`; `touch` marks it used.
    pub(super) fn read_verified(
        &self,
        hash: &CapHash,
        touch: bool,
    ) -> Result<Option<(Cap, Vec<u8>)>, StoreError> {
        let path = self.blob_path(hash);
        let Some(bytes) = read_blob_file(&path, touch)? else {
            return Ok(None);
        };
        if pages::is_root_record(&bytes) {
            let data = self.read_data(hash, &bytes)?;
            let cap = Cap::Data(data);
            let encoded = cap.encode().map_err(|e| StoreError::CorruptBlob {
                hash: *hash,
                path: path.clone(),
                reason: format!("does not encode: {e}"),
            })?;
            return Ok(Some((cap, encoded)));
        }
        let corrupt = |reason: String| StoreError::CorruptBlob {
            hash: *hash,
            path: path.clone(),
            reason,
        };
        let cap = Cap::decode(&bytes).map_err(|e| corrupt(format!("does not decode: {e}")))?;
        let actual = cap
            .hash()
            .map_err(|e| corrupt(format!("does not hash: {e}")))?;
        if actual != *hash {
            return Err(corrupt(format!("its bytes hash to {actual}")));
        }
        Ok(Some((cap, bytes)))
    }

    /// Durably stores `bytes` (already verified to be `hash`'s encoding).
    /// An existing file holding exactly these bytes is kept (and marked
    /// used); anything else there is corrupt and is replaced, so re-putting
    /// a cap repairs its blob. Comparing costs a read, far less than the
    /// fsyncs of a rewrite.
    fn write_blob(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError> {
        let _shared = self.lock(LockMode::Shared)?;
        self.write_blob_locked(hash, bytes)
    }

    /// [`Store::write_blob`] for a caller already holding the lock (either
    /// mode).
    pub(super) fn write_blob_locked(&self, hash: &CapHash, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.first() == Some(&CapKind::Data.tag()) {
            // Kept as parts (`pages`); the caller checked the bytes.
            let data = match Cap::decode(bytes) {
                Ok(Cap::Data(data)) => data,
                Ok(other) => {
                    return Err(StoreError::InvalidEncoding {
                        len: bytes.len(),
                        expected: Some(*hash),
                        source: capbox_shared::cap::CapError::UnknownTag(other.kind().tag()),
                    });
                }
                Err(source) => {
                    return Err(StoreError::InvalidEncoding {
                        len: bytes.len(),
                        expected: Some(*hash),
                        source,
                    });
                }
            };
            return self.store_data_locked(hash, &data);
        }
        let path = self.blob_path(hash);
        if holds_exactly(&path, bytes) {
            return Ok(());
        }
        fsio::ensure_dir(parent(&path))?;
        fsio::write_atomically(&self.tmp, &path, bytes)
    }
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// `cap`'s canonical encoding, checked to be named `hash`.
pub(super) fn encode_as(cap: &Cap, hash: &CapHash) -> Result<Vec<u8>, StoreError> {
    let unencodable = |source| StoreError::Unencodable {
        kind: cap.kind(),
        source,
    };
    let bytes = cap.encode().map_err(unencodable)?;
    let actual = cap.hash().map_err(unencodable)?;
    if actual != *hash {
        return Err(StoreError::HashMismatch {
            expected: *hash,
            actual,
        });
    }
    Ok(bytes)
}

/// Decodes and hashes `bytes`; `expected` only labels the error.
fn hash_encoding(bytes: &[u8], expected: Option<&CapHash>) -> Result<CapHash, StoreError> {
    let invalid = |source| StoreError::InvalidEncoding {
        len: bytes.len(),
        expected: expected.copied(),
        source,
    };
    let cap = Cap::decode(bytes).map_err(invalid)?;
    cap.hash().map_err(invalid)
}

fn parse_blob_name(name: &str, prefix: &str) -> Option<CapHash> {
    let hash = CapHash::from_hex(name).ok()?;
    // Only the canonical lower-case spelling, in its own fan-out directory.
    (name.starts_with(prefix) && hash.to_hex() == name).then_some(hash)
}

fn read_blob_file(path: &Path, touch: bool) -> Result<Option<Vec<u8>>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).at("read", path)?;
    if touch {
        // Best effort: see "Access tracking" in the module docs.
        let _ = file.set_modified(SystemTime::now());
    }
    Ok(Some(bytes))
}

/// Whether `path` is a file holding exactly `bytes`; marks it used if so.
/// Any failure to tell counts as "no": the caller then rewrites the file.
fn holds_exactly(path: &Path, bytes: &[u8]) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let same_len = file
        .metadata()
        .is_ok_and(|meta| meta.is_file() && meta.len() == bytes.len() as u64);
    if !same_len {
        return false;
    }
    let mut existing = Vec::with_capacity(bytes.len());
    if file.read_to_end(&mut existing).is_err() || existing != bytes {
        return false;
    }
    // Best effort: see "Access tracking" in the module docs.
    let _ = file.set_modified(SystemTime::now());
    true
}

/// A blob being stored in pieces ([`Store::blob_writer`]): the bytes go to
/// a temp file as they come and are hashed on the fly (Data page by page);
/// [`BlobWriter::commit`] checks the hash, fsyncs and renames the file into
/// place, the same crash safety as [`Store::put`]. Dropped uncommitted, it
/// removes its temp file (a crash leaves one that the next open removes).
pub struct BlobWriter {
    hash: CapHash,
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<io::BufWriter<File>>,
    verifier: Option<EncodingVerifier>,
    /// For a Data: the store to put its parts in at commit.
    data_store: Option<Store>,
    _lock: super::fsio::LockGuard,
}

impl Store {
    /// Starts storing the blob `hash`, a `kind` cap whose encoding is
    /// `total` bytes, without holding it in memory.
    pub fn blob_writer(
        &self,
        hash: &CapHash,
        kind: CapKind,
        total: u64,
    ) -> Result<BlobWriter, StoreError> {
        let invalid = |source| StoreError::InvalidEncoding {
            len: usize::try_from(total).unwrap_or(usize::MAX),
            expected: Some(*hash),
            source,
        };
        let verifier = EncodingVerifier::new(kind, total).map_err(invalid)?;
        let lock = self.lock(LockMode::Shared)?;
        let dest = self.blob_path(hash);
        fsio::ensure_dir(parent(&dest))?;
        let (file, tmp) = fsio::create_temp(&self.tmp)?;
        Ok(BlobWriter {
            hash: *hash,
            dest,
            tmp,
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            verifier: Some(verifier),
            data_store: (kind == CapKind::Data).then(|| self.clone()),
            _lock: lock,
        })
    }

    /// Stores the encoding of `hash` read from `reader` (`total` bytes of a
    /// `kind` cap) in chunks of `chunk` bytes; fails without storing
    /// anything if the bytes are not that cap.
    pub fn put_from_reader(
        &self,
        hash: &CapHash,
        kind: CapKind,
        total: u64,
        reader: &mut dyn Read,
    ) -> Result<(), StoreError> {
        let mut writer = self.blob_writer(hash, kind, total)?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut left = total;
        while left > 0 {
            let want = buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = reader
                .read(&mut buffer[..want])
                .at("read blob source for", &writer.dest)?;
            if n == 0 {
                return Err(StoreError::io(
                    "read blob source for",
                    writer.dest.clone(),
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                ));
            }
            writer.write_chunk(&buffer[..n])?;
            left -= n as u64;
        }
        writer.commit()
    }

    /// A reader over the stored encoding of `hash` that re-hashes it as it
    /// is read ([`BlobReader`]), and its length; `None` if not stored.
    pub fn blob_reader(&self, hash: &CapHash) -> Result<Option<(BlobReader, u64)>, StoreError> {
        let path = self.blob_path(hash);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("open", path, e)),
        };
        let len = file.metadata().at("stat", &path)?.len();
        if len == pages::ROOT_RECORD_LEN as u64 {
            // Possibly a Data root record: serve the reassembled encoding.
            drop(file);
            let Some((_, encoded)) = self.read_verified(hash, true)? else {
                return Ok(None);
            };
            let len = encoded.len() as u64;
            return Ok(Some((
                BlobReader {
                    hash: *hash,
                    head: None,
                    file: Box::new(io::Cursor::new(encoded)),
                    verifier: None,
                },
                len,
            )));
        }
        let mut tag = [0u8; 1];
        let corrupt = |reason: String| StoreError::CorruptBlob {
            hash: *hash,
            path: path.clone(),
            reason,
        };
        file.read_exact(&mut tag)
            .map_err(|e| corrupt(format!("no kind tag: {e}")))?;
        let kind = CapKind::from_tag(tag[0]).ok_or_else(|| corrupt("unknown kind tag".into()))?;
        let mut verifier = EncodingVerifier::new(kind, len).map_err(|e| corrupt(format!("{e}")))?;
        verifier.feed(&tag).map_err(|e| corrupt(format!("{e}")))?;
        // Best effort: see "Access tracking" in the module docs.
        let _ = file.set_modified(SystemTime::now());
        Ok(Some((
            BlobReader {
                hash: *hash,
                head: Some(tag[0]),
                file: Box::new(BufReader::with_capacity(1 << 20, file)),
                verifier: Some(verifier),
            },
            len,
        )))
    }
}

impl BlobWriter {
    /// Appends the next bytes of the encoding.
    pub fn write_chunk(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let (Some(file), Some(verifier)) = (self.file.as_mut(), self.verifier.as_mut()) else {
            return Err(StoreError::io(
                "write to a finished blob writer for",
                self.dest.clone(),
                io::Error::from(io::ErrorKind::BrokenPipe),
            ));
        };
        verifier
            .feed(bytes)
            .map_err(|source| StoreError::InvalidEncoding {
                len: bytes.len(),
                expected: Some(self.hash),
                source,
            })?;
        file.write_all(bytes).at("write temp file", &self.tmp)
    }

    /// Checks the hash, then makes the blob durable under its name.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let verifier = self.verifier.take();
        let file = self.file.take();
        let (Some(verifier), Some(file)) = (verifier, file) else {
            return Err(StoreError::io(
                "commit a finished blob writer for",
                self.dest.clone(),
                io::Error::from(io::ErrorKind::BrokenPipe),
            ));
        };
        let actual = verifier
            .finish()
            .map_err(|source| StoreError::InvalidEncoding {
                len: 0,
                expected: Some(self.hash),
                source,
            })?;
        if actual != self.hash {
            return Err(StoreError::HashMismatch {
                expected: self.hash,
                actual,
            });
        }
        let file = file
            .into_inner()
            .map_err(|e| StoreError::io("flush temp file", self.tmp.clone(), e.into_error()))?;
        if let Some(store) = self.data_store.take() {
            // A Data is kept as parts: decode the verified temp file
            // (memory ~ the Data) and store its parts.
            drop(file);
            let bytes = fs::read(&self.tmp).at("read temp file", &self.tmp)?;
            let Ok(Cap::Data(data)) = Cap::decode(&bytes) else {
                return Err(StoreError::io(
                    "decode verified Data",
                    self.tmp.clone(),
                    io::Error::from(io::ErrorKind::InvalidData),
                ));
            };
            drop(bytes);
            return store.store_data_locked(&self.hash, &data);
        }
        file.sync_all().at("fsync temp file", &self.tmp)?;
        fs::rename(&self.tmp, &self.dest).at("rename into place", &self.dest)?;
        fsio::sync_dir(parent(&self.dest))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Committed: the temp file was renamed, so this finds nothing.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Reads a stored blob's encoding, hashing it as it goes: the read that
/// reaches the end fails with `InvalidData` if the bytes are not the blob
/// they are named after (so a corrupt file never reads to a clean end).
pub struct BlobReader {
    hash: CapHash,
    head: Option<u8>,
    file: Box<dyn Read + Send>,
    verifier: Option<EncodingVerifier>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(tag) = self.head.take() {
            buf[0] = tag;
            return Ok(1);
        }
        let n = self.file.read(buf)?;
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        if n > 0 {
            if let Some(verifier) = self.verifier.as_mut() {
                verifier
                    .feed(&buf[..n])
                    .map_err(|e| bad(format!("blob {}: {e}", self.hash)))?;
            }
            return Ok(n);
        }
        if let Some(verifier) = self.verifier.take() {
            let actual = verifier
                .finish()
                .map_err(|e| bad(format!("blob {}: {e}", self.hash)))?;
            if actual != self.hash {
                return Err(bad(format!("blob {} hashes to {actual}", self.hash)));
            }
        }
        Ok(0)
    }
}
