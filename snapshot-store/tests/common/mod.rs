//! Helpers shared by the integration tests: the crate's own test data, so that unit and
//! integration tests use the same bytes.

#[path = "../../src/testdata.rs"]
mod testdata;

pub use testdata::pseudo;
