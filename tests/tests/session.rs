//! `Session`: invocations on stored state, durable commits, lost races
//! (retried or a typed error), deferred commits, sessions on a hash.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{Invocation, OnConflict, Session, SessionError, SessionOptions, Store};
use capbox_tests::backend_tests;

/// A fresh store directory, removed on drop.
struct TempStore {
    dir: PathBuf,
    store: Store,
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_store() -> TempStore {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "capbox-session-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let store = Store::open(dir.join("store")).unwrap();
    TempStore { dir, store }
}

fn call(endpoint: Endpoint) -> Invocation {
    Invocation {
        instance: None,
        endpoint: endpoint.index(),
        args: [0; 4],
        gas: 10_000,
        input: Vec::new(),
        timeout: None,
    }
}

fn increment() -> Invocation {
    call(Endpoint::Increment)
}

/// The counter of head `name`, read through a fresh local kernel.
fn counter(store: &Store, name: &str) -> u64 {
    let mut session = Session::open(
        capbox_tests::local_kernel(),
        store.clone(),
        name,
        SessionOptions {
            durable: false,
            ..SessionOptions::default()
        },
    )
    .unwrap();
    session.invoke(&call(Endpoint::Read)).unwrap().outcome.r7
}

backend_tests! {
    fn durable_invocations_are_stored_before_they_return(kernel: &mut Kernel) {
        let t = temp_store();
        let mut session =
            Session::create(&mut *kernel, t.store.clone(), "c", &sample_image(), SessionOptions::default())
                .unwrap();
        let start = session.state();
        assert_eq!(t.store.head("c").unwrap(), Some(start));
        for i in 1..=3u64 {
            let committed = session.invoke(&increment()).unwrap();
            assert_eq!(committed.outcome.r7, i);
            assert_eq!(committed.seq, Some(i + 1));
            assert_eq!(committed.attempts, 1);
            // Committed means stored, head moved, recorded.
            assert_eq!(t.store.head("c").unwrap(), Some(committed.outcome.instance));
            assert_eq!(t.store.history("c").unwrap().len() as u64, i + 1);
        }
        drop(session);
        let history = t.store.history("c").unwrap();
        assert_eq!(history[0].change.action, "new");
        assert_eq!(history[0].new, start);
        assert_eq!(history[3].change.endpoint, Some(Endpoint::Increment.index()));
        assert_eq!(history[3].change.gas_used, Some(4));
        assert_eq!(history[3].change.outcome.as_deref(), Some("exit=Halt,r7=3,r8=0,out=0"));
        assert!(t.store.verify().unwrap().is_ok());
        assert_eq!(counter(&t.store, "c"), 3);
    }

    fn a_lost_race_reruns_on_the_new_head(kernel: &mut Kernel) {
        let t = temp_store();
        Session::create(capbox_tests::local_kernel(), t.store.clone(), "c", &sample_image(), SessionOptions::default())
            .unwrap();
        let mut mine = Session::open(&mut *kernel, t.store.clone(), "c", SessionOptions::default()).unwrap();
        // Another writer moves the head after `mine` read it.
        let mut other = Session::open(capbox_tests::local_kernel(), t.store.clone(), "c", SessionOptions::default())
            .unwrap();
        other.invoke(&increment()).unwrap();
        let committed = mine.invoke(&increment()).unwrap();
        assert_eq!(committed.attempts, 2);
        assert_eq!(committed.outcome.r7, 2, "both increments count");
        assert_eq!(committed.prev, other.state());
        drop(mine);
        assert_eq!(t.store.history("c").unwrap().len(), 3);
        assert_eq!(counter(&t.store, "c"), 2);
    }

    fn a_lost_race_without_retry_is_a_typed_error(kernel: &mut Kernel) {
        let t = temp_store();
        Session::create(capbox_tests::local_kernel(), t.store.clone(), "c", &sample_image(), SessionOptions::default())
            .unwrap();
        let options = SessionOptions { on_conflict: OnConflict::Fail, ..SessionOptions::default() };
        let mut mine = Session::open(&mut *kernel, t.store.clone(), "c", options).unwrap();
        let mut other = Session::open(capbox_tests::local_kernel(), t.store.clone(), "c", SessionOptions::default())
            .unwrap();
        let theirs = other.invoke(&increment()).unwrap().outcome.instance;
        match mine.invoke(&increment()) {
            Err(SessionError::Conflict { name, attempts, found }) => {
                assert_eq!(name, "c");
                assert_eq!(attempts, 1);
                assert_eq!(found, theirs);
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        assert_eq!(t.store.head("c").unwrap(), Some(theirs));
        assert_eq!(t.store.history("c").unwrap().len(), 2);
        // The next invocation starts from the head it lost to.
        assert_eq!(mine.invoke(&increment()).unwrap().outcome.r7, 2);
    }

    fn deferred_mode_commits_once_with_every_record(kernel: &mut Kernel) {
        let t = temp_store();
        let options = SessionOptions { durable: false, ..SessionOptions::default() };
        let mut session = Session::create(&mut *kernel, t.store.clone(), "c", &sample_image(), options).unwrap();
        let start = session.state();
        for _ in 0..3 {
            assert_eq!(session.invoke(&increment()).unwrap().seq, None);
        }
        assert_eq!(session.pending(), 3);
        assert_eq!(t.store.head("c").unwrap(), Some(start));
        assert_eq!(session.commit().unwrap(), Some(4));
        assert_eq!(session.pending(), 0);
        assert_eq!(t.store.head("c").unwrap(), Some(session.state()));
        let history = t.store.history("c").unwrap();
        assert_eq!(history.len(), 4);
        assert_eq!(history[1].prev, Some(start));
        assert_eq!(history[3].new, session.state());
        // A lost race at commit is an error, and the work stays pending.
        session.invoke(&increment()).unwrap();
        Session::open(capbox_tests::local_kernel(), t.store.clone(), "c", SessionOptions::default())
            .unwrap()
            .invoke(&increment())
            .unwrap();
        assert!(matches!(session.commit(), Err(SessionError::Conflict { .. })));
        assert_eq!(session.pending(), 1);
        drop(session);
        assert_eq!(counter(&t.store, "c"), 4);
    }

    fn a_session_on_a_hash_moves_no_head(kernel: &mut Kernel) {
        let t = temp_store();
        let start = Session::create(capbox_tests::local_kernel(), t.store.clone(), "c", &sample_image(), SessionOptions::default())
            .unwrap()
            .state();
        let mut session = Session::at(&mut *kernel, t.store.clone(), &start, None, SessionOptions::default()).unwrap();
        let o = session.invoke(&increment()).unwrap();
        assert_eq!(o.seq, None);
        assert!(t.store.contains(&o.outcome.instance).unwrap(), "the new state is stored");
        assert_eq!(t.store.head("c").unwrap(), Some(start));
        // With a head to move: a fork.
        let mut fork = Session::at(session.kernel_mut(), t.store.clone(), &o.outcome.instance, Some("fork"), SessionOptions::default())
            .unwrap();
        let forked = fork.invoke(&increment()).unwrap();
        assert_eq!(forked.outcome.r7, 2);
        assert_eq!(forked.seq, Some(1));
        assert_eq!(t.store.head("fork").unwrap(), Some(forked.outcome.instance));
        assert_eq!(t.store.head("c").unwrap(), Some(start));
        drop(fork);
        drop(session);
        // Not a stored instance: typed errors.
        let image = t.store.history("c").unwrap()[0].new;
        let missing = capbox::shared::CapHash([7; 32]);
        assert!(matches!(
            Session::at(&mut *kernel, t.store.clone(), &missing, None, SessionOptions::default()),
            Err(SessionError::NotStored { .. })
        ));
        assert!(matches!(
            Session::open(&mut *kernel, t.store.clone(), "nope", SessionOptions::default()),
            Err(SessionError::NoSuchHead { .. })
        ));
        assert!(matches!(
            Session::create(&mut *kernel, t.store.clone(), "c", &sample_image(), SessionOptions::default()),
            Err(SessionError::HeadExists { hash, .. }) if hash == image
        ));
    }
}

#[test]
fn nothing_is_loaded_up_front() {
    let t = temp_store();
    Session::create(
        capbox_tests::local_kernel(),
        t.store.clone(),
        "c",
        &sample_image(),
        SessionOptions::default(),
    )
    .unwrap();
    let mut kernel = capbox_tests::local_kernel();
    let mut session =
        Session::open(&mut kernel, t.store.clone(), "c", SessionOptions::default()).unwrap();
    assert_eq!(session.invoke(&increment()).unwrap().outcome.r7, 1);
    drop(session);
    // The kernel fetched the state from the store; the host sent nothing.
    assert_eq!(kernel.caps_sent(), 0);
    // And the store is no longer its fallback once the session is gone.
    let head = t.store.head("c").unwrap().unwrap();
    assert!(
        kernel.invoke(&head, 0, [0; 4], 1000).is_ok(),
        "the kernel kept what it fetched"
    );
}
