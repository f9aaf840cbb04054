//! End-to-end tests: run the real binary on real trees, restore, compare bytes and metadata.

mod chains;
mod cli;
mod faults;
mod looking;
mod mount;
mod proxy;
mod retention;
mod s3;
mod samba;
mod selecting;
mod tracking;
mod tree;
mod util;
mod webdav;
