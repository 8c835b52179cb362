//! The `run`, `bench` and `demo` subcommands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use capbox::Store;
use capbox::shared::cap::{Cap, CapHashOrRef, Image};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::bench::BENCHMARKS;
use capbox::shared::kernel::new_instance;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::shared::kernel::{ExitReason, Outcome};
use capbox::{BackendChoice, Invocation, Kernel};
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum BackendArg {
    /// The sandbox when a hypervisor is usable, else local.
    #[default]
    Auto,
    /// The Hyperlight sandbox.
    Sandbox,
    /// In-process.
    Local,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Sandbox => BackendChoice::Sandbox,
            BackendArg::Local => BackendChoice::Local,
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = run_after_help())]
pub struct RunArgs {
    /// Which backend runs the kernel.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Gas limit per invocation: 0 … 2^64-1 (decimal, 0x hex, or `max`).
    #[arg(long, default_value = "1000000", allow_hyphen_values = true, value_parser = parse_gas)]
    gas: u64,
    /// Endpoint index (the sample's: 0 increment, 1 read, 2 add, 3 output,
    /// 4 loop, 5 trap, 6 fault, 7 unknown op, 8 stack only, 9 gas, 10 empty,
    /// 11 write then trap, 12 read stack, 13 log).
    /// A program with named endpoints (`.polkavm`, `.image`, assembly with
    /// `.endpoint`) also takes the name.
    #[arg(long, default_value = "0")]
    endpoint: String,
    /// How many times to invoke (each on the state the previous left).
    #[arg(long, default_value_t = 1)]
    times: u32,
    /// A PVM program to run instead of the sample: a code blob (`deblob`
    /// format), or assembly text when the file ends in `.pvmasm`, `.asm` or
    /// `.s` (see `capbox asm`). Its single endpoint is pc 0, with one page of
    /// read-write data, unless assembly text says otherwise with image
    /// directives (`.endpoint`, `.ro_data`, `.rw_data`, `.heap_pages`,
    /// `.stack`). A PolkaVM JamV1 program blob (`.polkavm`, see
    /// `capbox import`) or an Image encoding (`.image`) brings its own data
    /// sections and endpoints.
    #[arg(long)]
    program: Option<PathBuf>,
    /// The invocation's input: the bytes of FILE (`-`: standard input),
    /// at most 1 MiB, which the program reads with the kernel ops
    /// `input_len` (3) and `input_read` (4). Every `--times` call gets the
    /// same input. Default: none (empty).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Wall-clock deadline per invocation, in seconds (fractions allowed):
    /// reaching it ends the invocation with exit `Timeout`, its state
    /// unchanged. Default: the kernel's, 60 s.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Print outcomes as JSON lines.
    #[arg(long)]
    json: bool,
    /// Up to four arguments (φ7..φ10): decimal, 0x hex, or negative
    /// (two's complement, e.g. -1 = 0xffffffffffffffff).
    #[arg(allow_negative_numbers = true, value_parser = parse_register)]
    args: Vec<u64>,
}

/// `--gas`: an unsigned 64-bit number, or `max`.
pub(crate) fn parse_gas(text: &str) -> Result<u64, String> {
    if text == "max" {
        return Ok(u64::MAX);
    }
    if text.starts_with('-') {
        return Err(format!(
            "gas cannot be negative ({text}); the largest limit is `max` (18446744073709551615)"
        ));
    }
    parse_u64(text).ok_or_else(|| {
        format!("`{text}` is not a gas amount: expected 0 … 18446744073709551615, 0x hex, or `max`")
    })
}

/// A register argument: unsigned, 0x hex, or negative (two's complement).
pub(crate) fn parse_register(text: &str) -> Result<u64, String> {
    let value = match text.strip_prefix('-') {
        Some(magnitude) => parse_u64(magnitude)
            .filter(|&m| m <= 1 << 63)
            .map(u64::wrapping_neg),
        None => parse_u64(text),
    };
    value.ok_or_else(|| {
        format!("`{text}` is not a 64-bit register value (decimal, 0x hex, or -2^63 … -1)")
    })
}

