//! Data pages on PostgreSQL (schema 2, docs/store.md "Data pages"): the
//! issue's check in table sizes, versions sharing pages, gc reclaiming a
//! page only when no reachable Data uses it, verify finding a corrupt page,
//! and schema-1 Data rows (whole) still readable. Against a throw-away
//! cluster (tests/pg_support); without PostgreSQL each test says SKIPPED.

mod pg_support;
mod store_support;

use capbox::shared::abi::GuestFunction;
use capbox::shared::cap::{Cap, Data, PAGE_SIZE, data_page_digest};
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::writer_image;
use capbox::{
    BackendChoice, Invocation, Kernel, PgStore, Session, SessionOptions, StoreBackend,
    StoreOptions, VerifyProblem,
};
use pg_support::PgServer;
use store_support::{cnode, image, instance};

fn open(url: &str) -> PgStore {
    PgStore::open(url, StoreOptions::default()).expect("open the PostgreSQL store")
}

/// Bytes of the cap tables (rows, TOAST and indexes).
fn cap_table_bytes(client: &mut postgres::Client) -> u64 {
    let row = client
        .query_one(
            "SELECT (pg_total_relation_size('capbox_blobs')
                   + pg_total_relation_size('capbox_data_parts'))::int8",
            &[],
        )
        .unwrap();
    row.get::<_, i64>(0) as u64
}

fn write_at(offset: u64, value: u64) -> Invocation {
    Invocation {
        instance: None,
        endpoint: 0,
        args: [offset, value, 0, 0],
        gas: 1_000,
        input: Vec::new(),
        timeout: None,
    }
}

fn export_reply_bytes(kernel: &Kernel) -> u64 {
    [
        GuestFunction::GetCap,
        GuestFunction::GetCapRange,
        GuestFunction::DataNodes,
    ]
    .iter()
    .map(|&f| kernel.reply_bytes(f))
    .sum()
}

