//! The PostgreSQL store through the library: blobs, compare-and-swap head
//! moves with history, gc pinning (also against a concurrent writer),
//! verify, durable sessions, and typed open errors. Against a throw-away
//! cluster (tests/pg_support); without PostgreSQL each test says SKIPPED.

mod pg_support;
mod store_support;

use std::sync::Arc;

use capbox::shared::kernel::sample::sample_image;
use capbox::shared::{Cap, CapHash};
use capbox::{
    HeadChange, Invocation, Kernel, PgError, PgStore, Session, SessionOptions, StoreBackend,
    StoreError, StoreOptions, VerifyProblem,
};
use pg_support::PgServer;
use store_support::{Graph, data};

fn open(url: &str) -> PgStore {
    PgStore::open(url, StoreOptions::default()).expect("open the PostgreSQL store")
}

fn put_all(store: &dyn StoreBackend, graph: &Graph) {
    for cap in &graph.caps {
        store.put(cap).unwrap();
    }
}

fn change(action: &str) -> HeadChange {
    HeadChange::action(action)
}

#[test]
fn pg_blobs_round_trip_and_every_put_and_get_is_hash_checked() {
    let Some(pg) = PgServer::get("pg_blobs_round_trip") else {
        return;
    };
    let store = open(&pg.fresh_db("blobs"));
    let cap = data(b"hello, shared store");
    let hash = store.put(&cap).unwrap();
    assert_eq!(hash, cap.hash().unwrap());
    assert!(store.contains(&hash).unwrap());
    assert_eq!(store.get(&hash).unwrap(), Some(cap.clone()));
    let bytes = cap.encode().unwrap();
    assert_eq!(store.get_encoded(&hash).unwrap(), Some(bytes.clone()));
    // Idempotent, and the same through put_encoded.
    assert_eq!(store.put_encoded(&bytes).unwrap(), hash);
    assert_eq!(store.stats().unwrap().entries, 1);
    // A Data row is its 41-byte root record; its page is a part (schema 2).
    assert_eq!(store.stats().unwrap().bytes, 41);
    assert_eq!(store.stats().unwrap().data_part_bytes, 4096);

    let other = CapHash::from_bytes([7; 32]);
    assert!(!store.contains(&other).unwrap());
    assert_eq!(store.get(&other).unwrap(), None);
    assert!(matches!(
        store.put_encoded_with_hash(&other, &bytes),
        Err(StoreError::HashMismatch { expected, actual }) if expected == other && actual == hash
    ));
    assert!(matches!(
        store.put_encoded(&[0xff, 1, 2]),
        Err(StoreError::InvalidEncoding { .. })
    ));
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].hash, hash);
    assert_eq!(list[0].size, 41);

    // A row damaged behind the store's back is a CorruptBlob on get, never
    // a wrong answer; putting the cap again repairs it.
    let mut client = pg.client_for(&store.location());
    client
        .execute(
            "UPDATE capbox_blobs SET bytes = $2 WHERE hash = $1",
            &[
                &hash.as_bytes().as_slice(),
                &data(b"other").encode().unwrap(),
            ],
        )
        .unwrap();
    assert!(matches!(
        store.get(&hash),
        Err(StoreError::CorruptBlob { hash: h, .. }) if h == hash
    ));
    store.put(&cap).unwrap();
    assert_eq!(store.get(&hash).unwrap(), Some(cap));
}

#[test]
fn pg_cas_moves_refuse_lost_races_and_keep_a_checked_history() {
    let Some(pg) = PgServer::get("pg_cas_moves") else {
        return;
    };
    let store = open(&pg.fresh_db("cas"));
    let (a, b) = (Graph::new(1), Graph::new(2));
    // A head may only point at a complete graph.
    assert!(matches!(
        store.set_head_if("h", None, &a.instance(), &change("new")),
        Err(StoreError::IncompleteGraph { .. })
    ));
    put_all(&store, &a);
    put_all(&store, &b);
    assert!(matches!(
        store.set_head("h", &a.hashes[1]),
        Err(StoreError::HeadNotInstance { .. })
    ));
    assert_eq!(
        store
            .set_head_if("h", None, &a.instance(), &change("new"))
            .unwrap(),
        1
    );
    // A creator that expected no head loses, naming what is there.
    match store.set_head_if("h", None, &b.instance(), &change("new")) {
        Err(StoreError::HeadMoved {
            expected: None,
            found: Some(found),
            ..
        }) => assert_eq!(found, a.instance()),
        other => panic!("expected HeadMoved, got {other:?}"),
    }
    // The right expectation moves it; a stale one changes nothing.
    let seq = store
        .set_head_if("h", Some(&a.instance()), &b.instance(), &change("invoke"))
        .unwrap();
    assert_eq!(seq, 2);
    assert!(matches!(
        store.set_head_if("h", Some(&a.instance()), &a.instance(), &change("invoke")),
        Err(StoreError::HeadMoved { .. })
    ));
    assert_eq!(store.head_state("h").unwrap(), Some((b.instance(), 2)));
    // save_graph_if: several records in one move.
    let changes = [change("invoke"), change("invoke")];
    let (_, seq) = store
        .save_graph_if(
            "h",
            Some(Some(&b.instance())),
            &a.instance(),
            &mut |_| None,
            &changes,
        )
        .unwrap();
    assert_eq!(seq, 4);
    let history = store.history("h").unwrap();
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(history[0].prev, None);
    assert_eq!(history[1].prev, Some(a.instance()));
    assert_eq!(history[1].new, b.instance());
    assert_eq!(history[2].prev, Some(b.instance()));
    assert_eq!(history[3].prev, Some(a.instance()));
    assert_eq!(history[3].new, a.instance());
    assert_eq!(history[1].change.action, "invoke");

    // A damaged history is reported, by history() and by verify.
    let mut client = pg.client_for(&store.location());
    client
        .execute(
            "DELETE FROM capbox_history WHERE head = 'h' AND seq = 2",
            &[],
        )
        .unwrap();
    assert!(matches!(
        store.history("h"),
        Err(StoreError::CorruptHistory { .. })
    ));
    let report = store.verify().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, VerifyProblem::BadHistory { head, .. } if head == "h")),
        "{report:?}"
    );

    // Removing a head removes its history; a new head of that name starts at 1.
    assert_eq!(store.remove_head("h").unwrap(), Some(a.instance()));
    assert_eq!(store.head("h").unwrap(), None);
    assert_eq!(store.history("h").unwrap(), Vec::new());
    assert_eq!(
        store
            .set_head_if("h", None, &b.instance(), &change("new"))
            .unwrap(),
        1
    );
}

