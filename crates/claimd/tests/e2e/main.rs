//! End-to-end tests: claimd over real HTTP, on a real SQLite file, verifying against a real
//! DNS server on loopback. One test binary; the modules are the features.

mod auth;
mod binary;
mod lifecycle;
mod rules;
mod support;
mod wire;
