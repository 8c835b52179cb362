//! [`Kernel::export_graph`]: copies a whole state graph from the kernel
//! into the host's copy, so it can be stored or handed to another kernel.

use std::collections::HashSet;

use capbox_shared::cap::{Cap, CapHashOrRef};
use capbox_shared::hash::CapHash;

use crate::error::KernelError;
use crate::kernel::Kernel;

impl Kernel {
    /// Copies every blob reachable from `root` (an Instance: its image,
    /// memory and root CNode; a CNode: every slot; recursively, so child
    /// instances and the caps they hold too) into the host's copy, fetching
    /// those it lacks with `get_cap`. Returns every reachable hash, `root`
    /// first, each once (what a store must hold for a head on `root`).
    pub fn export_graph(&mut self, root: &CapHash) -> Result<Vec<CapHash>, KernelError> {
        let mut seen = HashSet::from([*root]);
        let mut order = vec![*root];
        let mut next = 0;
        // Breadth-first over an explicit list: graphs may be deep (a chain
        // of children), so no recursion.
        while let Some(hash) = order.get(next).copied() {
            next += 1;
            let cap = self.get_cap(&hash)?;
            let mut links = Vec::new();
            match &cap {
                Cap::Instance(instance) => {
                    links.push(CapHashOrRef::Hash(instance.image));
                    links.push(instance.memory.clone());
                    links.push(instance.root_cnode.clone());
                }
                Cap::CNode(cnode) => links.extend(cnode.iter().map(|(_, link)| link.clone())),
                Cap::Data(_) | Cap::Image(_) | Cap::Type(_) => {}
            }
            for link in links {
                // A blob never holds a Ref (the codec cannot express one).
                let CapHashOrRef::Hash(h) = link else {
                    return Err(KernelError::Protocol(format!(
                        "blob {hash} holds an unsettled link"
                    )));
                };
                if seen.insert(h) {
                    order.push(h);
                }
            }
        }
        Ok(order)
    }
}
