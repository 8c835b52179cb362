//! Handlers for `capbox store …`, `capbox publish` and `capbox inspect`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use capbox::shared::{Cap, CapHash, CapHashOrRef};
use capbox::{BlobInfo, PruneReport, SharedStore, StoreOptions, VerifyProblem, VerifyReport};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Where the store lives.
#[derive(Args, Debug)]
pub struct StoreLocation {
    /// Store: a directory, or a postgres:// URL for the shared store
    /// [default: $CAPBOX_STORE, else ./.capbox/store].
    #[arg(long, value_name = "DIR|URL", global = true)]
    store: Option<PathBuf>,
}

impl StoreLocation {
    fn location(&self) -> capbox::StoreLocation {
        capbox::StoreLocation::from_arg_or_env(self.store.as_deref())
    }

    /// A directory or a postgres:// URL. StoreError messages name the
    /// path or URL; main prints the cause chain.
    fn open(&self, options: StoreOptions) -> anyhow::Result<SharedStore> {
        Ok(capbox::store::open_store(&self.location(), options)?)
    }

    /// For commands that only read: creates and writes nothing.
    fn open_read(&self, options: StoreOptions) -> anyhow::Result<SharedStore> {
        Ok(capbox::store::open_store_existing(
            &self.location(),
            options,
        )?)
    }
}

/// Parses `--lock-timeout SECS`: a non-negative number of seconds.
pub fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds (e.g. 5, 0.5)"))
}

