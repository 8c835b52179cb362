//! Caps of any size (docs/kernel.md "Caps of any size"): caps larger than
//! a message are published in chunks and exported by ranges, verified
//! against their hash, on both backends; the export's extra host memory is
//! a small multiple of the message size, not of the cap; hostile chunk
//! sequences are refused with typed errors and corrupt nothing.
//!
//! A counting global allocator measures live heap bytes: the local
//! backend's kernel lives in this process, so only the high-water mark
//! *during the export* says what the export itself holds. Tests here run
//! one at a time (`serial`) so that no other test's allocations count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use capbox::shared::abi::{self, ErrorKind, GuestFunction, StreamRequest};
use capbox::shared::cap::{CNode, Cap, CapHashOrRef, Data, PAGE_SIZE};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::ops::OK;
use capbox::shared::kernel::{ExitReason, KernelOp};
use capbox::shared::{BlobBudget, CapKind};
use capbox::{BackendChoice, Kernel, KernelError, SandboxConfig, Store};
use capbox_tests::probe::{self, Probe, RW};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged and only counts sizes on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator (so from `System`) with
        // `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; the high-water mark of live heap bytes above those live when
/// it started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Data of `pages` pages, each filled with a pattern of its index (no
/// page is zero).
fn big_data(pages: u32) -> Data {
    let mut data = Data::new(u64::from(pages) * PAGE_SIZE as u64).unwrap();
    let mut page = [0u8; PAGE_SIZE];
    for index in 0..pages {
        let seed = index.wrapping_mul(2_654_435_761).to_le_bytes();
        for (j, byte) in page.iter_mut().enumerate() {
            *byte = seed[j % 4] ^ (j as u8) | 1;
        }
        data.write_page(index, &page).unwrap();
    }
    data
}

fn local_with(message_bytes: usize) -> Kernel {
    let config = SandboxConfig {
        message_bytes,
        blob_budget: Some(BlobBudget::UNBOUNDED),
        ..SandboxConfig::default()
    };
    Kernel::with_config(BackendChoice::Local, config).unwrap()
}

/// A sandbox with small messages (64 KiB: 16 KiB chunks), so that caps of
/// a few hundred KiB span many messages without the ~40 ms per hashed
/// page of emulated guest time adding up.
fn small_message_sandbox() -> Option<Kernel> {
    capbox_tests::own_sandbox(SandboxConfig {
        message_bytes: 64 << 10,
        ..SandboxConfig::default()
    })
}

/// The cap in `slot` of an instance's root CNode.
fn slot_of(kernel: &mut Kernel, instance: &CapHash, slot: u32) -> CapHash {
    let Cap::Instance(inst) = kernel.get_cap(instance).unwrap() else {
        panic!("not an instance")
    };
    let CapHashOrRef::Hash(root) = inst.root_cnode else {
        panic!("unsettled root")
    };
    let Cap::CNode(cnode) = kernel.get_cap(&root).unwrap() else {
        panic!("root is not a CNode")
    };
    match cnode.get(slot) {
        Some(CapHashOrRef::Hash(h)) => *h,
        other => panic!("slot {slot}: {other:?}"),
    }
}

