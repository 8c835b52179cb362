//! The cap model: five kinds of content-addressed capabilities, their
//! canonical encoding and their hashes (DESIGN §2).
//!
//! Encoding (all integers little-endian, fixed width, so every value has
//! exactly one form): a tag byte ([`CapKind`]) then the kind's body, see
//! [`Cap::encode`]. Hash: `Data` and `CNode` hash as Merkle roots kept in
//! persistent trees, so a change to one page or slot re-hashes O(log n)
//! nodes (see [`Data`] and [`CNode`]: `Domain::CapData` over `len ‖ root`
//! and `Domain::CapCNode` over `count ‖ root` of a depth-16 slot tree);
//! every other kind hashes its full canonical encoding in its own BLAKE3
//! domain (see [`crate::hash`]).

mod capref;
mod cnode;
mod codec;
mod data;
mod data_delta;
mod error;
mod image;
mod instance;
mod merkle;
mod page;
mod tree;

pub use capref::{CapHashOrRef, CapRef};
pub use cnode::{CNode, MAX_CNODE_SLOTS};
pub use data::{
    Data, MAX_DATA_LEN, MAX_DATA_PAGES, NodeDigest, PAGE_SIZE, Page, data_depth_for_len,
    data_hash_from_root, data_node_digest, data_page_digest, data_zero_digest,
};
pub use data_delta::{
    DATA_DELTA_TAG, apply_data_delta, data_delta_base, data_delta_len, encode_data_delta,
    is_data_delta,
};
pub use error::CapError;
pub use image::{
    Image, MAX_ENDPOINT_NAME_LEN, MAX_ENDPOINTS, MAX_HEAP_PAGES, MAX_IMAGE_SECTION_LEN,
};
pub use instance::{InstanceCap, TypeCap};
pub use page::SharedPage;

use alloc::vec::Vec;
use core::fmt;

use crate::hash::{CapHash, Domain, hash_in};

/// The kind of a cap; its discriminant is the encoding's tag byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CapKind {
    /// A paged byte string.
    Data = 0,
    /// A capability table.
    CNode = 1,
    /// A PVM program.
    Image = 2,
    /// A program instance's persistent state.
    Instance = 3,
    /// A type identity.
    Type = 4,
}

impl CapKind {
    /// The kind for an encoding tag byte.
    pub fn from_tag(tag: u8) -> Option<CapKind> {
        match tag {
            0 => Some(CapKind::Data),
            1 => Some(CapKind::CNode),
            2 => Some(CapKind::Image),
            3 => Some(CapKind::Instance),
            4 => Some(CapKind::Type),
            _ => None,
        }
    }

    /// The encoding tag byte.
    pub const fn tag(self) -> u8 {
        self as u8
    }

    /// Human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            CapKind::Data => "Data",
            CapKind::CNode => "CNode",
            CapKind::Image => "Image",
            CapKind::Instance => "Instance",
            CapKind::Type => "Type",
        }
    }
}

impl fmt::Display for CapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A capability.
#[derive(Clone, Debug, PartialEq)]
pub enum Cap {
    /// A paged byte string.
    Data(Data),
    /// A capability table.
    CNode(CNode),
    /// A PVM program.
    Image(Image),
    /// A program instance's persistent state.
    Instance(InstanceCap),
    /// A type identity.
    Type(TypeCap),
}

impl Cap {
    /// This cap's kind.
    pub fn kind(&self) -> CapKind {
        match self {
            Cap::Data(_) => CapKind::Data,
            Cap::CNode(_) => CapKind::CNode,
            Cap::Image(_) => CapKind::Image,
            Cap::Instance(_) => CapKind::Instance,
            Cap::Type(_) => CapKind::Type,
        }
    }

