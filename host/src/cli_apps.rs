//! The apps on the command line: `capbox kv …` (the kv service on a head
//! in the store) and the users part of the demo.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use capbox::shared::cap::{Cap, CapHashOrRef};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::Outcome;
use capbox::shared::kernel::apps::{self, kv, users};
use capbox::shared::kernel::ops;
use capbox::{
    Invocation, Kernel, Session, SessionError, SessionOptions, SharedStore, Store, StoreBackend,
    StoreLocation, StoreOptions,
};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::cli::BackendArg;

/// Gas for one app invocation.
const APP_GAS: u64 = 10_000_000;

/// `capbox kv …`
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  capbox kv put 7 --value hello           # stored on head `kv`; concurrent puts all land
  capbox kv get 7 --json
  capbox kv put 8 --input photo.jpg --head pictures
  capbox kv len; capbox kv delete 7")]
pub struct KvArgs {
    /// The head holding the kv instance (created fresh when absent).
    #[arg(long, default_value = "kv", global = true)]
    head: String,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Which backend runs the kernel.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto, global = true)]
    backend: BackendArg,
    /// Store: a directory, or a postgres:// URL for the shared store
    /// [default: $CAPBOX_STORE, else ./.capbox/store].
    #[arg(long, value_name = "DIR|URL", global = true)]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(Subcommand, Debug)]
enum KvCommand {
    /// Stores a value under KEY (0..65000).
    Put {
        key: u32,
        /// The value as text.
        #[arg(long, conflicts_with = "input", required_unless_present = "input")]
        value: Option<String>,
        /// The value from a file ("-" reads stdin).
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Prints KEY's value (exit 1 when there is none).
    Get { key: u32 },
    /// Removes KEY.
    Delete { key: u32 },
    /// Prints the number of keys.
    Len,
}

/// The name of an error code in φ7, if it is one.
pub fn code_name(r7: u64) -> Option<&'static str> {
    Some(match r7 {
        ops::ERR_MEMORY => "ERR_MEMORY",
        ops::ERR_TOO_LONG => "ERR_TOO_LONG",
        ops::ERR_SLOT => "ERR_SLOT",
        ops::ERR_EMPTY => "ERR_EMPTY",
        ops::ERR_KIND => "ERR_KIND",
        ops::ERR_OFFSET => "ERR_OFFSET",
        ops::ERR_DEPTH => "ERR_DEPTH",
        ops::ERR_OCCUPIED => "ERR_OCCUPIED",
        ops::ERR_LIMIT => "ERR_LIMIT",
        ops::ERR_ENDPOINT => "ERR_ENDPOINT",
        ops::ERR_CHILD => "ERR_CHILD",
        apps::ERR_BAD_KEY => "ERR_BAD_KEY",
        apps::ERR_NO_USER => "ERR_NO_USER",
        apps::ERR_CHILD_FAILED => "ERR_CHILD_FAILED",
        apps::ERR_BAD_INPUT => "ERR_BAD_INPUT",
        _ => return None,
    })
}

/// φ7 as text: an error code's name or the number.
pub fn r7_text(r7: u64) -> String {
    code_name(r7).map_or_else(|| r7.to_string(), str::to_owned)
}

/// Every cap reachable from `root` in the store (Instance → image, memory,
/// root CNode; CNode → every slot).
pub fn load_graph(store: &dyn StoreBackend, root: &CapHash) -> anyhow::Result<Vec<Cap>> {
    let mut seen = HashSet::from([*root]);
    let mut todo = vec![*root];
    let mut caps = Vec::new();
    while let Some(hash) = todo.pop() {
        let cap = store
            .get(&hash)?
            .ok_or_else(|| anyhow!("the store lacks blob {hash} (reachable from {root})"))?;
        let links: Vec<CapHashOrRef> = match &cap {
            Cap::Instance(i) => vec![
                CapHashOrRef::Hash(i.image),
                i.memory.clone(),
                i.root_cnode.clone(),
            ],
            Cap::CNode(c) => c.iter().map(|(_, l)| l.clone()).collect(),
            _ => Vec::new(),
        };
        for link in links {
            if let CapHashOrRef::Hash(h) = link
                && seen.insert(h)
            {
                todo.push(h);
            }
        }
        caps.push(cap);
    }
    Ok(caps)
}

