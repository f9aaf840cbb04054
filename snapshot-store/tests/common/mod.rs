//! Helpers shared by the integration tests: the crate's own test data, so that unit and
//! integration tests use the same bytes.

#[path = "../../src/testdata.rs"]
#[allow(dead_code)] // each test uses only some of it
mod testdata;

#[allow(unused_imports)] // each test uses only some of it
pub use testdata::*;

#[allow(dead_code)] // only the golden-store tests use it
pub mod golden;