#[test]
fn pg_gc_and_prune_keep_every_blob_a_head_pins() {
    let Some(pg) = PgServer::get("pg_gc_pinning") else {
        return;
    };
    let store = open(&pg.fresh_db("gc"));
    let (kept, loose) = (Graph::new(3), Graph::new(4));
    put_all(&store, &kept);
    put_all(&store, &loose);
    store.set_head("keep", &kept.instance()).unwrap();
    // Prune to nothing: only the pinned graph stays, and it says the
    // limits could not be met.
    let report = store.prune(0, 0).unwrap();
    assert!(!report.limits_met);
    assert_eq!(report.pinned_entries, kept.hashes.len() as u64);
    for hash in &kept.hashes {
        assert!(store.contains(hash).unwrap(), "pinned {hash} was pruned");
    }
    // The loose graph shares no blob with the kept one: all of it went.
    for hash in &loose.hashes {
        assert!(!store.contains(hash).unwrap(), "unpinned {hash} survived");
    }
    put_all(&store, &loose);
    let report = store.gc().unwrap();
    assert_eq!(report.removed_entries, loose.hashes.len() as u64);
    assert_eq!(report.remaining_entries, kept.hashes.len() as u64);
    // gc is prune(0, 0), as on the filesystem: met only by an empty store.
    assert!(!report.limits_met);
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn pg_a_concurrent_gc_never_breaks_a_save() {
    let Some(pg) = PgServer::get("pg_gc_vs_save") else {
        return;
    };
    let url = pg.fresh_db("gc_race");
    let writer = open(&url);
    let collector = open(&url);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                collector.gc().unwrap();
                runs += 1;
            }
            runs
        })
    };
    // Each save puts a fresh graph (unpinned until its head moves) while
    // gc runs in a loop on another connection: every save must land with
    // its whole graph, because gc waits for head moves and vice versa.
    let mut expected = None;
    for round in 0..40u8 {
        let graph = Graph::new(round.wrapping_add(10));
        let caps: std::collections::HashMap<CapHash, Cap> = graph
            .hashes
            .iter()
            .copied()
            .zip(graph.caps.iter().cloned())
            .collect();
        for cap in &graph.caps {
            writer.put(cap).unwrap();
        }
        let (_, seq) = writer
            .save_graph_if(
                "g",
                Some(expected.as_ref()),
                &graph.instance(),
                &mut |h| caps.get(h).cloned(),
                &[change("save")],
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(seq, u64::from(round) + 1);
        expected = Some(graph.instance());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = gc_thread.join().unwrap();
    eprintln!("{runs} gc runs alongside 40 saves");
    let report = writer.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn pg_verify_reports_a_corrupted_blob_row_and_a_missing_blob() {
    let Some(pg) = PgServer::get("pg_verify") else {
        return;
    };
    let store = open(&pg.fresh_db("verify"));
    let graph = Graph::new(5);
    put_all(&store, &graph);
    store.set_head("v", &graph.instance()).unwrap();
    let clean = store.verify().unwrap();
    assert!(clean.is_ok(), "{clean:?}");
    assert_eq!(clean.blobs, graph.hashes.len() as u64);
    assert_eq!(clean.heads, 1);

    let mut client = pg.client_for(&store.location());
    // Flip one byte of the memory blob, delete the image.
    let memory = graph.hashes[1];
    client
        .execute(
            "UPDATE capbox_blobs SET bytes = overlay(bytes placing '\\x55'::bytea from 3)
             WHERE hash = $1",
            &[&memory.as_bytes().as_slice()],
        )
        .unwrap();
    let image = graph.hashes[0];
    client
        .execute(
            "DELETE FROM capbox_blobs WHERE hash = $1",
            &[&image.as_bytes().as_slice()],
        )
        .unwrap();
    let report = store.verify().unwrap();
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, VerifyProblem::CorruptBlob { hash, .. } if *hash == memory)),
        "{report:?}"
    );
    assert!(
        report.problems.iter().any(
            |p| matches!(p, VerifyProblem::MissingBlob { head, hash } if head == "v" && *hash == image)
        ),
        "{report:?}"
    );
}