/// The round trip of the check: publish `data` (chunked: it is larger
/// than a message), have a probe instance write one page of it (the
/// probe's pattern page, at page `page`), export the result to a file
/// and to a store, and compare with the locally computed hash. Returns
/// the export's peak extra heap bytes and its duration.
fn round_trip(kernel: &mut Kernel, data: Data, page: u32) -> (usize, std::time::Duration) {
    let cap = Cap::Data(data.clone());
    assert!(kernel.is_large_cap(&cap), "the test cap must need chunks");
    let data_hash = cap.hash().unwrap();
    let (mut caps, instance) = probe::probe_instance(&[(1, data_hash)]);
    caps.insert(0, cap);
    let hashes = kernel.put_caps(&caps).unwrap();
    assert_eq!(hashes[0], data_hash);
    assert!(
        !kernel.host_has(&data_hash),
        "a cap over the message limit must not be kept in the host's copy"
    );

    let offset = u64::from(page) * PAGE_SIZE as u64;
    let o = kernel
        .invoke(
            &instance,
            Probe::Op(KernelOp::DataWrite).index(),
            [1, offset, u64::from(RW), PAGE_SIZE as u64],
            1_000_000,
        )
        .unwrap();
    assert_eq!((o.exit, o.r7), (ExitReason::Halt, OK), "{o:?}");
    let mut expected = data;
    expected.write(offset, &probe::pattern()).unwrap();
    let expected = expected.hash();
    let written = slot_of(kernel, &o.instance, 1);
    assert_eq!(written, expected, "the kernel's Data after the write");

    let file = std::env::temp_dir().join(format!(
        "capbox-large-{}-{}.bin",
        std::process::id(),
        kernel.backend()
    ));
    let started = Instant::now();
    let (written_bytes, peak) = peak_during(|| {
        let mut out =
            std::io::BufWriter::with_capacity(64 << 10, std::fs::File::create(&file).unwrap());
        kernel.export_to(&expected, &mut out).unwrap()
    });
    let took = started.elapsed();
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(len, written_bytes);

    // The file is the cap: published again from it (a fresh kernel, so
    // it really goes through), it hashes the same.
    let store_dir = std::env::temp_dir().join(format!(
        "capbox-large-store-{}-{}",
        std::process::id(),
        kernel.backend()
    ));
    let _ = std::fs::remove_dir_all(&store_dir);
    let store = Store::open(&store_dir).unwrap();
    kernel.export_to_store(&expected, &store).unwrap();
    let mut from_file = std::fs::File::open(&file).unwrap();
    store
        .put_from_reader(&expected, CapKind::Data, len, &mut from_file)
        .unwrap();
    let (mut reader, stored_len) = store.blob_reader(&expected).unwrap().unwrap();
    assert_eq!(stored_len, len);
    std::io::copy(&mut reader, &mut std::io::sink()).expect("the stored blob re-hashes");
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_dir_all(&store_dir).unwrap();
    (peak, took)
}

/// 32 MiB of Data (8192 non-zero pages) with 1 MiB messages: 32 messages'
/// worth. The export may hold at most 4 messages' worth of extra heap.
#[test]
fn local_32_mib_data_round_trips_with_bounded_export_memory() {
    let _serial = serial();
    let message = 1 << 20;
    let mut kernel = local_with(message);
    let (peak, took) = round_trip(&mut kernel, big_data(8192), 4000);
    eprintln!("export of 32 MiB: {took:?}, peak extra heap {peak} bytes");
    assert!(
        peak <= 4 * message,
        "export peak {peak} bytes > 4 x the {message}-byte message limit"
    );
}

/// The check at full size: 256 MiB, default (4 MiB) messages. Release
/// mode only (about a minute of hashing in a debug build):
/// `cargo test --release -p capbox-tests --test large_caps -- --ignored`.
#[test]
#[ignore = "256 MiB: run in release with --ignored (measurement in docs/kernel.md)"]
fn local_256_mib_data_round_trips_with_bounded_export_memory() {
    let _serial = serial();
    let message = SandboxConfig::default().message_bytes;
    let mut kernel = local_with(message);
    let (peak, took) = round_trip(&mut kernel, big_data(65536), 40_000);
    eprintln!("export of 256 MiB: {took:?}, peak extra heap {peak} bytes");
    assert!(
        peak <= 4 * message,
        "export peak {peak} bytes > 4 x the {message}-byte message limit"
    );
}

/// The same round trip in the guest with 64 KiB messages: a 320 KiB Data
/// (80 pages) spans five messages, twenty chunks.
#[test]
fn sandbox_data_over_several_messages_round_trips() {
    let _serial = serial();
    let Some(mut kernel) = small_message_sandbox() else {
        return;
    };
    round_trip(&mut kernel, big_data(80), 17);
}

fn large_cnode(slots: u32) -> Cap {
    let mut cnode = CNode::new();
    for slot in 0..slots {
        let target = Cap::Data(Data::from_bytes(&slot.to_le_bytes()).unwrap());
        cnode
            .set(slot, CapHashOrRef::Hash(target.hash().unwrap()))
            .unwrap();
    }
    Cap::CNode(cnode)
}

fn large_image(code_len: usize) -> Cap {
    let mut image = probe::probe_image();
    image.code.extend((0..code_len).map(|i| (i % 251) as u8));
    image.ro_data = vec![7; 3000];
    Cap::Image(image)
}

/// A CNode and an Image larger than a message publish in chunks, export by
/// ranges (to a writer and through `get_cap`) and come back equal.
fn cnode_and_image_round_trip(kernel: &mut Kernel, slots: u32, code_len: usize) {
    for cap in [large_cnode(slots), large_image(code_len)] {
        assert!(
            kernel.is_large_cap(&cap),
            "{:?} must need chunks",
            cap.kind()
        );
        let hash = kernel.put_cap(&cap).unwrap();
        assert_eq!(hash, cap.hash().unwrap());
        let mut out = Vec::new();
        let n = kernel.export_to(&hash, &mut out).unwrap();
        assert_eq!(n as usize, out.len());
        assert_eq!(out, cap.encode().unwrap());
        assert_eq!(kernel.get_cap(&hash).unwrap(), cap);
    }
}