fn parse_u64(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// `capbox run --help`'s closing text: examples, the memory layout and the
/// kernel ops (numbers and arguments, from the op table).
fn run_after_help() -> String {
    let mut text = String::from(RUN_EXAMPLES);
    text.push_str(
        "\n\nKernel ops (`ecalli N`; arguments in r7.., result in r7; gas in docs/kernel.md):\n",
    );
    for op in capbox::shared::kernel::KernelOp::ALL {
        let line = format!(
            "  {:>2} {:<12} {}",
            op.number(),
            op.name(),
            op.args().join(", ")
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

const RUN_EXAMPLES: &str = "Examples:
  capbox run --json 3 4                          # the sample's endpoint 0 on a fresh instance
  capbox run --endpoint 4 --gas max --timeout 2  # a long loop ended by its deadline
  capbox run --program examples/add.pvmasm 30 12 # your own program (assembly, blob, .polkavm, .image)
  capbox run --program programs/counter.polkavm --endpoint increment 5
  capbox run --program p.pvmasm --input data.bin # the program reads it with input_len/input_read

Memory: read-write data starts at 0x20000 (after read-only data, rounded to
64 KiB); r0 holds the halt address (`jump [r0]` halts), r1 the stack top,
r7..r10 the arguments. `capbox asm --help` shows a whole program.";

/// `--timeout SECS`: a non-negative number of seconds.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|e| format!("not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("not a usable timeout: {e}"))
}

/// The longest `--input` (the kernel's `MAX_INPUT_LEN`).
const MAX_INPUT: u64 = capbox::shared::kernel::ops::MAX_INPUT_LEN;

/// Reads `--input`: a file, or standard input for `-`; refuses more than
/// [`MAX_INPUT`] bytes without reading past that.
pub(crate) fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    let (name, reader): (String, Box<dyn Read>) = if path.as_os_str() == "-" {
        ("standard input".into(), Box::new(std::io::stdin().lock()))
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open the input file {}", path.display()))?;
        (path.display().to_string(), Box::new(file))
    };
    let mut input = Vec::new();
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut input)
        .with_context(|| format!("cannot read the input from {name}"))?;
    if input.len() as u64 > MAX_INPUT {
        bail!(
            "the input from {name} is longer than {MAX_INPUT} bytes (1 MiB), the most an invocation carries"
        );
    }
    Ok(input)
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  capbox bench --guest --backend local           # every in-kernel micro-benchmark
  capbox bench --guest --only hash_page --iters 100   # one of them
  perf stat -e kvm:kvm_emulate_insn -- capbox bench --backend sandbox --calls 100 --call ping
  capbox bench --backend local --jobs 2 --calls 20000 --call invoke-increment   # pool throughput")]
pub struct BenchArgs {
    /// Which backend runs the kernel.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Run the in-kernel micro-benchmarks (inside the guest on the sandbox).
    #[arg(long)]
    guest: bool,
    /// Only this micro-benchmark.
    #[arg(long)]
    only: Option<String>,
    /// Iterations per micro-benchmark [default: as many as fit about one
    /// second each, at most 1000, found by a 3-iteration probe].
    #[arg(long)]
    iters: Option<u64>,
    /// Instead: make this many kernel calls of `--call` (for
    /// `perf stat -e kvm:kvm_emulate_insn`; 0 measures start-up alone).
    #[arg(long)]
    calls: Option<u64>,
    /// What each of the `--calls` does.
    #[arg(long, value_enum, default_value_t = CallKind::Ping)]
    call: CallKind,
    /// Invocations per call for `invoke-*` kinds (one `invoke` request
    /// carrying a chain of this many).
    #[arg(long, default_value_t = 1)]
    per_call: u32,
    /// Run the `--calls` (an `invoke-empty` or `invoke-increment` kind) in
    /// a pool of this many kernels on as many threads, over `--instances`
    /// independent instances; prints invocations per second.
    #[arg(long)]
    jobs: Option<usize>,
    /// Independent instances for `--jobs` [default: --jobs].
    #[arg(long, requires = "jobs")]
    instances: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CallKind {
    /// A guest function that does nothing.
    Ping,
    /// One invocation of the sample's empty endpoint.
    InvokeEmpty,
    /// One invocation of the sample's increment endpoint.
    InvokeIncrement,
    /// One invocation of an endpoint that `call`s a child's empty endpoint.
    InvokeCallEmpty,
}

#[derive(Args, Debug, Default)]
#[command(after_help = "Examples:
  capbox                                  # the same as `capbox demo`
  capbox demo --backend local --store /tmp/demo-store")]
pub struct DemoArgs {
    /// Which backend runs the kernel.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Store directory [default: $CAPBOX_STORE, else ./.capbox/store].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

fn exit_text(o: &Outcome) -> String {
    format!("{:?}", o.exit)
}

pub(crate) fn outcome_json(i: u32, o: &Outcome) -> String {
    format!(
        "{{\"call\":{i},\"exit\":\"{}\",\"r7\":{},\"r8\":{},\"gas_used\":{},\"output\":\"{}\",\"instance\":\"{}\"}}",
        exit_text(o),
        o.r7,
        o.r8,
        o.gas_used,
        hex(&o.output),
        o.instance
    )
}

/// An outcome as `run` prints it: `call I: exit … state HASH`.
pub(crate) fn outcome_text(i: u32, o: &Outcome) -> String {
    format!(
        "call {i}: exit {} r7={} r8={} gas_used={} output={} state {}",
        exit_text(o),
        o.r7,
        o.r8,
        o.gas_used,
        hex(&o.output),
        o.instance
    )
}

/// A call's program log messages, as `run` prints them.
pub(crate) fn print_logs(i: u32, logs: &[Vec<u8>], json: bool) {
    for message in logs {
        // A program's bytes never reach the terminal raw.
        if json {
            let text = serde_json::Value::from(String::from_utf8_lossy(message));
            println!("{{\"call\":{i},\"log\":{text}}}");
        } else {
            println!("  log: {}", capbox::escape_for_terminal(message));
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `--endpoint`: a number, or the name of one of `image`'s endpoints.
pub(crate) fn endpoint_number(image: &Image, endpoint: &str) -> anyhow::Result<u32> {
    if let Ok(n) = endpoint.parse::<u32>() {
        return Ok(n);
    }
    image.endpoint_by_name(endpoint).ok_or_else(|| {
        let names: Vec<&str> = (0..image.endpoints.len() as u32)
            .filter_map(|i| image.endpoint_name(i))
            .collect();
        if names.is_empty() {
            anyhow::anyhow!(
                "no endpoint named `{endpoint}`: this program's {} endpoint(s) have no names; \
                 give an index (0..{})",
                image.endpoints.len(),
                image.endpoints.len()
            )
        } else {
            anyhow::anyhow!(
                "no endpoint named `{endpoint}` (the program's names: {})",
                names.join(", ")
            )
        }
    })
}

/// The one place the CLI turns a program file into an [`Image`]: a PolkaVM
/// program blob (its magic, whatever the name) is imported with its data,
/// stack and named endpoints (`capbox::import`); an Image cap encoding
/// (`.image`, as `capbox import -o` and `capbox asm --image` write) is
/// decoded; anything else is a code blob or assembly text
/// (`cli_asm::load_image_bytes`: assembly's image directives, else one
/// endpoint at pc 0 and one page of read-write data).
pub(crate) fn image_from_program(path: &std::path::Path) -> anyhow::Result<Image> {
    use anyhow::Context;
    let bytes = crate::cli_asm::read_input(path)?;
    if capbox::import::is_polkavm(&bytes) {
        let imported = capbox::import::image_from_polkavm(&bytes)
            .with_context(|| format!("cannot import {}", path.display()))?;
        return Ok(imported.image);
    }
    if path.extension().is_some_and(|e| e == "image") {
        return match Cap::decode(&bytes)
            .with_context(|| format!("{} is not a cap encoding", path.display()))?
        {
            Cap::Image(image) => Ok(image),
            other => bail!(
                "{} holds a {:?} cap, not an Image",
                path.display(),
                other.kind()
            ),
        };
    }
    crate::cli_asm::load_image_bytes(bytes, path)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.args.len() > 4 {
        bail!("at most 4 arguments (φ7..φ10), got {}", args.args.len());
    }
    let mut regs = [0u64; 4];
    regs[..args.args.len()].copy_from_slice(&args.args);
    let stdin = std::path::Path::new("-");
    if args.input.as_deref() == Some(stdin) && args.program.as_deref() == Some(stdin) {
        bail!("--input - and --program - cannot both read standard input");
    }
    let input = match &args.input {
        Some(path) => read_input(path)?,
        None => Vec::new(),
    };
    let image = match &args.program {
        Some(path) => image_from_program(path)?,
        None => sample_image(),
    };
    // A program that can run off the end of its code panics there: said
    // next to a panic outcome, since nothing else shows where it stopped.
    let off_end = args
        .program
        .as_ref()
        .and_then(|_| crate::cli_asm::last_instruction_falls_off_end(&image.code));
    let mut kernel = Kernel::new(args.backend.into())?;
    let mut instance = kernel.create_instance(&image)?;
    if !args.json {
        println!("backend: {}", kernel.backend());
        println!("instance: {instance}");
        if args.input.is_some() {
            println!("input: {} bytes", input.len());
        }
    }
    let mut call = Invocation {
        instance: Some(instance),
        endpoint: endpoint_number(&image, &args.endpoint)?,
        args: regs,
        gas: args.gas,
        input,
        timeout: args.timeout,
    };
    for i in 0..args.times {
        call.instance = Some(instance);
        let o = kernel.invoke_one(&call)?;
        if args.json {
            println!("{}", outcome_json(i, &o));
        } else {
            println!("{}", outcome_text(i, &o));
            if let (ExitReason::Panic, Some(pc)) = (o.exit, off_end) {
                println!(
                    "  note: the last instruction (code offset {pc}) can continue past the end \
                     of the code, which panics; end the program with `halt` (jump [r0]), \
                     `trap` or a jump"
                );
            }
        }
        print_logs(i, &kernel.take_logs(), args.json);
        instance = o.instance;
    }
    Ok(ExitCode::SUCCESS)
}

/// Most invocations one `--per-call` request may chain.
const MAX_PER_CALL: u32 = 10_000;

pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.per_call == 0 || args.per_call > MAX_PER_CALL {
        bail!(
            "--per-call must be between 1 and {MAX_PER_CALL} (got {})",
            args.per_call
        );
    }
    if let Some(only) = &args.only
        && !BENCHMARKS.iter().any(|(name, _)| name == only)
    {
        let names: Vec<&str> = BENCHMARKS.iter().map(|(name, _)| *name).collect();
        bail!("no benchmark {only:?}; have: {}", names.join(", "));
    }
    if let Some(jobs) = args.jobs {
        let (Some(calls), endpoint) = (
            args.calls,
            match args.call {
                CallKind::InvokeEmpty => Endpoint::Empty,
                CallKind::InvokeIncrement => Endpoint::Increment,
                _ => bail!("--jobs runs invoke-empty or invoke-increment calls"),
            },
        ) else {
            bail!("--jobs needs --calls N");
        };
        let per_call = u64::from(args.per_call);
        return crate::cli_soak::pool_bench(
            args.backend,
            jobs,
            args.instances,
            endpoint,
            calls,
            per_call,
        );
    }
    let mut kernel = Kernel::new(args.backend.into())?;
    if let Some(n) = args.calls {
        let instance = match args.call {
            CallKind::Ping => CapHash([0; 32]),
            CallKind::InvokeCallEmpty => {
                let child = kernel.create_instance(&sample_image())?;
                let child = kernel.get_cap(&child)?;
                kernel.create_instance_with_caps(&sample_image(), &[(0, child)])?
            }
            _ => kernel.create_instance(&sample_image())?,
        };
        let mut current = instance;
        let start = Instant::now();
        for _ in 0..n {
            match args.call {
                CallKind::Ping => kernel.ping()?,
                CallKind::InvokeEmpty | CallKind::InvokeIncrement | CallKind::InvokeCallEmpty => {
                    let endpoint = match args.call {
                        CallKind::InvokeEmpty => Endpoint::Empty,
                        CallKind::InvokeCallEmpty => Endpoint::CallEmpty,
                        _ => Endpoint::Increment,
                    };
                    let batch: Vec<Invocation> = (0..args.per_call.max(1))
                        .map(|i| Invocation {
                            instance: (i == 0).then_some(current),
                            endpoint: endpoint.index(),
                            args: [0; 4],
                            gas: 1000,
                            input: Vec::new(),
                            timeout: None,
                        })
                        .collect();
                    for result in kernel.invoke_batch(&batch)? {
                        current = result?.instance;
                    }
                }
            }
        }
        let elapsed = start.elapsed();
        println!(
            "{} backend: {n} × {:?} (×{} per call) in {elapsed:?} ({:?} per call)",
            kernel.backend(),
            args.call,
            args.per_call,
            elapsed.checked_div(n.max(1) as u32).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !args.guest {
        bail!("say what to measure: --guest (in-kernel micro-benchmarks) or --calls N");
    }
    match args.iters {
        Some(n) => println!(
            "{} backend, {n} iterations each (rdtsc cycles)",
            kernel.backend()
        ),
        None => println!(
            "{} backend, iterations chosen per benchmark to take about {} s (rdtsc cycles)",
            kernel.backend(),
            BENCH_TARGET.as_secs()
        ),
    }
    for (name, what) in BENCHMARKS {
        if args.only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let iters = match args.iters {
            Some(n) => n,
            None => calibrated_iters(&mut kernel, name)?,
        };
        let r = kernel.bench(name, iters)?;
        match r.cycles.checked_div(r.iters) {
            Some(per_iter) => println!("{name:>18}: {per_iter:>12} cycles/iter  ({what})"),
            // Start-up only (what scripts/measure-calls.sh subtracts).
            None => println!("{name:>18}: 0 iterations (set-up only, no per-iteration figure)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How long each micro-benchmark should run when `--iters` is not given.
const BENCH_TARGET: Duration = Duration::from_secs(1);
/// The most iterations a calibrated micro-benchmark runs.
const BENCH_MAX_ITERS: u64 = 1000;
/// Iterations of the probe that times a micro-benchmark.
const BENCH_PROBE_ITERS: u64 = 3;

/// Iterations of `name` that take about [`BENCH_TARGET`] on this kernel
/// (the sandbox on nested KVM is ~1000× slower than the local backend, so
/// a fixed count is either noise or minutes).
fn calibrated_iters(kernel: &mut Kernel, name: &str) -> anyhow::Result<u64> {
    let start = Instant::now();
    kernel.bench(name, BENCH_PROBE_ITERS)?;
    let per_iter = start.elapsed().as_secs_f64() / BENCH_PROBE_ITERS as f64;
    let fit = (BENCH_TARGET.as_secs_f64() / per_iter.max(1e-9)) as u64;
    Ok(fit.clamp(BENCH_PROBE_ITERS, BENCH_MAX_ITERS))
}

/// The demo's head in the store: the counter instance it continues from.
const DEMO_HEAD: &str = "demo";

/// The demo's starting state: the instance the store's `demo` head names
/// (its caps are staged, so the kernel fetches them when needed), or a
/// fresh instance of the sample.
/// The demo's starting instance, whether it was resumed from the store,
/// and the demo head as it was read (the save moves it from there).
type DemoStart = (CapHash, bool, Option<CapHash>);

fn demo_start(kernel: &mut Kernel, store: Option<&Store>) -> anyhow::Result<DemoStart> {
    // A corrupt demo head is reported and replaced by a fresh counter (the
    // demo's state is not worth refusing to run over).
    let head = match store.map(|s| s.head(DEMO_HEAD)) {
        Some(Ok(head)) => head,
        Some(Err(e @ capbox::StoreError::CorruptHead { .. })) => {
            eprintln!("warning: {e}; removing it and starting a fresh counter");
            if let Some(store) = store {
                store.remove_head(DEMO_HEAD)?;
            }
            None
        }
        Some(Err(e)) => return Err(e.into()),
        None => None,
    };
    if let Some(store) = store
        && let Some(head) = head
        && let Some(Cap::Instance(inst)) = store.get(&head)?
    {
        let mut caps = vec![Cap::Instance(inst.clone())];
        for link in [
            CapHashOrRef::Hash(inst.image),
            inst.memory.clone(),
            inst.root_cnode.clone(),
        ] {
            let CapHashOrRef::Hash(h) = link else {
                continue;
            };
            match store.get(&h)? {
                Some(cap) => caps.push(cap),
                None => bail!("the store's {DEMO_HEAD} head {head} is missing blob {h}"),
            }
        }
        kernel.stage_caps(&caps)?;
        return Ok((head, true, Some(head)));
    }
    let image = sample_image();
    let image_cap = Cap::Image(image.clone());
    let fresh = new_instance(image_cap.hash()?, &image)?;
    let caps = [image_cap, fresh.memory, fresh.root_cnode, fresh.instance];
    if let Some(store) = store {
        for cap in &caps {
            store.put(cap)?;
        }
    }
    kernel.put_caps(&caps)?;
    Ok((fresh.instance_hash, false, head))
}

/// Saves the instance's state (instance, image, memory, root cnode) and
/// moves the demo head from `from` (what it was when the demo started,
/// `None`: absent) to it. If another process moved the head meanwhile
/// (two demos at once), its count is kept and this run's is not saved:
/// `false`, with a warning.
fn demo_save(
    kernel: &mut Kernel,
    store: &Store,
    from: Option<&CapHash>,
    instance: &CapHash,
) -> anyhow::Result<bool> {
    kernel.export_instance(instance)?;
    // Re-puts from the kernel whatever a concurrent gc removed meanwhile.
    let saved = store.save_graph_if(
        DEMO_HEAD,
        Some(from),
        instance,
        |h| kernel.get_cap(h).ok(),
        &[capbox::HeadChange::action("demo")],
    );
    match saved {
        Ok(_) => Ok(true),
        Err(capbox::StoreError::HeadMoved { found, .. }) => {
            let found = found.map_or("removed".to_owned(), |h| format!("now {h}"));
            eprintln!(
                "warning: head `{DEMO_HEAD}` moved while this demo ran ({found}; another demo?); \
                 keeping that one, this run's count is not saved"
            );
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn demo(args: DemoArgs, store_options: capbox::StoreOptions) -> anyhow::Result<ExitCode> {
    let mut kernel = Kernel::new(args.backend.into())?;
    println!("capbox demo: a counter program kept in its instance memory");
    println!("backend: {}", kernel.backend());
    let store_path = args.store.clone().unwrap_or_else(Store::default_path);
    let in_postgres = matches!(
        capbox::StoreLocation::parse(&store_path),
        capbox::StoreLocation::Postgres(_)
    );
    let opened = (!in_postgres).then(|| Store::open_with(&store_path, store_options));
    let store = match opened {
        None => {
            eprintln!("capbox: not persisting the demo (it keeps its state in a directory store)");
            None
        }
        Some(Ok(store)) => Some(store),
        Some(Err(e)) => {
            eprintln!(
                "capbox: not persisting the demo ({:#})",
                anyhow::Error::from(e)
            );
            None
        }
    };
    let (start, resumed, head_at_start) = demo_start(&mut kernel, store.as_ref())?;
    match (&store, resumed) {
        (Some(s), true) => println!("resuming from the store ({}): {start}", s.path().display()),
        _ => println!("fresh instance: {start}"),
    }
    let steps: [(&str, Endpoint, u64); 6] = [
        ("increment", Endpoint::Increment, 0),
        ("increment", Endpoint::Increment, 0),
        ("add 40", Endpoint::Add, 40),
        ("output", Endpoint::Output, 0),
        ("trap (state kept)", Endpoint::Trap, 0),
        ("read", Endpoint::Read, 0),
    ];
    let calls: Vec<Invocation> = steps
        .iter()
        .enumerate()
        .map(|(i, (_, ep, arg))| Invocation {
            instance: if i == 0 { Some(start) } else { None },
            endpoint: ep.index(),
            args: [*arg, 0, 0, 0],
            gas: 10_000,
            input: Vec::new(),
            timeout: None,
        })
        .collect();
    let results = kernel.invoke_batch(&calls)?;
    let mut last = start;
    for ((label, _, _), result) in steps.iter().zip(results) {
        let o = result?;
        println!(
            "{label:>18}: exit {:<8} r7={:<4} gas_used={:<3} output={:<18} state {}",
            exit_text(&o),
            o.r7,
            o.gas_used,
            if o.output.is_empty() {
                "-".into()
            } else {
                hex(&o.output)
            },
            o.instance
        );
        last = o.instance;
    }
    if let Some(store) = &store
        && demo_save(&mut kernel, store, head_at_start.as_ref(), &last)?
    {
        println!("saved as head `{DEMO_HEAD}` in {}", store.path().display());
    }
    crate::cli_apps::demo_users(&mut kernel, store.as_ref())?;
    let stats = kernel.stats()?;
    println!("kernel: {}", stats_text(&stats));
    Ok(ExitCode::SUCCESS)
}

/// The kernel's stats in one line: the directory against its budget, the
/// caches, evictions, spills and re-fetches, and the page arena.
pub(crate) fn stats_text(s: &capbox::shared::abi::StatsMsg) -> String {
    let mib = |bytes: u64| bytes as f64 / f64::from(1u32 << 20);
    format!(
        "{} blobs ({:.1} MiB; budget {} blobs, {:.1} MiB), {} working entries, \
         {} programs cached ({} as machine code); {} evicted ({:.1} MiB), {} spilled ({:.1} MiB), \
         {} fetched ({} re-fetched); arena {:.1} of {:.1} MiB",
        s.blobs,
        mib(s.blob_bytes),
        s.budget_blobs,
        mib(s.budget_bytes),
        s.instances,
        s.programs_cached,
        s.programs_native,
        s.evictions,
        mib(s.evicted_bytes),
        s.spilled_blobs,
        mib(s.spilled_bytes),
        s.fetched,
        s.refetched,
        mib(s.arena_used_bytes),
        mib(s.arena_capacity_bytes),
    )
}