    /// The canonical encoding: tag byte, then the body.
    ///
    /// Bodies: `Data` = `len: u64, count: u32, count × (index: u32, 4096
    /// bytes)` (only non-zero pages, ascending); `CNode` = `count: u32, count ×
    /// (slot: u32, hash: 32 bytes)` (ascending); `Image` = `code, ro_data,
    /// rw_data` (each `len: u32` + bytes), `heap_pages: u32, stack_size: u32,
    /// count: u32, count × endpoint: u32`, then only if any endpoint is
    /// named, `count × (len: u32, UTF-8 name)` (`""` for an unnamed one;
    /// an image without names encodes as before names existed);
    /// `Instance` = `image, memory,
    /// root_cnode, image_hash_chain` (4 × 32 bytes); `Type` = 32 bytes.
    ///
    /// Fails with [`CapError::UnsettledRef`] if the cap still holds a `Ref`,
    /// or a limit error if a field is over its documented bound.
    pub fn encode(&self) -> Result<Vec<u8>, CapError> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        out.push(self.kind().tag());
        match self {
            Cap::Data(data) => codec::encode_data(data, &mut out),
            Cap::CNode(cnode) => codec::encode_cnode(cnode, &mut out)?,
            Cap::Image(image) => codec::encode_image(image, &mut out)?,
            Cap::Instance(instance) => codec::encode_instance(instance, &mut out)?,
            Cap::Type(ty) => out.extend_from_slice(ty.image_hash_chain.as_bytes()),
        }
        Ok(out)
    }

    /// Decodes one canonical encoding; rejects anything else (see
    /// [`CapError`]). Never panics; allocates at most about the input size.
    pub fn decode(bytes: &[u8]) -> Result<Cap, CapError> {
        codec::decode(bytes)
    }

    /// The content hash. `Data` and `CNode` use their incremental Merkle
    /// trees; the other kinds hash their canonical encoding in their kind's
    /// domain.
    pub fn hash(&self) -> Result<CapHash, CapError> {
        let domain = match self {
            Cap::Data(data) => return Ok(data.hash()),
            Cap::CNode(cnode) => return cnode.hash(),
            Cap::Image(_) => Domain::CapImage,
            Cap::Instance(_) => Domain::CapInstance,
            Cap::Type(_) => Domain::CapType,
        };
        Ok(CapHash(hash_in(domain, &self.encode()?)))
    }

    /// Whether the cap (directly) holds any `Ref`.
    pub fn has_refs(&self) -> bool {
        if let Cap::CNode(cnode) = self {
            return cnode.has_refs();
        }
        let mut found = false;
        self.for_each_ref(|_| found = true);
        found
    }

    /// Calls `visit` for every `CapRef` this cap holds directly (not
    /// through other caps). For a CNode this costs O(refs · log n), not
    /// O(slots).
    pub fn for_each_ref(&self, mut visit: impl FnMut(&CapRef)) {
        match self {
            Cap::CNode(cnode) => cnode.refs().for_each(visit),
            Cap::Instance(instance) => {
                for target in [&instance.memory, &instance.root_cnode] {
                    if let CapHashOrRef::Ref(r) = target {
                        visit(r);
                    }
                }
            }
            Cap::Data(_) | Cap::Image(_) | Cap::Type(_) => {}
        }
    }

    /// Calls `visit` for every `CapHashOrRef` this cap holds directly that
    /// is a `Ref` (only those), so it can rewrite them (used by settling).
    /// For a CNode this costs O(refs · log n), not O(slots).
    pub fn for_each_target_mut(&mut self, mut visit: impl FnMut(&mut CapHashOrRef)) {
        match self {
            Cap::CNode(cnode) => cnode.for_each_ref_mut(visit),
            Cap::Instance(instance) => {
                for target in [&mut instance.memory, &mut instance.root_cnode] {
                    if matches!(target, CapHashOrRef::Ref(_)) {
                        visit(target);
                    }
                }
            }
            Cap::Data(_) | Cap::Image(_) | Cap::Type(_) => {}
        }
    }

    /// Approximate heap + inline size in bytes (for statistics).
    pub fn approx_bytes(&self) -> usize {
        core::mem::size_of::<Cap>()
            + match self {
                // A tree leaf plus about one inner node per page or slot
                // (about 80 bytes per node for Data, 96 for CNode).
                Cap::Data(data) => data.present_page_count() * (PAGE_SIZE + 160),
                Cap::CNode(cnode) => cnode.len() * 192,
                Cap::Image(image) => {
                    image.code.len()
                        + image.ro_data.len()
                        + image.rw_data.len()
                        + image.endpoints.len() * 4
                }
                Cap::Instance(_) | Cap::Type(_) => 0,
            }
    }

    pub(crate) fn encoded_len_hint(&self) -> usize {
        match self {
            Cap::Data(data) => 13 + data.present_page_count() * (PAGE_SIZE + 4),
            Cap::CNode(cnode) => 5 + cnode.len() * 36,
            Cap::Image(image) => {
                25 + image.code.len()
                    + image.ro_data.len()
                    + image.rw_data.len()
                    + image.endpoints.len() * 4
            }
            Cap::Instance(_) => 129,
            Cap::Type(_) => 33,
        }
    }
}

impl From<Data> for Cap {
    fn from(value: Data) -> Self {
        Cap::Data(value)
    }
}

impl From<CNode> for Cap {
    fn from(value: CNode) -> Self {
        Cap::CNode(value)
    }
}

impl From<Image> for Cap {
    fn from(value: Image) -> Self {
        Cap::Image(value)
    }
}

impl From<InstanceCap> for Cap {
    fn from(value: InstanceCap) -> Self {
        Cap::Instance(value)
    }
}

impl From<TypeCap> for Cap {
    fn from(value: TypeCap) -> Self {
        Cap::Type(value)
    }
}