#[test]
fn local_large_cnode_and_image_round_trip() {
    let _serial = serial();
    // 60 000 slots: 2.1 MiB encoded; code 3 MiB; messages 1 MiB.
    cnode_and_image_round_trip(&mut local_with(1 << 20), 60_000, 3 << 20);
}

#[test]
fn sandbox_large_cnode_and_image_round_trip() {
    let _serial = serial();
    let Some(mut kernel) = small_message_sandbox() else {
        return;
    };
    // 2 000 slots: 72 KiB encoded; code 100 KiB; messages 64 KiB.
    cnode_and_image_round_trip(&mut kernel, 2_000, 100 << 10);
}

fn refused(result: Result<Vec<[u8; 32]>, KernelError>, kind: ErrorKind, what: &str) {
    match result {
        Err(KernelError::Refused(e)) => assert_eq!(e.kind, kind, "{what}: {e}"),
        other => panic!("{what}: expected a {kind:?} refusal, got {other:?}"),
    }
}

/// Hostile chunk sequences: each is refused with a typed error, leaves no
/// upload behind and no cap published; afterwards the honest upload of
/// the same cap still works and exports with the right hash.
fn hostile_uploads(kernel: &mut Kernel) {
    let cap = Cap::Data(big_data(6));
    let hash = cap.hash().unwrap();
    let bytes = cap.encode().unwrap();
    let total = bytes.len() as u64;
    let begin = |id, total, hash: CapHash| StreamRequest::Begin {
        id,
        kind: CapKind::Data.tag(),
        total,
        hash: hash.0,
    };
    let chunk = |id, offset: usize, len: usize| StreamRequest::Chunk {
        id,
        offset: offset as u64,
        bytes: &bytes[offset..offset + len],
    };

    // Out of order: the second chunk skips ahead; the upload is dropped.
    kernel.stream_call(&begin(1, total, hash)).unwrap();
    kernel.stream_call(&chunk(1, 0, 5000)).unwrap();
    refused(
        kernel.stream_call(&chunk(1, 6000, 100)),
        ErrorKind::BadMessage,
        "out of order",
    );
    refused(
        kernel.stream_call(&chunk(1, 5000, 100)),
        ErrorKind::BadMessage,
        "after a refusal",
    );
    refused(
        kernel.stream_call(&StreamRequest::End { id: 1 }),
        ErrorKind::BadMessage,
        "end",
    );

    // Wrong totals: not header + whole records; or fewer records than the
    // header's count; or more bytes than announced.
    refused(
        kernel.stream_call(&begin(2, total + 1, hash)),
        ErrorKind::BadCap,
        "odd total",
    );
    let short = total - 4100;
    kernel.stream_call(&begin(3, short, hash)).unwrap();
    refused(
        kernel.stream_call(&chunk(3, 0, 100)),
        ErrorKind::BadCap,
        "count != total",
    );
    kernel.stream_call(&begin(4, total, hash)).unwrap();
    let too_long = [bytes.as_slice(), &[1u8; 10]].concat();
    let long = StreamRequest::Chunk {
        id: 4,
        offset: 0,
        bytes: &too_long,
    };
    refused(
        kernel.stream_call(&long),
        ErrorKind::BadMessage,
        "past the total",
    );
    // Ending early.
    kernel.stream_call(&begin(5, total, hash)).unwrap();
    kernel.stream_call(&chunk(5, 0, 4000)).unwrap();
    refused(
        kernel.stream_call(&StreamRequest::End { id: 5 }),
        ErrorKind::BadMessage,
        "early end",
    );

    // Wrong hash: every byte right, the expected hash not.
    let wrong = CapHash([0x5a; 32]);
    kernel.stream_call(&begin(6, total, wrong)).unwrap();
    kernel.stream_call(&chunk(6, 0, bytes.len())).unwrap();
    refused(
        kernel.stream_call(&StreamRequest::End { id: 6 }),
        ErrorKind::HashMismatch,
        "hash",
    );
    for h in [hash, wrong] {
        match kernel.read_range(&h, 0, 100, false) {
            Err(KernelError::Refused(e)) => assert_eq!(e.kind, ErrorKind::MissingCap),
            other => panic!("{h}: a refused upload published something: {other:?}"),
        }
    }

    // A bad kind tag, a zero total, a chunk for another upload.
    let bad_kind = StreamRequest::Begin {
        id: 7,
        kind: 9,
        total,
        hash: hash.0,
    };
    refused(kernel.stream_call(&bad_kind), ErrorKind::BadCap, "kind tag");
    refused(
        kernel.stream_call(&begin(8, 0, hash)),
        ErrorKind::BadCap,
        "zero total",
    );
    kernel.stream_call(&begin(9, total, hash)).unwrap();
    refused(
        kernel.stream_call(&chunk(10, 0, 100)),
        ErrorKind::BadMessage,
        "other id",
    );
    // `sweep` ends an abandoned upload.
    kernel.stream_call(&chunk(9, 0, 100)).unwrap();
    kernel.sweep().unwrap();
    refused(
        kernel.stream_call(&chunk(9, 100, 100)),
        ErrorKind::BadMessage,
        "swept",
    );

    // The honest upload, then a chunk
    // after its end.
    kernel.stream_call(&begin(11, total, hash)).unwrap();
    for offset in (0..bytes.len()).step_by(3000) {
        let len = 3000.min(bytes.len() - offset);
        kernel.stream_call(&chunk(11, offset, len)).unwrap();
    }
    let got = kernel.stream_call(&StreamRequest::End { id: 11 }).unwrap();
    assert_eq!(got, vec![hash.0]);
    refused(
        kernel.stream_call(&chunk(11, 0, 10)),
        ErrorKind::BadMessage,
        "chunk after end",
    );

    // Export: an offset past the end is refused; at the end, empty.
    match kernel.read_range(&hash, total + 1, 10, false) {
        Err(KernelError::Refused(e)) => assert_eq!(e.kind, ErrorKind::BadMessage),
        other => panic!("offset past the end: {other:?}"),
    }
    assert_eq!(
        kernel.read_range(&hash, total, 10, false).unwrap(),
        (total, vec![])
    );
    let mut out = Vec::new();
    kernel.export_to(&hash, &mut out).unwrap();
    assert_eq!(out, bytes);

    // Garbage requests: typed refusals, and the kernel still serves.
    for garbage in [
        &[][..],
        &[0u8],
        &[2u8; 16],
        &[1u8; 49],
        &[3u8; 10],
        &[77u8; 45],
    ] {
        let reply = kernel
            .call_raw(GuestFunction::PutCapStream, garbage)
            .unwrap();
        let err = abi::decode_put_cap_reply(&reply).unwrap().unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadMessage, "{garbage:?}");
        let reply = kernel
            .call_raw(GuestFunction::GetCapRange, garbage)
            .unwrap();
        let err = abi::decode_range_reply(&reply).unwrap().unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadMessage, "{garbage:?}");
    }
    assert_eq!(
        kernel.read_range(&hash, 0, 13, false).unwrap(),
        (total, bytes[..13].to_vec())
    );
}

