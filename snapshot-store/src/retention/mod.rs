//! The retention layer: which snapshots to keep (`keep`), forgetting the others (`forget`),
//! and freeing what no kept snapshot needs (`prune`: the store's `reach` marks, `order` sorts deletions),
//! all under the writer lock and without taking a file from a registered reader.

pub(crate) mod forget;
pub(crate) mod keep;
pub(crate) mod merge;
mod order;
pub(crate) mod prune;

#[cfg(test)]
mod tests;
