//! The host ↔ guest ABI: the guest function list, the ABI version (also
//! embedded in the guest ELF as a note) and the flatbuffers messages.
//!
//! Every guest function takes one request message as a byte vector and
//! returns one reply message as a byte vector; the schema is
//! `capbox_abi.fbs` beside this file and `generated/` is flatc's output
//! (regenerate with `scripts/gen-abi.sh`).

mod data_nodes;
mod functions;
mod host_keeps;
#[allow(
    clippy::all,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    unused_imports,
    non_camel_case_types
)]
#[rustfmt::skip]
#[path = "generated/capbox_abi_generated.rs"]
mod generated;
mod invoke_codec;
mod messages;
mod note;
mod progress;
mod stats;
mod stream;

pub use data_nodes::{
    DATA_NODE_BYTES, DataNodesReply, MAX_DATA_NODES_BYTES, TreePosition, decode_data_nodes_reply,
    decode_data_nodes_request, encode_data_nodes_body, encode_data_nodes_reply,
    encode_data_nodes_request, position_bytes,
};
pub use functions::{ABI_VERSION, GuestFunction, HostFunction};
pub use generated::capbox_abi as wire;
pub use host_keeps::{MAX_HOST_KEEPS, decode_host_keeps_request, encode_host_keeps_request};
pub use invoke_codec::{
    InvokeReplyWriter, InvokeRequestView, decode_invoke_one_fixed, decode_invoke_one_request,
    decode_invoke_request, encode_invoke_one_request,
};
pub use messages::{
    AbiError, CapBlobMsg, ErrorKind, ExitMsg, InvocationMsg, InvokeResultMsg, RemoteError,
    decode_get_cap_reply, decode_get_cap_request, decode_invoke_reply, decode_invoke_reply_for,
    decode_put_cap_reply, decode_put_cap_request, encode_get_cap_reply, encode_get_cap_request,
    encode_invoke_reply, encode_invoke_request, encode_invoke_request_reporting,
    encode_put_cap_reply, encode_put_cap_request,
};
pub use note::{ABI_NOTE_NAME, ABI_NOTE_SECTION, ABI_NOTE_TYPE, AbiNote};
pub use progress::{ProgressReportMsg, ReportMode, decode_progress_report, encode_progress_report};
pub use stats::{
    BenchReplyMsg, StatsMsg, decode_bench_reply, decode_bench_request, decode_set_budget_request,
    decode_stats_reply, encode_bench_reply, encode_bench_request, encode_set_budget_request,
    encode_stats_error, encode_stats_reply,
};
pub use stream::{
    RangeRequest, STREAM_CHUNK_HEADER, StreamRequest, decode_range_reply, decode_range_request,
    decode_stream_request, encode_range_reply, encode_range_request, encode_stream_request,
};