/// Publishing from a reader: bytes that are not the named cap are refused
/// by the kernel; the store's blob reader feeds the upload.
fn publish_from_readers(kernel: &mut Kernel) {
    let cap = Cap::Data(big_data(40));
    let hash = cap.hash().unwrap();
    let bytes = cap.encode().unwrap();
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    let err = kernel
        .put_encoded_from(&mut tampered.as_slice(), tampered.len() as u64, &hash)
        .unwrap_err();
    assert!(
        matches!(&err, KernelError::Refused(e) if e.kind == ErrorKind::HashMismatch),
        "{err}"
    );
    assert!(!kernel.is_published(&hash));
    let err = kernel
        .put_encoded_from(&mut &bytes[..100], bytes.len() as u64, &hash)
        .unwrap_err();
    assert!(matches!(err, KernelError::TransferIo(_)), "{err}");

    let dir = std::env::temp_dir().join(format!(
        "capbox-large-readers-{}-{}",
        std::process::id(),
        kernel.backend()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).unwrap();
    store
        .put_from_reader(
            &hash,
            CapKind::Data,
            bytes.len() as u64,
            &mut bytes.as_slice(),
        )
        .unwrap();
    kernel.put_from_store(&store, &hash).unwrap();
    assert!(kernel.is_published(&hash));
    let mut out = Vec::new();
    kernel.export_to(&hash, &mut out).unwrap();
    assert_eq!(out, bytes);
    std::fs::remove_dir_all(&dir).unwrap();
}

capbox_tests::backend_tests! {
    fn hostile_chunk_sequences_are_refused_and_corrupt_nothing(kernel: &mut Kernel) {
        let _serial = serial();
        hostile_uploads(kernel);
    }

    fn caps_publish_from_readers_and_the_store(kernel: &mut Kernel) {
        let _serial = serial();
        publish_from_readers(kernel);
    }
}

/// The store's streamed writer keeps nothing that is not its blob, and
/// leaves no temp file behind; its reader fails on a corrupted file.
#[test]
fn store_streams_only_verified_blobs() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("capbox-large-store-only-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).unwrap();
    let cap = Cap::Data(big_data(5));
    let hash = cap.hash().unwrap();
    let bytes = cap.encode().unwrap();
    let total = bytes.len() as u64;
    let temps = || std::fs::read_dir(dir.join("tmp")).map_or(0, |d| d.count());

    let mut tampered = bytes.clone();
    tampered[100] ^= 1;
    let err = store
        .put_from_reader(&hash, CapKind::Data, total, &mut tampered.as_slice())
        .unwrap_err();
    assert!(
        matches!(err, capbox::StoreError::HashMismatch { .. }),
        "{err}"
    );
    assert!(!store.contains(&hash).unwrap());
    // Not canonical (a zero page record): refused while writing.
    let mut writer = store.blob_writer(&hash, CapKind::Data, total).unwrap();
    let mut zero_page = bytes.clone();
    zero_page[13 + 4..13 + 4100].fill(0);
    assert!(writer.write_chunk(&zero_page).is_err());
    drop(writer);
    // Dropped uncommitted.
    let mut writer = store.blob_writer(&hash, CapKind::Data, total).unwrap();
    writer.write_chunk(&bytes[..5000]).unwrap();
    drop(writer);
    assert_eq!(temps(), 0, "a dropped writer leaves its temp file");
    assert!(!store.contains(&hash).unwrap());

    let mut writer = store.blob_writer(&hash, CapKind::Data, total).unwrap();
    for piece in bytes.chunks(3333) {
        writer.write_chunk(piece).unwrap();
    }
    writer.commit().unwrap();
    assert_eq!(store.get(&hash).unwrap(), Some(cap));
    assert_eq!(temps(), 0);

    // Corrupt a page in place (store format 4 keeps a Data's pages in
    // `pages/`, docs/store.md "Data pages"): the reader refuses the Data.
    let fanout = std::fs::read_dir(dir.join("pages"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let page = std::fs::read_dir(fanout.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut on_disk = std::fs::read(&page).unwrap();
    on_disk[900] ^= 1;
    std::fs::write(&page, &on_disk).unwrap();
    assert!(matches!(
        store.blob_reader(&hash),
        Err(capbox::StoreError::CorruptBlob { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cap that came in by upload is never evicted (the host keeps no copy
/// to fetch it back from): with a 128 KiB blob budget, a 320 KiB Data
/// stays through eviction passes and the invocation that writes it runs.
#[test]
fn local_uploaded_caps_survive_eviction() {
    let _serial = serial();
    let config = SandboxConfig {
        message_bytes: 64 << 10,
        blob_budget: Some(capbox_tests::TINY_BUDGET),
        ..SandboxConfig::default()
    };
    let mut kernel = Kernel::with_config(BackendChoice::Local, config).unwrap();
    let data = big_data(80);
    let data_hash = kernel.put_cap(&Cap::Data(data.clone())).unwrap();
    assert!(!kernel.host_has(&data_hash));
    // Many small blobs push the directory over its budget.
    let filler: Vec<Cap> = (0..200u32)
        .map(|i| Cap::Data(Data::from_bytes(&[i as u8 | 1; 3000]).unwrap()))
        .collect();
    kernel.put_caps(&filler).unwrap();
    let (caps, instance) = probe::probe_instance(&[(1, data_hash)]);
    kernel.put_caps(&caps).unwrap();
    assert!(
        kernel.stats().unwrap().evictions > 0,
        "the budget must bite"
    );
    let o = kernel
        .invoke(
            &instance,
            Probe::Op(KernelOp::DataWrite).index(),
            [1, 0, u64::from(RW), PAGE_SIZE as u64],
            1_000_000,
        )
        .unwrap();
    assert_eq!((o.exit, o.r7), (ExitReason::Halt, OK), "{o:?}");
    let mut expected = data;
    expected.write(0, &probe::pattern()).unwrap();
    assert_eq!(slot_of(&mut kernel, &o.instance, 1), expected.hash());
}
