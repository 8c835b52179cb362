//! `InstanceCap` (a program instance's persistent state) and `TypeCap`.

use super::CapHashOrRef;
use crate::hash::{CapHash, Domain, hash_parts_in};

/// A program instance's persistent state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceCap {
    /// The Image it runs.
    pub image: CapHash,
    /// Its memory: a Data cap of the read-write pages written so far.
    pub memory: CapHashOrRef,
    /// Its root capability table: a CNode cap.
    pub root_cnode: CapHashOrRef,
    /// Its type identity (see [`TypeCap::child`]).
    pub image_hash_chain: CapHash,
}

/// A type identity that spawned instances inherit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeCap {
    /// The identity chain.
    pub image_hash_chain: CapHash,
}

impl TypeCap {
    /// The chain of a root instance (one not spawned by another): all zeros.
    pub const ROOT_CHAIN: CapHash = CapHash([0; 32]);

    /// The chain of an instance of `image_hash` spawned by an instance whose
    /// chain is `parent_chain`: `H_typechain(parent_chain ‖ image_hash)`.
    pub fn child(parent_chain: &CapHash, image_hash: &CapHash) -> CapHash {
        CapHash(hash_parts_in(
            Domain::TypeChain,
            &[parent_chain.as_bytes(), image_hash.as_bytes()],
        ))
    }
}
