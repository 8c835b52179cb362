//! Invocations on stored state from the command line: `capbox new`,
//! `capbox invoke`, `capbox heads`, `capbox log` (the library side is
//! [`capbox::Session`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use capbox::session::DEFAULT_MAX_ATTEMPTS;
use capbox::shared::cap::Cap;
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::sample::sample_image;
use capbox::{
    HistoryEntry, Invocation, Kernel, OnConflict, Session, SessionOptions, SharedStore,
    StoreBackend, StoreLocation, StoreOptions,
};
use clap::Args;
use serde_json::{Value, json};

use crate::cli::BackendArg;

/// Where the store is, for every subcommand here.
#[derive(Args, Debug)]
pub struct StoreArg {
    /// Store: a directory, or a postgres:// URL for the shared store
    /// [default: $CAPBOX_STORE, else ./.capbox/store].
    #[arg(long, value_name = "DIR|URL")]
    store: Option<PathBuf>,
}

impl StoreArg {
    fn location(&self) -> StoreLocation {
        StoreLocation::from_arg_or_env(self.store.as_deref())
    }

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

/// `capbox new`
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    capbox new examples/add.pvmasm --head adder\n  \
    capbox new --sample --head counter      # the built-in sample (endpoint 0 increments)")]
pub struct NewArgs {
    /// The program: a code blob (`deblob` format) or assembly text
    /// (`.pvmasm`, `.asm`, `.s`), as `run --program` takes it.
    #[arg(required_unless_present = "sample", conflicts_with = "sample")]
    program: Option<PathBuf>,
    /// Use the built-in sample program (see `capbox run --help` for its
    /// endpoints) instead of a file.
    #[arg(long)]
    sample: bool,
    /// The head to create (it must not exist).
    #[arg(long)]
    head: String,
    /// Which backend builds the instance.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArg,
}

/// `capbox invoke`
#[derive(Args, Debug)]
#[command(
    after_help = "Each invocation is committed before the next starts: its new state is \
    stored, then the head moves (compare-and-swap) and its history gets a record. If another \
    process moved the head meanwhile, the invocation runs again on the head's new state (up to \
    --retries runs), else it fails and records nothing.\n\nExamples:\n  \
    capbox invoke counter                       # endpoint 0 of head `counter`\n  \
    capbox invoke counter --endpoint 2 40 --json\n  \
    capbox invoke counter --times 10 --backend local\n  \
    capbox invoke 3f…(64 hex) --endpoint 1      # run on a stored instance; no head moves\n  \
    capbox invoke 3f…(64 hex) --head fork       # … and point head `fork` at the result"
)]
pub struct InvokeArgs {
    /// A head name, or a stored Instance's 64-hex hash (always read as a
    /// hash).
    target: String,
    /// The endpoint: its index, or its name when the image names its
    /// endpoints (imported PolkaVM programs, `.endpoint` in assembly).
    #[arg(long, default_value = "0")]
    endpoint: String,
    /// Up to four arguments (φ7..φ10): decimal, 0x hex, or negative
    /// (two's complement).
    #[arg(allow_negative_numbers = true, value_parser = crate::cli::parse_register)]
    args: Vec<u64>,
    /// The invocation's input: the bytes of FILE (`-`: standard input),
    /// at most 1 MiB.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Gas limit per invocation: 0 … 2^64-1 (decimal, 0x hex, or `max`).
    #[arg(long, default_value = "1000000", allow_hyphen_values = true, value_parser = crate::cli::parse_gas)]
    gas: u64,
    /// Wall-clock deadline per invocation, in seconds: exit `Timeout`,
    /// state unchanged (default: the kernel's, 60 s).
    #[arg(long, value_name = "SECS", value_parser = crate::cli::parse_timeout)]
    timeout: Option<Duration>,
    /// How many times to invoke (each committed on the state the previous
    /// left).
    #[arg(long, default_value_t = 1)]
    times: u32,
    /// With a HASH target: point this head at the result (compare-and-swap
    /// against where the head is when the command starts; not retried).
    #[arg(long)]
    head: Option<String>,
    /// Runs per invocation when other writers keep moving the head; 1
    /// fails at the first lost race.
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..))]
    retries: u32,
    /// Which backend runs the kernel.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Print outcomes as JSON lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArg,
}

