//! The measured paths, defined once: the criterion benches, the gungraun benches and
//! `hakprof` all run these functions, so a number in each describes the same code.

pub mod peers;
pub mod workloads;