/// The check on PostgreSQL: 16 MiB of non-zero memory, 100
/// invocations changing one page each grow the cap tables by at most
/// 100 × 16 KiB, and each export moves at most 16 KiB + the path's nodes.
#[test]
fn pg_sixteen_mib_memory_one_page_invocations_grow_tables_by_pages() {
    let Some(pg) = PgServer::get("pg_sixteen_mib") else {
        return;
    };
    let url = pg.fresh_db("sixteen");
    let store = open(&url);
    let mut client = pg.client_for(&url);
    // No eviction: with the default budget the kernel spills each old
    // 16 MiB version to the host whole (`spill_blobs`, not an export).
    let config = capbox::SandboxConfig {
        blob_budget: Some(capbox::shared::BlobBudget::UNBOUNDED),
        ..capbox::SandboxConfig::default()
    };
    let kernel = Kernel::with_config(BackendChoice::Local, config).unwrap();
    let memory_len = 16 << 20;
    let pages = (memory_len / PAGE_SIZE) as u64;
    let mut session = Session::create(
        kernel,
        store,
        "w",
        &writer_image(memory_len),
        SessionOptions::default(),
    )
    .unwrap();
    let initial = cap_table_bytes(&mut client);
    let rounds = 100u64;
    let mut most_moved = 0;
    for round in 0..rounds {
        let before = export_reply_bytes(session.kernel_mut());
        let page = (round * 37) % pages;
        let committed = session
            .invoke(&write_at(page * PAGE_SIZE as u64 + 8, round + 1))
            .unwrap();
        assert_eq!(committed.outcome.exit, ExitReason::Halt);
        let moved = export_reply_bytes(session.kernel_mut()) - before;
        most_moved = most_moved.max(moved);
        assert!(moved <= 16 * 1024 + 12 * 64, "round {round}: {moved} bytes");
    }
    let grown = cap_table_bytes(&mut client) - initial;
    eprintln!(
        "PostgreSQL, 16 MiB memory: {rounds} one-page invocations grew the cap tables by \
         {grown} bytes ({} per invocation); an export moved at most {most_moved} bytes",
        grown / rounds
    );
    assert!(grown <= rounds * 16 * 1024, "{grown} bytes");
    let report = session.store().verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// Two hosts (two kernels, two connections) take turns on one head with a
/// 1 MiB memory: after the first fetch, each turn's new memory reaches the
/// other kernel as a Data delta of the pages changed since its own last
/// state (docs/store.md "Data deltas"), and every write lands once.
#[test]
fn pg_hosts_taking_turns_fetch_memory_as_deltas() {
    let Some(pg) = PgServer::get("pg_deltas") else {
        return;
    };
    let url = pg.fresh_db("deltas");
    let memory_len = 1 << 20;
    let image = writer_image(memory_len);
    let mut first = Session::create(
        Kernel::new(BackendChoice::Local).unwrap(),
        open(&url),
        "w",
        &image,
        SessionOptions::default(),
    )
    .unwrap();
    let mut second = Session::open(
        Kernel::new(BackendChoice::Local).unwrap(),
        open(&url),
        "w",
        SessionOptions::default(),
    )
    .unwrap();
    let mut expected = image.rw_data.clone();
    let turns = 8u64;
    for turn in 0..turns {
        let offset = (turn * 5 % 256) * PAGE_SIZE as u64 + 24;
        let session = if turn % 2 == 0 {
            &mut first
        } else {
            &mut second
        };
        let committed = session.invoke(&write_at(offset, turn + 1)).unwrap();
        assert_eq!(committed.outcome.exit, ExitReason::Halt);
        expected[offset as usize..offset as usize + 8].copy_from_slice(&(turn + 1).to_le_bytes());
    }
    let store = open(&url);
    let head = store.head("w").unwrap().unwrap();
    let Some(Cap::Instance(instance)) = store.get(&head).unwrap() else {
        panic!("the head is not an instance");
    };
    let Some(Cap::Data(memory)) = store.get(instance.memory.as_hash().unwrap()).unwrap() else {
        panic!("no memory");
    };
    assert_eq!(memory.to_vec(), expected);
    let stats = [&mut first, &mut second].map(|s| s.kernel_mut().delta_stats());
    eprintln!("PostgreSQL, two hosts taking turns on a 1 MiB memory: {stats:?}");
    let sent: u64 = stats.iter().map(|s| s.sent).sum();
    let delta_bytes: u64 = stats.iter().map(|s| s.delta_bytes).sum();
    assert!(sent >= turns - 2, "{stats:?}");
    assert!(
        delta_bytes <= sent * 3 * (PAGE_SIZE as u64 + 5) + sent * 45,
        "{stats:?}"
    );
    assert!(store.verify().unwrap().is_ok());
}

/// A Data of `pages` pages, page i filled with `seed + i` (seed ≥ 1).
fn big_data(pages: usize, seed: u8) -> Data {
    let bytes: Vec<u8> = (0..pages * PAGE_SIZE)
        .map(|i| seed + (i / PAGE_SIZE) as u8)
        .collect();
    Data::from_bytes(&bytes).unwrap()
}

#[test]
fn pg_versions_share_pages_and_gc_reclaims_them_only_when_unused() {
    let Some(pg) = PgServer::get("pg_shared_pages") else {
        return;
    };
    let url = pg.fresh_db("shared");
    let store = open(&url);
    let img = image(1);
    let root_cnode = cnode(&[]);
    store.put(&img).unwrap();
    store.put(&root_cnode).unwrap();
    let v1 = big_data(8, 20);
    let mut v2 = v1.clone();
    v2.write_page(3, &[0xaa; PAGE_SIZE]).unwrap();
    let put_version = |data: &Data| {
        let memory = store.put(&Cap::Data(data.clone())).unwrap();
        let inst = instance(img.hash().unwrap(), memory, root_cnode.hash().unwrap());
        store.put(&inst).unwrap()
    };
    let i1 = put_version(&v1);
    assert_eq!(store.stats().unwrap().data_parts, 8 + 7);
    let i2 = put_version(&v2);
    assert_eq!(store.stats().unwrap().data_parts, 8 + 7 + 4);
    store.set_head("old", &i1).unwrap();
    store.set_head("new", &i2).unwrap();
    assert_eq!(store.gc().unwrap().removed_bytes, 0);

    let has_page = |client: &mut postgres::Client, page: &[u8; PAGE_SIZE]| {
        client
            .query_opt(
                "SELECT 1 FROM capbox_data_parts WHERE digest = $1",
                &[&data_page_digest(page).as_slice()],
            )
            .unwrap()
            .is_some()
    };
    let mut client = pg.client_for(&url);
    store.remove_head("old").unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.removed_entries, 2, "{report:?}");
    assert!(!has_page(&mut client, v1.page(3).unwrap()));
    assert!(has_page(&mut client, v1.page(0).unwrap()));
    assert!(has_page(&mut client, v2.page(3).unwrap()));
    assert_eq!(store.stats().unwrap().data_parts, 8 + 7);
    let v2_hash = Cap::Data(v2.clone()).hash().unwrap();
    assert_eq!(store.get(&v2_hash).unwrap(), Some(Cap::Data(v2.clone())));

    // A corrupt page: verify names the Data.
    client
        .execute(
            "UPDATE capbox_data_parts SET bytes = $2 WHERE digest = $1",
            &[
                &data_page_digest(v2.page(5).unwrap()).as_slice(),
                &vec![9u8; PAGE_SIZE],
            ],
        )
        .unwrap();
    let report = store.verify().unwrap();
    assert!(
        matches!(&report.problems[..], [VerifyProblem::CorruptBlob { hash, reason }]
            if *hash == v2_hash && reason.contains("corrupt")),
        "{:?}",
        report.problems
    );

    store.remove_head("new").unwrap();
    store.gc().unwrap();
    assert_eq!(store.stats().unwrap().data_parts, 0);
}

#[test]
fn pg_schema_1_data_rows_stay_readable() {
    let Some(pg) = PgServer::get("pg_schema_1_rows") else {
        return;
    };
    let url = pg.fresh_db("schema1");
    let store = open(&url);
    // A row as schema 1 wrote it: layout 0, the whole encoding.
    let cap = Cap::Data(big_data(3, 50));
    let hash = cap.hash().unwrap();
    let bytes = cap.encode().unwrap();
    let mut client = pg.client_for(&url);
    client
        .execute(
            "INSERT INTO capbox_blobs (hash, kind, size, layout, bytes) VALUES ($1, 0, $2, 0, $3)",
            &[&hash.as_bytes().as_slice(), &(bytes.len() as i64), &bytes],
        )
        .unwrap();
    assert_eq!(store.get(&hash).unwrap(), Some(cap.clone()));
    assert_eq!(store.get_encoded(&hash).unwrap(), Some(bytes));
    assert!(store.verify().unwrap().is_ok());
}