#[test]
fn pg_durable_sessions_commit_every_invocation_with_its_record() {
    let Some(pg) = PgServer::get("pg_sessions") else {
        return;
    };
    let url = pg.fresh_db("sessions");
    let kernel = Kernel::new(capbox::BackendChoice::Local).unwrap();
    let mut session = Session::create(
        kernel,
        open(&url),
        "counter",
        &sample_image(),
        SessionOptions::default(),
    )
    .unwrap();
    let call = Invocation {
        instance: None,
        endpoint: 0,
        args: [0; 4],
        gas: 1_000_000,
        input: Vec::new(),
        timeout: None,
    };
    for i in 1..=5u64 {
        let committed = session.invoke(&call).unwrap();
        assert_eq!(committed.seq, Some(i + 1));
    }
    // A second connection (another host, as far as the store can tell).
    let other = open(&url);
    let (head, seq) = other.head_state("counter").unwrap().unwrap();
    assert_eq!((head, seq), (session.state(), 6));
    let history = other.history("counter").unwrap();
    assert_eq!(history.len(), 6);
    assert_eq!(history[0].change.action, "new");
    assert!(history[1..].iter().all(|e| {
        e.change.action == "invoke"
            && e.change.endpoint == Some(0)
            && e.change
                .outcome
                .as_deref()
                .is_some_and(|o| o.starts_with("exit=Halt"))
    }));
    assert!(other.verify().unwrap().is_ok());
}

#[test]
fn pg_open_errors_are_typed_and_never_show_the_password() {
    // No server needed: nothing listens on port 1.
    let refused = PgStore::open(
        "postgres://u:hunter2@127.0.0.1:1/db",
        StoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::Postgres(PgError::ConnectionRefused { .. })
        ),
        "{refused:?}"
    );
    let text = format!("{refused} {refused:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(matches!(
        PgStore::open("postgres://h:99999999/db", StoreOptions::default()),
        Err(StoreError::Postgres(PgError::BadUrl { .. }))
    ));

    let Some(pg) = PgServer::get("pg_open_errors") else {
        return;
    };
    let url = pg.fresh_db("open");
    let unknown_user = url.replace("capbox@", "nosuchuser@");
    assert!(
        matches!(
            PgStore::open(&unknown_user, StoreOptions::default()),
            Err(StoreError::Postgres(PgError::AuthFailed { .. }))
        ),
        "an unknown role is a refused login"
    );
    assert!(matches!(
        PgStore::open(&pg.url("no_such_db"), StoreOptions::default()),
        Err(StoreError::Postgres(PgError::NoDatabase { .. }))
    ));
    // Reading creates nothing.
    assert!(matches!(
        PgStore::open_existing(&url, StoreOptions::default()),
        Err(StoreError::Postgres(PgError::NoSchema { .. }))
    ));
    open(&url);
    PgStore::open_existing(&url, StoreOptions::default()).unwrap();
    // A schema from a newer capbox is refused, by both opens.
    pg.client_for(&url)
        .execute("UPDATE capbox_schema SET version = 99", &[])
        .unwrap();
    for result in [
        PgStore::open(&url, StoreOptions::default()),
        PgStore::open_existing(&url, StoreOptions::default()),
    ] {
        assert!(
            matches!(
                result,
                Err(StoreError::Postgres(PgError::SchemaTooNew {
                    found: 99,
                    ..
                }))
            ),
            "{result:?}"
        );
    }
}

#[test]
fn pg_head_moves_wait_for_a_running_gc_and_honour_the_lock_timeout() {
    let Some(pg) = PgServer::get("pg_lock_timeout") else {
        return;
    };
    let url = pg.fresh_db("locks");
    let store = PgStore::open(
        &url,
        StoreOptions {
            lock_timeout: Some(std::time::Duration::from_millis(300)),
            lock_wait_notice: false,
        },
    )
    .unwrap();
    let graph = Graph::new(6);
    put_all(&store, &graph);
    // Another host's gc, mid-way: it holds the gc lock exclusively.
    let mut gc = pg.client_for(&url);
    gc.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(x'636170626f780001'::int8)")
        .unwrap();
    let result = store.set_head("h", &graph.instance());
    assert!(
        matches!(result, Err(StoreError::LockTimeout { .. })),
        "{result:?}"
    );
    assert_eq!(store.head("h").unwrap(), None, "nothing moved");
    // Reads never wait for it.
    assert!(store.contains(&graph.instance()).unwrap());
    gc.batch_execute("COMMIT").unwrap();
    store.set_head("h", &graph.instance()).unwrap();
    assert_eq!(store.head("h").unwrap(), Some(graph.instance()));
}
