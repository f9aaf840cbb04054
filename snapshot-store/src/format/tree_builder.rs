//! Lays a tree of nodes out as a snapshot's breadth-first entry list.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::format::snapshot::{Entry, EntryKind, Metadata};

/// Builds the breadth-first entry list from a tree of nodes.
#[derive(Debug, Default)]
pub struct TreeBuilder {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    entry: Entry,
    children: Vec<usize>,
    removed: bool,
}

impl TreeBuilder {
    /// A tree whose root has `meta`.
    pub fn new(root_meta: Metadata) -> Self {
        TreeBuilder {
            nodes: vec![Node {
                entry: Entry::new(Vec::new(), EntryKind::Dir, root_meta),
                children: Vec::new(),
                removed: false,
            }],
        }
    }

    /// Adds `entry` under node `parent` and returns its handle.
    pub fn add(&mut self, parent: usize, entry: Entry) -> usize {
        self.nodes.push(Node {
            entry,
            children: Vec::new(),
            removed: false,
        });
        let id = self.nodes.len() - 1;
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.push(id);
        }
        id
    }

    /// Leaves node `id` (and anything below it) out of the finished tree.
    pub fn remove(&mut self, id: usize) {
        if let Some(n) = self.nodes.get_mut(id) {
            n.removed = true;
        }
    }

    /// The entry of node `id`, for updates.
    pub fn entry_mut(&mut self, id: usize) -> Option<&mut Entry> {
        self.nodes.get_mut(id).map(|n| &mut n.entry)
    }

    /// Lays the tree out breadth-first with children sorted by name.
    #[allow(clippy::indexing_slicing)] // node handles are indexes this builder handed out
    pub fn finish(mut self) -> Vec<Entry> {
        for i in 0..self.nodes.len() {
            let mut kids = std::mem::take(&mut self.nodes[i].children);
            kids.retain(|&k| !self.nodes[k].removed);
            kids.sort_by(|&a, &b| self.nodes[a].entry.name.cmp(&self.nodes[b].entry.name));
            self.nodes[i].children = kids;
        }
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut queue = std::collections::VecDeque::from([0usize]);
        while let Some(n) = queue.pop_front() {
            order.push(n);
            queue.extend(self.nodes[n].children.iter().copied());
        }
        let mut position = vec![0u32; self.nodes.len()];
        for (i, &n) in order.iter().enumerate() {
            position[n] = i as u32;
        }
        let mut slots: Vec<Option<Node>> = self.nodes.into_iter().map(Some).collect();
        let mut entries = Vec::with_capacity(order.len());
        for (i, &n) in order.iter().enumerate() {
            let Some(node) = slots[n].take() else {
                continue;
            };
            let mut entry = node.entry;
            if let (Some(&first), Some(&last)) = (node.children.first(), node.children.last()) {
                entry.children = position[first]..position[last] + 1;
            }
            entry.parent = if i == 0 { 0 } else { entry.parent };
            entries.push(entry);
        }
        for i in 0..entries.len() {
            for c in entries[i].children.clone() {
                entries[c as usize].parent = i as u32;
            }
        }
        entries
    }
}
