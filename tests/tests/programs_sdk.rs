//! The SDK (sdk/, built only for PolkaVM) agrees with the kernel: its
//! error codes are the kernel's, and it declares one import per kernel op,
//! named `capbox_<op>` with `index = <op number>` (what the importer
//! expects so it never rewrites code).

#[path = "../../sdk/src/error.rs"]
#[allow(dead_code)]
mod sdk_error;

use capbox::shared::kernel::ops::{self, KernelOp};

#[test]
fn sdk_error_codes_are_the_kernels() {
    use sdk_error::Error;
    let pairs = [
        (sdk_error::ERR_MEMORY, ops::ERR_MEMORY, Error::Memory),
        (sdk_error::ERR_TOO_LONG, ops::ERR_TOO_LONG, Error::TooLong),
        (sdk_error::ERR_SLOT, ops::ERR_SLOT, Error::Slot),
        (sdk_error::ERR_EMPTY, ops::ERR_EMPTY, Error::Empty),
        (sdk_error::ERR_KIND, ops::ERR_KIND, Error::Kind),
        (sdk_error::ERR_OFFSET, ops::ERR_OFFSET, Error::Offset),
        (sdk_error::ERR_DEPTH, ops::ERR_DEPTH, Error::Depth),
        (sdk_error::ERR_OCCUPIED, ops::ERR_OCCUPIED, Error::Occupied),
        (sdk_error::ERR_LIMIT, ops::ERR_LIMIT, Error::Limit),
        (sdk_error::ERR_ENDPOINT, ops::ERR_ENDPOINT, Error::Endpoint),
        (sdk_error::ERR_CHILD, ops::ERR_CHILD, Error::Child),
    ];
    for (sdk, kernel, error) in pairs {
        assert_eq!(sdk, kernel, "{error}");
        assert_eq!(Error::from_code(kernel), Some(error));
        assert_eq!(error.code(), kernel);
        assert_eq!(sdk_error::check(kernel), Err(error));
    }
    assert_eq!(sdk_error::OK, ops::OK);
    assert_eq!(sdk_error::INFO_EMPTY, ops::INFO_EMPTY);
    let calls = [
        (sdk_error::CALL_HALT, ops::CALL_HALT),
        (sdk_error::CALL_PANIC, ops::CALL_PANIC),
        (sdk_error::CALL_OUT_OF_GAS, ops::CALL_OUT_OF_GAS),
        (sdk_error::CALL_PAGE_FAULT, ops::CALL_PAGE_FAULT),
    ];
    for (sdk, kernel) in calls {
        assert_eq!(sdk, kernel);
    }
    // Values below the error range are values.
    assert_eq!(
        sdk_error::check(sdk_error::ERR_MIN - 1),
        Ok(sdk_error::ERR_MIN - 1)
    );
    assert_eq!(sdk_error::check(0), Ok(0));
    assert!(matches!(
        Error::from_code(u64::MAX - 15),
        Some(Error::Other(_))
    ));
}

#[test]
fn sdk_imports_every_kernel_op_by_its_number() {
    let sys =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/src/sys.rs")).unwrap();
    // `#[polkavm_import(index = N)]` followed by `pub fn capbox_NAME(`.
    let mut declared = Vec::new();
    let mut index = None;
    for line in sys.lines().map(str::trim) {
        if let Some(n) = line
            .strip_prefix("#[polkavm_import(index = ")
            .and_then(|r| r.strip_suffix(")]"))
        {
            index = Some(n.parse::<u32>().unwrap());
        } else if let Some(rest) = line.strip_prefix("pub fn capbox_") {
            let name = rest.split('(').next().unwrap();
            declared.push((
                index.take().expect("an index before each import"),
                name.to_string(),
            ));
        }
    }
    let expected: Vec<(u32, String)> = KernelOp::ALL
        .iter()
        .map(|op| (op.number(), op.name().to_string()))
        .collect();
    assert_eq!(
        declared, expected,
        "sdk/src/sys.rs vs the kernel's op table"
    );
    // And a safe wrapper for each op in the crate root.
    let lib =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/src/lib.rs")).unwrap();
    for op in KernelOp::ALL {
        assert!(
            lib.contains(&format!("sys::capbox_{}(", op.name())),
            "no wrapper calls capbox_{}",
            op.name()
        );
    }
}
