//! One TXT query of one name through one resolver, and what its answer (or failure) means.

use claimd_domain::{TxtMatch, VerificationToken, match_txt_value};
use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use tokio::time::Instant;

use crate::Outcome;

/// What one query of one name through one resolver produced.
pub(crate) struct Answer {
    pub outcome: Outcome,
    /// The response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …) when the server answered.
    pub rcode: Option<String>,
    /// Every TXT value at the name (character-strings of each record joined).
    pub values: Vec<String>,
}

impl Answer {
    pub fn timed_out() -> Self {
        Self {
            outcome: Outcome::Timeout,
            rcode: None,
            values: Vec::new(),
        }
    }
}

/// Queries TXT at `name` (fully qualified) and compares each record with `prefix=token`.
pub(crate) async fn query_txt(
    resolver: &TokioResolver,
    name: &str,
    prefix: &str,
    token: &VerificationToken,
    deadline: Instant,
) -> Answer {
    match tokio::time::timeout_at(deadline, resolver.lookup(name, RecordType::TXT)).await {
        Err(_) => Answer::timed_out(),
        Ok(Err(e)) => classify_error(&e),
        Ok(Ok(answer)) => {
            let values: Vec<String> = answer
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => {
                        let joined: Vec<u8> = txt
                            .txt_data
                            .iter()
                            .flat_map(|s| s.iter().copied())
                            .collect();
                        Some(String::from_utf8_lossy(&joined).into_owned())
                    }
                    _ => None,
                })
                .collect();
            let best = values
                .iter()
                .map(|v| match_txt_value(v, prefix, token))
                .fold(TxtMatch::NoMatch, |best, m| match (best, m) {
                    (TxtMatch::Exact, _) | (_, TxtMatch::Exact) => TxtMatch::Exact,
                    (TxtMatch::Legacy, _) | (_, TxtMatch::Legacy) => TxtMatch::Legacy,
                    _ => TxtMatch::NoMatch,
                });
            let outcome = match best {
                TxtMatch::Exact => Outcome::Verified { legacy: false },
                TxtMatch::Legacy => Outcome::Verified { legacy: true },
                TxtMatch::NoMatch if values.is_empty() => Outcome::NotFound { nxdomain: false },
                TxtMatch::NoMatch => Outcome::WrongValue,
            };
            Answer {
                outcome,
                rcode: Some("NOERROR".to_owned()),
                values,
            }
        }
    }
}

/// The RFC mnemonic (SERVFAIL, REFUSED, …): what people search for.
fn mnemonic(code: impl std::fmt::Debug) -> String {
    format!("{code:?}").to_uppercase()
}

fn classify_error(e: &NetError) -> Answer {
    let (outcome, rcode) = match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            let nxdomain = nr.response_code == hickory_resolver::proto::op::ResponseCode::NXDomain;
            (
                Outcome::NotFound { nxdomain },
                Some(mnemonic(nr.response_code)),
            )
        }
        NetError::Dns(DnsError::ResponseCode(code)) => (
            Outcome::DnsFailure {
                reason: format!("the server answered {}", mnemonic(code)),
            },
            Some(mnemonic(code)),
        ),
        NetError::Timeout => (Outcome::Timeout, None),
        other => (
            Outcome::DnsFailure {
                reason: other.to_string(),
            },
            None,
        ),
    };
    Answer {
        outcome,
        rcode,
        values: Vec::new(),
    }
}
