//! Test bed library.
#![forbid(unsafe_code)]
