//! One TXT query of one name through one resolver, and what its answer (or failure) means.

use crate::lookups::Lookups;
use claimd_domain::{TxtMatch, VerificationToken, match_txt_value};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use tokio::time::Instant;

use crate::{Dnssec, Outcome};

/// What one query of one name through one resolver produced.
pub(crate) struct Answer {
    pub outcome: Outcome,
    /// The response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …) when the server answered.
    pub rcode: Option<String>,
    /// Every TXT value at the name (character-strings of each record joined).
    pub values: Vec<String>,
    /// What DNSSEC validation concluded about the answer.
    pub dnssec: Dnssec,
}

impl Answer {
    pub fn timed_out(validating: bool) -> Self {
        Self {
            outcome: Outcome::Timeout,
            rcode: None,
            values: Vec::new(),
            dnssec: unknown(validating),
        }
    }
}

impl Answer {
    /// A lookup that could not be made, for `reason`.
    pub fn failed(reason: String) -> Self {
        Self {
            outcome: Outcome::DnsFailure { reason },
            rcode: None,
            values: Vec::new(),
            dnssec: Dnssec::Indeterminate,
        }
    }
}

/// The status of an answer that did not complete.
fn unknown(validating: bool) -> Dnssec {
    if validating {
        Dnssec::Indeterminate
    } else {
        Dnssec::Off
    }
}

/// Queries TXT at `name` (fully qualified) and compares each record with `prefix=token`.
/// `validating`: the resolver validates DNSSEC, and only a secure or insecure answer proves.
pub(crate) async fn query_txt(
    resolver: &Lookups,
    validating: bool,
    name: &str,
    prefix: &str,
    token: &VerificationToken,
    deadline: Instant,
) -> Answer {
    match tokio::time::timeout_at(deadline, resolver.lookup(name, RecordType::TXT)).await {
        Err(_) => Answer::timed_out(validating),
        Ok(Err(e)) => classify_error(&e, validating),
        Ok(Ok(answer)) => {
            let dnssec = if validating {
                Dnssec::of_records(answer.answers().iter())
            } else {
                Dnssec::Off
            };
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
            let outcome = match (best, dnssec) {
                (_, Dnssec::Bogus) => Outcome::Bogus {
                    diagnosis: String::new(),
                },
                (TxtMatch::Exact | TxtMatch::Legacy, Dnssec::Indeterminate) => {
                    Outcome::DnsFailure {
                        reason: "the DNSSEC validation of the answer could not be completed \
                                 (the keys or proofs it needs could not be fetched)"
                            .to_owned(),
                    }
                }
                (TxtMatch::Exact, _) => Outcome::Verified { legacy: false },
                (TxtMatch::Legacy, _) => Outcome::Verified { legacy: true },
                (TxtMatch::NoMatch, _) if values.is_empty() => {
                    Outcome::NotFound { nxdomain: false }
                }
                (TxtMatch::NoMatch, _) => Outcome::WrongValue,
            };
            Answer {
                outcome,
                rcode: Some("NOERROR".to_owned()),
                values,
                dnssec,
            }
        }
    }
}

/// The RFC mnemonic (SERVFAIL, REFUSED, …): what people search for.
fn mnemonic(code: impl std::fmt::Debug) -> String {
    format!("{code:?}").to_uppercase()
}

fn classify_error(e: &NetError, validating: bool) -> Answer {
    use hickory_resolver::proto::dnssec::Proof;
    use hickory_resolver::proto::op::ResponseCode;
    let mut dnssec = unknown(validating);
    let (outcome, rcode) = match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            if validating {
                dnssec = match &nr.authorities {
                    Some(records) => Dnssec::of_records(records.iter()),
                    None => Dnssec::Indeterminate,
                };
            }
            let nxdomain = nr.response_code == ResponseCode::NXDomain;
            (
                Outcome::NotFound { nxdomain },
                Some(mnemonic(nr.response_code)),
            )
        }
        NetError::Dns(DnsError::DnssecBogus) => {
            dnssec = Dnssec::Bogus;
            let diagnosis = String::new();
            (Outcome::Bogus { diagnosis }, None)
        }
        NetError::Dns(DnsError::Nsec {
            response, proof, ..
        }) => {
            dnssec = match proof {
                Proof::Bogus => Dnssec::Bogus,
                Proof::Secure => Dnssec::Secure,
                Proof::Insecure => Dnssec::Insecure,
                Proof::Indeterminate => Dnssec::Indeterminate,
            };
            let code = response.response_code;
            let outcome = if dnssec == Dnssec::Bogus {
                let diagnosis = String::new();
                Outcome::Bogus { diagnosis }
            } else {
                Outcome::NotFound {
                    nxdomain: code == ResponseCode::NXDomain,
                }
            };
            (outcome, Some(mnemonic(code)))
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
        dnssec,
    }
}
