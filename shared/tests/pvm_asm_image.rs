//! Image directives of the assembler (`assemble_image`): named endpoints,
//! data sections, heap pages, stack; their defaults and errors.

use capbox_shared::pvm::Program;
use capbox_shared::pvm::asm::{AsmErrorKind, DEFAULT_STACK, assemble, assemble_image};

const SOURCE: &str = "
.endpoint first @a
.endpoint second @b
.ro_data 01 02 0x03
.ro_data 04
.rw_data ff, ee
.heap_pages 3
.stack 8192
@a:
r7 = 1
jump [r0 + 0]
@b:
r7 = 2
jump [r0 + 0]
";

#[test]
fn directives_fill_the_image() {
    let image = assemble_image(SOURCE).unwrap();
    assert_eq!(image.ro_data, [1, 2, 3, 4]);
    assert_eq!(image.rw_data, [0xff, 0xee]);
    assert_eq!((image.heap_pages, image.stack_size), (3, 8192));
    assert_eq!(image.endpoint_names, ["first", "second"]);
    let program = Program::from_blob(&image.code).unwrap();
    assert_eq!(image.endpoints[0], 0);
    assert!(image.endpoints[1] > 0 && program.is_basic_block_start(image.endpoints[1]));
    assert_eq!(image.endpoint_by_name("second"), Some(1));
    // The code is what `assemble` makes: the directives add no code.
    assert_eq!(image.code, assemble(SOURCE).unwrap());
}

#[test]
fn defaults_are_run_programs() {
    let image = assemble_image("r7 = 1\njump [r0 + 0]").unwrap();
    assert_eq!(image.endpoints, [0]);
    assert!(image.endpoint_names.is_empty());
    assert_eq!(image.rw_data, vec![0; 4096]);
    assert_eq!((image.heap_pages, image.stack_size), (0, DEFAULT_STACK));
    assert!(image.ro_data.is_empty());
    // Heap pages alone: no default rw page.
    let image = assemble_image(".heap_pages 1\ntrap").unwrap();
    assert!(image.rw_data.is_empty());
    assert_eq!(image.heap_pages, 1);
}

fn error(source: &str) -> (usize, AsmErrorKind) {
    let e = assemble_image(source).unwrap_err();
    (e.line, e.kind)
}

#[test]
fn bad_directives_are_errors_with_their_line() {
    let cases = [
        ".endpoint a @x\n.endpoint a @x\n@x: trap",
        "trap\n.endpoint a\n",
        "trap\n.endpoint a x\n",
        "trap\n.endpoint a @x @y\n@x: trap",
        "trap\n.ro_data zz\n",
        "trap\n.rw_data\n",
        "trap\n.stack many\n",
        "trap\n.heap_pages 1\n.heap_pages 2\n",
    ];
    let lines = [2, 2, 2, 2, 2, 2, 2, 3];
    for (source, line) in cases.into_iter().zip(lines) {
        let (at, kind) = error(source);
        assert!(
            matches!(kind, AsmErrorKind::BadDirective(_)),
            "{source}: {kind:?}"
        );
        assert_eq!(at, line, "{source}");
    }
    // An endpoint at a label that is never defined.
    let (at, kind) = error("trap\n.endpoint a @nowhere\n");
    assert_eq!(at, 2);
    assert!(matches!(kind, AsmErrorKind::UndefinedLabel(_)), "{kind:?}");
    // A name over the Image's bound.
    let long = format!(".endpoint {} @x\n@x: trap", "n".repeat(256));
    assert!(matches!(error(&long).1, AsmErrorKind::BadDirective(_)));
}
