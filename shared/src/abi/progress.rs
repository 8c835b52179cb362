//! Progress reports of an `invoke` batch (host function
//! `report_progress`): the kernel tells the host each call's result as it
//! completes, and optionally the blobs the call committed, so that a guest
//! fault in the middle of a batch loses at most the call in flight.

use alloc::vec::Vec;

use super::messages::{AbiError, CapBlobMsg, add_caps, build_message, malformed, read_cap, root};
use super::wire;

/// What the kernel reports while a batch runs (the request's `report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportMode {
    /// Nothing: the reply is the only result.
    #[default]
    Off,
    /// Each call's result as it completes.
    Outcomes,
    /// Each call's result and the blobs it committed.
    OutcomesAndState,
}

impl ReportMode {
    /// The schema's value.
    pub fn to_wire(self) -> wire::ReportMode {
        match self {
            ReportMode::Off => wire::ReportMode::Off,
            ReportMode::Outcomes => wire::ReportMode::Outcomes,
            ReportMode::OutcomesAndState => wire::ReportMode::OutcomesAndState,
        }
    }

    /// From the schema's value; an unknown one (a newer host) is `Off`.
    pub fn from_wire(mode: wire::ReportMode) -> Self {
        match mode {
            wire::ReportMode::Outcomes => ReportMode::Outcomes,
            wire::ReportMode::OutcomesAndState => ReportMode::OutcomesAndState,
            _ => ReportMode::Off,
        }
    }

    /// Whether results are reported.
    pub fn reports(self) -> bool {
        self != ReportMode::Off
    }

    /// Whether committed blobs are reported.
    pub fn reports_state(self) -> bool {
        self == ReportMode::OutcomesAndState
    }
}

/// One progress report, read in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressReportMsg<'b> {
    /// The call's number in the batch.
    pub call: u32,
    /// Its result, an `InvokeReply` of one call (`None`: more reports for
    /// this call follow).
    pub result: Option<&'b [u8]>,
    /// Blobs the call committed.
    pub blobs: Vec<CapBlobMsg<'b>>,
}

/// Encodes a progress report.
pub fn encode_progress_report(
    call: u32,
    result: Option<&[u8]>,
    blobs: &[CapBlobMsg<'_>],
) -> Vec<u8> {
    build_message(|fbb| {
        let result = result.map(|r| fbb.create_vector(r));
        let blobs = (!blobs.is_empty()).then(|| add_caps(fbb, blobs));
        let report = wire::ProgressReport::create(
            fbb,
            &wire::ProgressReportArgs {
                call,
                result,
                blobs,
            },
        );
        fbb.finish(report, None);
    })
}

/// Decodes a progress report (verified; every blob must name its hash).
/// The caller checks call numbers, the result and the blobs' contents.
pub fn decode_progress_report(bytes: &[u8]) -> Result<ProgressReportMsg<'_>, AbiError> {
    const NAME: &str = "ProgressReport";
    let report = root::<wire::ProgressReport>(NAME, bytes)?;
    let blobs: Vec<CapBlobMsg<'_>> = report.blobs().into_iter().flatten().map(read_cap).collect();
    if blobs.iter().any(|b| b.hash.is_none()) {
        return Err(malformed(NAME, "a blob without its hash"));
    }
    let result = report.result().map(|r| r.bytes());
    if result.is_none() && blobs.is_empty() {
        return Err(malformed(NAME, "neither a result nor blobs"));
    }
    Ok(ProgressReportMsg {
        call: report.call(),
        result,
        blobs,
    })
}

/// The `report` field of an `invoke` request (unknown values: `Off`).
pub(super) fn report_mode_of(req: &wire::InvokeRequest<'_>) -> ReportMode {
    ReportMode::from_wire(req.report())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{InvocationMsg, InvokeRequestView, encode_invoke_request_reporting};

    #[test]
    fn the_report_mode_travels_in_the_request() {
        let call = InvocationMsg {
            instance: [1; 32],
            endpoint: 2,
            args: [3; 4],
            gas: 4,
            input: b"in",
            timeout: 5,
        };
        for mode in [
            ReportMode::Off,
            ReportMode::Outcomes,
            ReportMode::OutcomesAndState,
        ] {
            let bytes = encode_invoke_request_reporting(&[], &[call, call], mode);
            let view = InvokeRequestView::new(&bytes).unwrap();
            assert_eq!(view.report(), mode);
            assert_eq!(view.calls().collect::<Vec<_>>(), [call, call]);
        }
        // A value this kernel does not know means no reports.
        assert_eq!(ReportMode::from_wire(wire::ReportMode(9)), ReportMode::Off);
    }

    #[test]
    fn reports_round_trip_and_empty_ones_are_refused() {
        let blob = CapBlobMsg {
            hash: Some([7; 32]),
            bytes: b"bytes",
        };
        let bytes = encode_progress_report(3, Some(b"result"), &[blob]);
        let msg = decode_progress_report(&bytes).unwrap();
        assert_eq!(
            msg,
            ProgressReportMsg {
                call: 3,
                result: Some(&b"result"[..]),
                blobs: alloc::vec![blob],
            }
        );
        let only_blobs = encode_progress_report(0, None, &[blob]);
        assert_eq!(decode_progress_report(&only_blobs).unwrap().result, None);
        assert!(decode_progress_report(&encode_progress_report(0, None, &[])).is_err());
        let no_hash = CapBlobMsg { hash: None, ..blob };
        assert!(decode_progress_report(&encode_progress_report(0, None, &[no_hash])).is_err());
        assert!(decode_progress_report(b"\x01\x02").is_err());
    }
}