/// Exports the state graph of `instance` from the kernel, stores every
/// blob of it and points `head` at it ([`Store::save_graph`]: safe against
/// a concurrent gc).
pub fn save_graph(
    kernel: &mut Kernel,
    store: &dyn StoreBackend,
    head: &str,
    instance: &CapHash,
) -> anyhow::Result<()> {
    let graph: HashSet<CapHash> = kernel.export_graph(instance)?.into_iter().collect();
    // The kernel keeps the whole graph, so whatever a concurrent gc removes
    // before the head is set is stored again from it.
    store.save_graph(head, instance, &mut |hash| {
        if graph.contains(hash) {
            kernel.get_cap(hash).ok()
        } else {
            None
        }
    })?;
    Ok(())
}

/// Runs `capbox kv …`. `put` and `delete` run in a durable [`Session`]
/// on the head (created on first use): the new state is stored, then the
/// head moves by compare-and-swap, re-running on the newer state after a
/// lost race, so concurrent writers never lose an update. `get` and `len`
/// only read: they store nothing (on a missing head they read a fresh,
/// empty kv).
pub fn run_kv(args: KvArgs, options: StoreOptions) -> anyhow::Result<ExitCode> {
    let location = StoreLocation::from_arg_or_env(args.store.as_deref());
    let mut kernel = Kernel::new(args.backend.into())?;
    let (op, endpoint, key, input) = match &args.command {
        KvCommand::Put { key, value, input } => {
            let bytes = match (value, input) {
                (Some(v), _) => v.clone().into_bytes(),
                (None, Some(file)) => crate::cli_store::read_input(file)?,
                (None, None) => bail!("put needs --value TEXT or --input FILE"),
            };
            ("put", kv::Endpoint::Put, Some(*key), bytes)
        }
        KvCommand::Get { key } => ("get", kv::Endpoint::Get, Some(*key), Vec::new()),
        KvCommand::Delete { key } => ("delete", kv::Endpoint::Delete, Some(*key), Vec::new()),
        KvCommand::Len => ("len", kv::Endpoint::Len, None, Vec::new()),
    };
    let call = Invocation {
        instance: None,
        endpoint: endpoint.index(),
        args: [u64::from(key.unwrap_or(0)), 0, 0, 0],
        gas: APP_GAS,
        input,
        timeout: None,
    };
    let writes = matches!(
        args.command,
        KvCommand::Put { .. } | KvCommand::Delete { .. }
    );
    let (o, saved) = if writes {
        let store = capbox::store::open_store(&location, options)?;
        let mut session = open_or_create_kv(&mut kernel, store, &args.head)?;
        (session.invoke(&call)?.outcome, true)
    } else {
        // Reading creates nothing: no store (or no head) reads as empty.
        let store = match capbox::store::open_store_existing(&location, options) {
            Ok(store) => Some(store),
            Err(
                capbox::StoreError::NoStore { .. }
                | capbox::StoreError::Postgres(capbox::PgError::NoSchema { .. }),
            ) => None,
            Err(e) => return Err(e.into()),
        };
        let head = match &store {
            Some(store) => store.head(&args.head)?.map(|h| (store, h)),
            None => None,
        };
        let state = match head {
            Some((store, head)) => {
                kernel.stage_caps(&load_graph(&**store, &head)?)?;
                head
            }
            None => kernel.create_instance(&kv::kv_image())?,
        };
        let call = Invocation {
            instance: Some(state),
            ..call
        };
        (kernel.invoke_one(&call)?, false)
    };
    if o.exit != capbox::shared::kernel::ExitReason::Halt {
        bail!("the kv service did not halt: {:?}", o.exit);
    }
    print_kv(&args, op, key, &o, saved);
    Ok(match code_name(o.r7) {
        Some(_) => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}

/// A durable session on the kv head, creating it (a fresh kv instance)
/// when absent; a concurrent creator wins and is then followed.
fn open_or_create_kv<'k>(
    kernel: &'k mut Kernel,
    store: SharedStore,
    head: &str,
) -> anyhow::Result<Session<&'k mut Kernel>> {
    let options = SessionOptions::default();
    if store.head(head)?.is_none() {
        // Created (then reopened below, like a head someone else created).
        match Session::create(&mut *kernel, store.clone(), head, &kv::kv_image(), options) {
            Ok(_) | Err(SessionError::HeadExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Session::open(kernel, store, head, options)?)
}

fn print_kv(args: &KvArgs, op: &str, key: Option<u32>, o: &Outcome, saved: bool) {
    let error = code_name(o.r7);
    if args.json {
        let mut out = json!({
            "op": op,
            "r7": o.r7,
            "r8": o.r8,
            "gas_used": o.gas_used,
            "state": o.instance.to_hex(),
            "head": args.head,
            "saved": saved,
        });
        if let Some(key) = key {
            out["key"] = json!(key);
        }
        if let Some(name) = error {
            out["error"] = json!(name);
        }
        if op == "get" && error.is_none() {
            out["value_hex"] = json!(crate::cli::hex(&o.output));
            if let Ok(text) = std::str::from_utf8(&o.output) {
                out["value"] = json!(text);
            }
        }
        println!("{out:#}");
        return;
    }
    if let Some(name) = error {
        eprintln!("kv {op}: {name}");
        return;
    }
    match op {
        "get" => {
            // The value as it is into a pipe; escaped on a terminal.
            use std::io::{IsTerminal, Write};
            let mut stdout = std::io::stdout();
            if stdout.is_terminal() {
                println!("{}", capbox::escape_for_terminal(&o.output));
            } else {
                let _ = stdout
                    .write_all(&o.output)
                    .and_then(|()| stdout.write_all(b"\n"));
            }
        }
        "put" => println!(
            "{} (state {})",
            if o.r8 == 1 { "replaced" } else { "stored" },
            o.instance
        ),
        "delete" => println!(
            "{} (state {})",
            if o.r7 == 1 { "deleted" } else { "absent" },
            o.instance
        ),
        _ => println!("{}", o.r7),
    }
}

/// The head the demo saves the users app under.
pub const DEMO_USERS_HEAD: &str = "demo-users";

/// The users part of the demo: a fresh users app (the same steps give the
/// same state hash on every run), two users, a few puts and gets, saved as
/// head `demo-users`.
pub fn demo_users(kernel: &mut Kernel, store: Option<&Store>) -> anyhow::Result<()> {
    use users::Endpoint::*;
    println!("users app (fresh each run, so the same hashes): one kv child per user");
    let image = Cap::Image(kv::kv_image());
    let start =
        kernel.create_instance_with_caps(&users::users_image(), &[(users::IMAGE_SLOT, image)])?;
    let steps: [(&str, users::Endpoint, [u64; 2], &[u8]); 8] = [
        ("add user 0", AddUser, [0, 0], b""),
        ("add user 1", AddUser, [1, 0], b""),
        ("put 0/1 alice", Put, [0, 1], b"alice"),
        ("put 1/1 bob", Put, [1, 1], b"bob"),
        ("get 0/1", Get, [0, 1], b""),
        ("get 1/1", Get, [1, 1], b""),
        ("get 0/2", Get, [0, 2], b""),
        ("count 1", Count, [1, 0], b""),
    ];
    let mut state = start;
    for (label, ep, [u, key], input) in steps {
        let o = kernel.invoke_with_input(&state, ep.index(), [u, key, 0, 0], APP_GAS, input)?;
        println!(
            "{label:>18}: exit {:<8} r7={:<12} output={:<18} state {}",
            format!("{:?}", o.exit),
            r7_text(o.r7),
            if o.output.is_empty() {
                "-".into()
            } else {
                format!("{:?}", String::from_utf8_lossy(&o.output))
            },
            o.instance
        );
        state = o.instance;
    }
    if let Some(store) = store {
        save_graph(kernel, store, DEMO_USERS_HEAD, &state)?;
        println!(
            "saved as head `{DEMO_USERS_HEAD}` in {}",
            store.path().display()
        );
    }
    Ok(())
}
