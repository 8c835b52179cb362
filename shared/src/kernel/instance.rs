//! Making a fresh instance of an image (what the host publishes before the
//! first invocation, and what `spawn` will create).

use crate::cap::{CNode, Cap, CapHashOrRef, Data, Image, InstanceCap, TypeCap};
use crate::hash::CapHash;

use super::error::KernelError;

/// The caps of a new instance; publish all four (with the image).
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// Its memory: the image's initial read-write data.
    pub memory: Cap,
    /// Its empty root capability table.
    pub root_cnode: Cap,
    /// The instance itself.
    pub instance: Cap,
    /// The instance's hash.
    pub instance_hash: CapHash,
}

/// A root instance of `image` (type chain derived from the root chain).
pub fn new_instance(image_hash: CapHash, image: &Image) -> Result<NewInstance, KernelError> {
    new_instance_with_slots(image_hash, image, &[])
}

/// A root instance of `image` whose root CNode starts with `slots` (slot,
/// cap hash) filled: how a host hands a program its first caps (e.g. the
/// Image of the children it spawns). The caps themselves must be published
/// too. A slot ≥ 65536 is an error; a repeated slot keeps the last.
pub fn new_instance_with_slots(
    image_hash: CapHash,
    image: &Image,
    slots: &[(u32, CapHash)],
) -> Result<NewInstance, KernelError> {
    let memory = Data::from_bytes(&image.rw_data)?;
    let memory_hash = memory.hash();
    let mut cnode = CNode::new();
    for &(slot, hash) in slots {
        cnode.set(slot, CapHashOrRef::Hash(hash))?;
    }
    let root_cnode = Cap::CNode(cnode);
    let root_hash = root_cnode.hash()?;
    let instance = Cap::Instance(InstanceCap {
        image: image_hash,
        memory: CapHashOrRef::Hash(memory_hash),
        root_cnode: CapHashOrRef::Hash(root_hash),
        image_hash_chain: TypeCap::child(&TypeCap::ROOT_CHAIN, &image_hash),
    });
    let instance_hash = instance.hash()?;
    Ok(NewInstance {
        memory: Cap::Data(memory),
        root_cnode,
        instance,
        instance_hash,
    })
}