/// `capbox heads`
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  capbox heads --json")]
pub struct HeadsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArg,
}

/// `capbox log`
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  capbox log counter --json")]
pub struct LogArgs {
    /// The head.
    head: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArg,
}

/// `--endpoint` on the stored instance `state`: an index, or a name of
/// its image's endpoints.
fn resolve_endpoint(
    store: &dyn StoreBackend,
    state: &CapHash,
    endpoint: &str,
) -> anyhow::Result<u32> {
    if let Ok(index) = endpoint.parse::<u32>() {
        return Ok(index);
    }
    let Some(Cap::Instance(instance)) = store.get(state)? else {
        bail!("{state} is not a stored instance");
    };
    let Some(Cap::Image(image)) = store.get(&instance.image)? else {
        bail!(
            "the image {} of {state} is not in the store",
            instance.image
        );
    };
    crate::cli::endpoint_number(&image, endpoint)
}

/// A 64-hex target is a hash; anything else names a head.
fn parse_target(text: &str) -> Option<CapHash> {
    (text.len() == 64)
        .then(|| CapHash::from_hex(text).ok())
        .flatten()
}

pub fn run_new(args: &NewArgs, options: StoreOptions) -> anyhow::Result<ExitCode> {
    let image = match &args.program {
        Some(path) => crate::cli::image_from_program(path)?,
        None => sample_image(),
    };
    capbox::store::validate_head_name(&args.head)?;
    let store = args.store.open(options)?;
    let kernel = Kernel::new(args.backend.into())?;
    let session = Session::create(kernel, store, &args.head, &image, SessionOptions::default())?;
    if args.json {
        println!(
            "{}",
            json!({ "head": args.head, "instance": session.state().to_hex(), "seq": 1 })
        );
    } else {
        println!("head {} -> {}", args.head, session.state());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_invoke(args: &InvokeArgs, options: StoreOptions) -> anyhow::Result<ExitCode> {
    if args.args.len() > 4 {
        bail!("at most 4 arguments (φ7..φ10), got {}", args.args.len());
    }
    let mut regs = [0u64; 4];
    regs[..args.args.len()].copy_from_slice(&args.args);
    let input = match &args.input {
        Some(path) => crate::cli::read_input(path)?,
        None => Vec::new(),
    };
    let store = args.store.open(options)?;
    let session_options = SessionOptions {
        durable: true,
        on_conflict: OnConflict::Retry {
            max_attempts: args.retries,
        },
    };
    let target = parse_target(&args.target);
    if target.is_none() && args.head.is_some() {
        bail!(
            "--head is for a HASH target; {:?} names a head already",
            args.target
        );
    }
    if let Some(head) = &args.head {
        capbox::store::validate_head_name(head)?;
    } else if target.is_none() {
        capbox::store::validate_head_name(&args.target)?;
    }
    let kernel = Kernel::new(args.backend.into())?;
    let mut session = match &target {
        Some(hash) => Session::at(kernel, store, hash, args.head.as_deref(), session_options)?,
        None => Session::open(kernel, store, &args.target, session_options)?,
    };
    let endpoint = resolve_endpoint(session.store(), &session.state(), &args.endpoint)?;
    if !args.json {
        println!("backend: {}", session.kernel_mut().backend());
        println!("instance: {}", session.state());
    }
    let call = Invocation {
        instance: None,
        endpoint,
        args: regs,
        gas: args.gas,
        input,
        timeout: args.timeout,
    };
    for i in 0..args.times {
        let committed = session
            .invoke(&call)
            .with_context(|| format!("invocation {i} (earlier ones are committed)"))?;
        let o = &committed.outcome;
        if args.json {
            let mut line: Value = serde_json::from_str(&crate::cli::outcome_json(i, o))?;
            line["prev"] = json!(committed.prev.to_hex());
            line["head"] = json!(session.head());
            line["seq"] = json!(committed.seq);
            line["attempts"] = json!(committed.attempts);
            line["committed"] = json!(true);
            println!("{line}");
        } else {
            let mut text = crate::cli::outcome_text(i, o);
            if let (Some(head), Some(seq)) = (session.head(), committed.seq) {
                text.push_str(&format!(" (head {head} move {seq}"));
                if committed.attempts > 1 {
                    text.push_str(&format!(", {} attempts", committed.attempts));
                }
                text.push(')');
            }
            println!("{text}");
        }
        crate::cli::print_logs(i, &committed.logs, args.json);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_heads(args: &HeadsArgs, options: StoreOptions) -> anyhow::Result<ExitCode> {
    let store = args.store.open_read(options)?;
    let mut rows = Vec::new();
    let (heads, corrupt) = store.heads_and_corrupt()?;
    for (name, _) in heads {
        // Removed since listed: skip.
        let Some((hash, seq)) = store.head_state(&name)? else {
            continue;
        };
        rows.push((name, hash, seq));
    }
    if args.json {
        let heads: Vec<Value> = rows
            .iter()
            .map(|(name, hash, seq)| json!({ "name": name, "instance": hash.to_hex(), "moves": seq }))
            .collect();
        let corrupt_rows = crate::cli_store::corrupt_rows(&corrupt);
        println!("{}", json!({ "heads": heads, "corrupt": corrupt_rows }));
    } else if rows.is_empty() && corrupt.is_empty() {
        println!("no heads");
    } else {
        for (name, hash, seq) in rows {
            println!("{name}  {hash}  {seq} moves");
        }
    }
    Ok(if crate::cli_store::report_corrupt_heads(&corrupt) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn run_log(args: &LogArgs, options: StoreOptions) -> anyhow::Result<ExitCode> {
    let store = args.store.open_read(options)?;
    let Some((hash, seq)) = store.head_state(&args.head)? else {
        bail!("no head {:?} in {}", args.head, store.location());
    };
    let entries = store.history(&args.head)?;
    let stored = |h: &CapHash| store.contains(h).unwrap_or(false);
    if args.json {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| entry_json(e, stored(&e.new)))
            .collect();
        println!(
            "{}",
            json!({ "head": args.head, "instance": hash.to_hex(), "moves": seq, "entries": list })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("head {} -> {hash} ({seq} moves)", args.head);
    for e in &entries {
        let mut line = format!(
            "#{} {} {} -> {} {}",
            e.seq,
            utc_text(e.time),
            e.prev.map_or_else(|| "-".to_owned(), |h| short(&h)),
            short(&e.new),
            e.change.action
        );
        if let Some(endpoint) = e.change.endpoint {
            line.push_str(&format!(" endpoint {endpoint}"));
        }
        if let Some(outcome) = &e.change.outcome {
            line.push_str(&format!(" {outcome}"));
        }
        if let Some(gas) = e.change.gas_used {
            line.push_str(&format!(" gas_used={gas}"));
        }
        if !stored(&e.new) {
            line.push_str(" (state pruned)");
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn entry_json(e: &HistoryEntry, stored: bool) -> Value {
    let millis = e
        .time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "seq": e.seq,
        "time_ms": millis,
        "time": utc_text(e.time),
        "prev": e.prev.map(|h| h.to_hex()),
        "new": e.new.to_hex(),
        "action": e.change.action,
        "endpoint": e.change.endpoint,
        "outcome": e.change.outcome,
        "gas_used": e.change.gas_used,
        "stored": stored,
    })
}

/// The first 16 hex digits of a hash.
fn short(hash: &CapHash) -> String {
    hash.to_hex()[..16].to_owned()
}

/// `2026-11-30T13:14:53.123Z`.
fn utc_text(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's days-to-civil algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_722), (2023, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(utc_text(t), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn targets_and_endpoints_parse() {
        let hex = "ab".repeat(32);
        assert!(parse_target(&hex).is_some());
        assert!(parse_target("counter").is_none());
        assert!(parse_target(&"zz".repeat(32)).is_none());
    }
}