/// `capbox store …`
#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Blob count, bytes and head count.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every blob: hash, kind, size, last access.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every head: name and Instance hash.
    Heads {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hashes every blob and checks every head's graph is complete;
    /// exits 1 if anything is wrong (each problem is printed).
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evicts unpinned blobs, least recently used first, down to the limits.
    /// Blobs reachable from a head are never removed.
    Prune {
        /// Keep at most this many blobs.
        #[arg(long, value_name = "N")]
        max_entries: Option<u64>,
        /// Keep at most this many bytes (suffixes K, M, G: powers of 1024).
        #[arg(long, value_name = "B", value_parser = parse_bytes)]
        max_bytes: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Removes every blob unreachable from a head.
    Gc {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Points a head at an Instance whose whole graph is stored.
    SetHead {
        /// Head name (letters, digits, '.', '_', '-').
        name: String,
        /// Instance hash (64 hex digits).
        hash: String,
    },
    /// Removes a head (its graph is no longer pinned).
    RemoveHead {
        /// Head name.
        name: String,
    },
    /// Migrates a filesystem store to the current format (format 3 → 4
    /// keeps Data caps as shared pages; any writing command also migrates).
    Migrate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `capbox publish FILE`
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  capbox asm --image examples/counter.pvmasm -o counter.image
  capbox publish counter.image                 # prints the cap's hash
  capbox publish counter.image --head program  # and points a head at it")]
pub struct PublishArgs {
    /// A file holding one canonical cap encoding ("-" reads stdin).
    file: PathBuf,
    /// Also point this head at the published cap (an Instance).
    #[arg(long, value_name = "NAME")]
    head: Option<String>,
    #[command(flatten)]
    location: StoreLocation,
}

/// `capbox inspect HASH`
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  capbox inspect $(capbox store heads --json | jq -r '.[0].hash')
  capbox inspect 3f…(64 hex digits) --json")]
pub struct InspectArgs {
    /// The cap's hash (64 hex digits).
    hash: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    location: StoreLocation,
}

/// Runs `capbox store …`.
pub fn run_store(
    location: &StoreLocation,
    command: StoreCommand,
    options: StoreOptions,
) -> anyhow::Result<ExitCode> {
    if let StoreCommand::Migrate { json } = command {
        let capbox::StoreLocation::Dir(path) = location.location() else {
            bail!(
                "`store migrate` is for filesystem stores (a PostgreSQL store migrates its schema on open)"
            );
        };
        let report = capbox::Store::migrate(&path, options)?;
        if json {
            print_json(&json!({
                "path": path.display().to_string(),
                "from": report.from,
                "to": capbox::store::STORE_FORMAT,
                "data_blobs": report.data_blobs,
                "pages": report.pages,
                "nodes": report.nodes,
            }));
        } else if report.from == capbox::store::STORE_FORMAT {
            println!("{} is already in format {:?}", path.display(), report.from);
        } else {
            println!(
                "migrated {} from {:?} to {:?}: {} Data blobs now kept as {} pages and {} tree nodes",
                path.display(),
                report.from,
                capbox::store::STORE_FORMAT,
                report.data_blobs,
                report.pages,
                report.nodes
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let reads_only = matches!(
        command,
        StoreCommand::Stats { .. }
            | StoreCommand::List { .. }
            | StoreCommand::Heads { .. }
            | StoreCommand::Verify { .. }
    );
    let store = if reads_only {
        location.open_read(options)?
    } else {
        location.open(options)?
    };
    match command {
        StoreCommand::Stats { json } => {
            let stats = store.stats()?;
            if json {
                print_json(&json!({
                    "path": store.location(),
                    "entries": stats.entries,
                    "bytes": stats.bytes,
                    "heads": stats.heads,
                    "data_parts": stats.data_parts,
                    "data_part_bytes": stats.data_part_bytes,
                }));
            } else {
                println!("store   {}", store.location());
                println!("entries {}", stats.entries);
                println!("bytes   {}", stats.bytes);
                println!("heads   {}", stats.heads);
                if stats.data_parts > 0 {
                    println!(
                        "data    {} pages and tree nodes, {} bytes",
                        stats.data_parts, stats.data_part_bytes
                    );
                }
            }
        }
        StoreCommand::List { json } => print_list(&store.list()?, json),
        StoreCommand::Heads { json } => {
            let (heads, corrupt) = store.heads_and_corrupt()?;
            if json {
                let mut rows: Vec<Value> = heads
                    .iter()
                    .map(|(name, hash)| json!({ "name": name, "hash": hash.to_hex() }))
                    .collect();
                rows.extend(corrupt_rows(&corrupt));
                print_json(&Value::Array(rows));
            } else {
                for (name, hash) in heads {
                    println!("{hash} {name}");
                }
            }
            if report_corrupt_heads(&corrupt) {
                return Ok(ExitCode::FAILURE);
            }
        }
        StoreCommand::Prune {
            max_entries,
            max_bytes,
            json,
        } => {
            if max_entries.is_none() && max_bytes.is_none() {
                bail!(
                    "prune needs --max-entries and/or --max-bytes (use `store gc` to drop everything unpinned)"
                );
            }
            let report = store.prune(
                max_entries.unwrap_or(u64::MAX),
                max_bytes.unwrap_or(u64::MAX),
            )?;
            print_prune(&report, json);
            if !report.limits_met {
                eprintln!("note: the blobs pinned by heads alone exceed the limits");
            }
        }
        StoreCommand::Gc { json } => print_prune(&store.gc()?, json),
        StoreCommand::Verify { json } => {
            let report = store.verify()?;
            print_verify(&report, json);
            if !report.is_ok() {
                return Ok(ExitCode::FAILURE);
            }
        }
        StoreCommand::SetHead { name, hash } => {
            let hash = parse_hash(&hash)?;
            store.set_head(&name, &hash)?;
            println!("{hash} {name}");
        }
        StoreCommand::RemoveHead { name } => {
            // A corrupt head file is removed too (and said so).
            let corrupt = match store.head(&name) {
                Err(e @ capbox::StoreError::CorruptHead { .. }) => Some(e),
                _ => None,
            };
            match (store.remove_head(&name)?, corrupt) {
                (Some(previous), _) => println!("removed {name} (was {previous})"),
                (None, Some(e)) => println!("removed {name} ({e})"),
                (None, None) => bail!("no head named {name:?}"),
            }
        }
        // Handled above, before opening.
        StoreCommand::Migrate { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `capbox publish`: stores the file's cap, prints its hash.
pub fn run_publish(args: &PublishArgs, options: StoreOptions) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&args.file)?;
    let store = args.location.open(options)?;
    let hash = store
        .put_encoded(&bytes)
        .with_context(|| format!("cannot publish {}", args.file.display()))?;
    if let Some(name) = &args.head {
        // The published cap is ours to re-put if a concurrent gc removes it
        // before the head pins it; the rest of its graph must be stored.
        let cap = Cap::decode(&bytes).ok();
        store
            .save_graph(name, &hash, &mut |h| cap.clone().filter(|_| *h == hash))
            .with_context(|| format!("stored {hash}, but head {name:?} was not set to it"))?;
    }
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

/// Runs `capbox inspect`: prints a stored cap's kind and fields.
pub fn run_inspect(args: &InspectArgs, options: StoreOptions) -> anyhow::Result<ExitCode> {
    let hash = parse_hash(&args.hash)?;
    let store = args.location.open_read(options)?;
    let Some(bytes) = store.get_encoded(&hash)? else {
        bail!("cap {hash} is not in the store at {}", store.location());
    };
    // get_encoded verified that the bytes decode and hash to `hash`.
    let cap = Cap::decode(&bytes).map_err(|e| anyhow!("blob {hash} no longer decodes: {e}"))?;
    let mut description = describe(&cap);
    if let Value::Object(fields) = &mut description {
        fields.insert("hash".into(), json!(hash.to_hex()));
        fields.insert("size".into(), json!(bytes.len()));
    }
    if args.json {
        print_json(&description);
    } else {
        print_description(&description);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow!("cannot read stdin: {e}"))?;
        Ok(bytes)
    } else {
        std::fs::read(file).map_err(|e| anyhow!("cannot read {}: {e}", file.display()))
    }
}

fn parse_hash(text: &str) -> anyhow::Result<CapHash> {
    CapHash::from_hex(text.trim()).map_err(|e| anyhow!("{text:?} is not a cap hash: {e}"))
}

/// Parses a byte count: digits, optionally followed by K, M or G (×1024ⁿ).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_owned(), 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_owned(), 20),
        t if t.ends_with('G') => (t[..t.len() - 1].to_owned(), 30),
        t => (t, 0),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count (e.g. 4096, 64K, 10M, 2G)"))?;
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A cap's kind and fields, as JSON (also the source of the text output).
fn describe(cap: &Cap) -> Value {
    let link = |target: &CapHashOrRef| match target {
        CapHashOrRef::Hash(hash) => json!(hash.to_hex()),
        CapHashOrRef::Ref(r) => json!(format!("ref #{}", r.id())),
    };
    let kind = cap.kind().name();
    match cap {
        Cap::Data(data) => json!({
            "kind": kind,
            "len": data.len(),
            "pages": data.page_count(),
            "stored_pages": data.present_page_count(),
        }),
        Cap::CNode(cnode) => {
            let slots: serde_json::Map<String, Value> = cnode
                .iter()
                .map(|(slot, target)| (slot.to_string(), link(target)))
                .collect();
            json!({ "kind": kind, "slot_count": cnode.len(), "slots": slots })
        }
        Cap::Image(image) => json!({
            "kind": kind,
            "code_len": image.code.len(),
            "ro_data_len": image.ro_data.len(),
            "rw_data_len": image.rw_data.len(),
            "heap_pages": image.heap_pages,
            "stack_size": image.stack_size,
            "endpoints": image.endpoints,
        }),
        Cap::Instance(instance) => json!({
            "kind": kind,
            "image": instance.image.to_hex(),
            "memory": link(&instance.memory),
            "root_cnode": link(&instance.root_cnode),
            "image_hash_chain": instance.image_hash_chain.to_hex(),
        }),
        Cap::Type(ty) => json!({
            "kind": kind,
            "image_hash_chain": ty.image_hash_chain.to_hex(),
        }),
    }
}

fn print_description(description: &Value) {
    let Value::Object(fields) = description else {
        return;
    };
    for key in ["hash", "kind", "size"] {
        if let Some(value) = fields.get(key) {
            println!("{key:<16} {}", plain(value));
        }
    }
    for (key, value) in fields {
        if matches!(key.as_str(), "hash" | "kind" | "size") {
            continue;
        }
        match value {
            Value::Object(map) => {
                println!("{key}:");
                for (inner, v) in map {
                    println!("  {inner:<14} {}", plain(v));
                }
            }
            other => println!("{key:<16} {}", plain(other)),
        }
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_list(blobs: &[BlobInfo], json: bool) {
    let now = SystemTime::now();
    if json {
        let rows: Vec<Value> = blobs
            .iter()
            .map(|b| {
                json!({
                    "hash": b.hash.to_hex(),
                    "kind": b.kind.map(|k| k.name()),
                    "size": b.size,
                    "last_access_unix_ms": unix_ms(b.last_access),
                })
            })
            .collect();
        print_json(&Value::Array(rows));
    } else {
        for b in blobs {
            let kind = b.kind.map_or("unknown", |k| k.name());
            let age = now.duration_since(b.last_access).map_or(0, |d| d.as_secs());
            println!("{} {kind:<8} {:>10} {age}s ago", b.hash, b.size);
        }
    }
}

fn print_prune(report: &PruneReport, json: bool) {
    if json {
        let missing: Vec<Value> = report
            .missing
            .iter()
            .map(|(head, hash)| json!({ "head": head, "missing": hash.to_hex() }))
            .collect();
        print_json(&json!({
            "removed_entries": report.removed_entries,
            "removed_bytes": report.removed_bytes,
            "remaining_entries": report.remaining_entries,
            "remaining_bytes": report.remaining_bytes,
            "pinned_entries": report.pinned_entries,
            "pinned_bytes": report.pinned_bytes,
            "limits_met": report.limits_met,
            "removed_temp_files": report.removed_temp_files,
            "missing": missing,
            "corrupt_heads": report.corrupt_heads,
        }));
        return;
    }
    println!(
        "removed {} blobs ({} bytes); {} remain ({} bytes), {} pinned by heads ({} bytes)",
        report.removed_entries,
        report.removed_bytes,
        report.remaining_entries,
        report.remaining_bytes,
        report.pinned_entries,
        report.pinned_bytes
    );
    for name in &report.corrupt_heads {
        eprintln!(
            "warning: head {name:?} is corrupt; kept every state its history names (repair it with `capbox store set-head` or drop it with `capbox store remove-head`)"
        );
    }
    if report.removed_temp_files > 0 {
        println!("removed {} leftover temp files", report.removed_temp_files);
    }
    for (head, hash) in &report.missing {
        eprintln!("warning: head {head:?} lacks blob {hash}");
    }
}

fn print_verify(report: &VerifyReport, json: bool) {
    if json {
        let problems: Vec<Value> = report
            .problems
            .iter()
            .map(|problem| match problem {
                VerifyProblem::CorruptBlob { hash, reason } => {
                    json!({ "kind": "corrupt_blob", "hash": hash.to_hex(), "reason": reason })
                }
                VerifyProblem::MissingBlob { head, hash } => {
                    json!({ "kind": "missing_blob", "head": head, "hash": hash.to_hex() })
                }
                VerifyProblem::BadHead { head, reason } => {
                    json!({ "kind": "bad_head", "head": head, "reason": reason })
                }
                VerifyProblem::BadHistory { head, reason } => {
                    json!({ "kind": "bad_history", "head": head, "reason": reason })
                }
            })
            .collect();
        print_json(&json!({
            "ok": report.is_ok(),
            "blobs": report.blobs,
            "bytes": report.bytes,
            "heads": report.heads,
            "problems": problems,
        }));
        return;
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    println!(
        "verified {} blobs ({} bytes) and {} heads: {}",
        report.blobs,
        report.bytes,
        report.heads,
        match report.problems.len() {
            0 => "ok".to_owned(),
            1 => "1 problem".to_owned(),
            n => format!("{n} problems"),
        }
    );
}

fn unix_ms(time: SystemTime) -> u128 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn print_json(value: &Value) {
    println!("{value:#}");
}

/// JSON rows for corrupt heads: `{"name": …, "error": …}`.
pub(crate) fn corrupt_rows(corrupt: &[capbox::StoreError]) -> Vec<Value> {
    corrupt
        .iter()
        .map(|e| match e {
            capbox::StoreError::CorruptHead { name, .. } => {
                json!({ "name": name, "error": e.to_string() })
            }
            other => json!({ "error": other.to_string() }),
        })
        .collect()
}

/// Names each corrupt head on stderr with what to do; whether there were any.
pub(crate) fn report_corrupt_heads(corrupt: &[capbox::StoreError]) -> bool {
    for e in corrupt {
        eprintln!(
            "warning: {e} (`capbox store set-head NAME HASH` repairs it, `capbox store remove-head NAME` drops it)"
        );
    }
    !corrupt.is_empty()
}
