//! claimd's DNS verification engine: looks up the TXT records at a domain through
//! hickory-resolver, classifies what it saw, explains near misses, and corroborates the answer
//! from several vantage points when configured.
//!
//! Every lookup is fresh: no answer cache, no hosts file, no search domains (the name is always
//! queried fully qualified), UDP with TCP fallback for every upstream, and one overall deadline
//! per lookup regardless of how many attempts, protocols and perspectives run underneath.
//!
//! - [`config`]: the configuration and how a resolver is built;
//! - [`dnssec`]: validation's mode and trust anchor, each answer's [`Dnssec`] status, and the
//!   walk down the chain of trust that explains a bogus answer;
//! - `lookups`: how one perspective asks (validating with its zones' keys cached, or not);
//! - `query`: one TXT query of one name, and what its answer or failure means;
//! - [`quorum`]: what several perspectives conclude together;
//! - [`report`]: the outcome and everything seen, as explanation, evidence and text;
//! - [`hints`]: near misses, from the values seen and by probing misplaced names;
//! - [`Verifier`]: all of it behind one call.

pub mod config;
pub mod dnssec;
pub mod hints;
mod lookups;
mod query;
pub mod quorum;
pub mod report;
#[cfg(any(test, feature = "test-server"))]
pub mod testing;
mod verifier;

pub use config::{ConfigError, PerspectiveConfig, VerifierConfig, build_resolver};
pub use dnssec::{Dnssec, DnssecMode, TrustAnchor, TrustAnchorError};
pub use hints::Hint;
pub use quorum::allowed_misses;
pub use report::{
    Evidence, MAX_VALUE_CHARS, MAX_VALUES_SHOWN, Outcome, PerspectiveEvidence, PerspectiveReport,
    Report,
};
pub use verifier::Verifier;
