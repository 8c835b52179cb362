//! The guest keeps its directory in a `static`: this must compile and work.

use capbox_shared::{CacheDirectory, Cap, Data, TypeCap};
use foldhash::fast::FixedState;

static DIRECTORY: CacheDirectory<FixedState> =
    CacheDirectory::new_const(FixedState::with_seed(7), FixedState::with_seed(7));

#[test]
fn static_directory_stores_and_promotes() {
    let cap = Cap::Type(TypeCap {
        image_hash_chain: TypeCap::ROOT_CHAIN,
    });
    let hash = DIRECTORY.put_cap(&cap).unwrap();
    assert!(DIRECTORY.contains_blob(&hash));
    let data = Cap::Data(Data::from_bytes(b"hello").unwrap());
    let data_hash = DIRECTORY.put_cap(&data).unwrap();
    let working = DIRECTORY.promote_blob_to_instance(&data_hash).unwrap();
    assert_eq!(*DIRECTORY.get_instance(&working).unwrap(), data);
    drop(working);
    assert_eq!(DIRECTORY.sweep_instances(), 1);
    assert_eq!(DIRECTORY.instance_count(), 0);
}
