//! The w3f PVM test vectors: all 201 must pass.
//!
//! Reads the vectors from the directory in `CAPBOX_PVM_VECTORS` (never
//! copied into the repository). Without the variable the test says loudly
//! that it is skipped; a variable pointing at a missing or empty directory
//! fails.

use std::io::Write;
use std::path::Path;

use capbox::conformance::{ConformanceError, VectorError, print_report, run_dir};

#[test]
fn w3f_pvm_vectors_all_pass() {
    let Some(dir) = std::env::var_os("CAPBOX_PVM_VECTORS") else {
        // Written to the stream directly so the harness does not capture it.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED w3f_pvm_vectors_all_pass: set CAPBOX_PVM_VECTORS to the \
             pvm-vectors/programs directory to run the PVM conformance vectors ***\n"
        );
        return;
    };
    let dir = Path::new(&dir);
    let report = match run_dir(dir) {
        Ok(report) => report,
        Err(e) => panic!("CAPBOX_PVM_VECTORS={}: {e}", dir.display()),
    };
    print_report(&report);
    assert_eq!(
        (report.passed(), report.failed()),
        (201, 0),
        "expected 201 passed, 0 failed"
    );
}

#[test]
fn missing_directory_is_a_clear_error() {
    let err = run_dir(Path::new("/nonexistent/capbox-vectors")).unwrap_err();
    assert!(matches!(err, ConformanceError::ReadDir { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/capbox-vectors"));
}

#[test]
fn an_empty_directory_is_an_error_and_invalid_json_a_failure() {
    let dir = std::env::temp_dir().join(format!("capbox-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = run_dir(&dir).unwrap_err();
    assert!(matches!(err, ConformanceError::Empty(_)), "{err}");
    std::fs::write(dir.join("broken.json"), "{ \"name\": 3 }").unwrap();
    let report = run_dir(&dir).unwrap();
    assert_eq!((report.passed(), report.failed()), (0, 1));
    let result = &report.results[0];
    assert!(
        matches!(result.error, Some(VectorError::InvalidJson(_))),
        "{:?}",
        result.error
    );
    assert!(result.file.ends_with("broken.json"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The vectors again, run in slices of 1, 7 and 1000 gas
/// (`Machine::run_sliced`): slicing changes no result.
#[test]
fn w3f_pvm_vectors_pass_in_slices() {
    let Some(dir) = std::env::var_os("CAPBOX_PVM_VECTORS") else {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED w3f_pvm_vectors_pass_in_slices: set CAPBOX_PVM_VECTORS ***\n"
        );
        return;
    };
    for slice in [1, 7, 1000] {
        let report = capbox::conformance::run_dir_sliced(Path::new(&dir), slice).unwrap();
        assert_eq!(
            (report.passed(), report.failed()),
            (201, 0),
            "slice {slice}"
        );
    }
}

/// The vectors again, each program compiled to machine code
/// (`capbox_shared::pvm::jit`), unsliced and in slices of 1 and 7 gas.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn w3f_pvm_vectors_pass_as_machine_code() {
    let Some(dir) = std::env::var_os("CAPBOX_PVM_VECTORS") else {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED w3f_pvm_vectors_pass_as_machine_code: set CAPBOX_PVM_VECTORS ***\n"
        );
        return;
    };
    for slice in [u64::MAX, 1, 7] {
        let options = capbox::conformance::RunOptions {
            slice,
            native: true,
            ..Default::default()
        };
        let report = capbox::conformance::run_dir_with(Path::new(&dir), &options).unwrap();
        assert_eq!(
            (report.passed(), report.failed()),
            (201, 0),
            "slice {slice}"
        );
    }
}
