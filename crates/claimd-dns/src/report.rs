//! What a lookup concluded and saw: the [`Outcome`], each perspective's answer, the hints, and
//! the three ways it is shown — a paragraph for API messages ([`Report::explain`]), the
//! evidence kept in the event log ([`Report::evidence`]), and lines for a terminal (`Display`).

use std::fmt;
use std::net::SocketAddr;

use claimd_domain::{LookupOutcome, LookupSummary, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use crate::quorum::allowed_misses;
use crate::{Dnssec, Hint};

/// At most this many TXT values are echoed back per perspective, each cut to [`MAX_VALUE_CHARS`].
pub const MAX_VALUES_SHOWN: usize = 10;
pub const MAX_VALUE_CHARS: usize = 120;

/// What a lookup concluded. Only [`Outcome::Verified`] may change state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A TXT record equal to the expected value is published (`legacy`: under the old key).
    Verified { legacy: bool },
    /// No TXT record at the name. `nxdomain`: the name itself does not exist.
    NotFound { nxdomain: bool },
    /// TXT records exist at the name but none carries the expected value.
    WrongValue,
    /// The DNS answered with an error (SERVFAIL, REFUSED, …), or a truncated answer could not be
    /// completed over TCP, or the server could not be talked to.
    DnsFailure { reason: String },
    /// No answer within the deadline.
    Timeout,
    /// The answer is DNSSEC-signed and does not validate (signatures invalid or expired, DS and
    /// DNSKEY disagree, proofs missing): it never proves control. `diagnosis` says what fails.
    Bogus { diagnosis: String },
}

impl Outcome {
    /// The kind kept on records and in the evidence.
    pub fn kind(&self) -> LookupOutcome {
        match self {
            Self::Verified { .. } => LookupOutcome::Verified,
            Self::NotFound { nxdomain: true } => LookupOutcome::NxDomain,
            Self::NotFound { nxdomain: false } => LookupOutcome::NotFound,
            Self::WrongValue => LookupOutcome::WrongValue,
            Self::DnsFailure { .. } => LookupOutcome::DnsFailure,
            Self::Timeout => LookupOutcome::Timeout,
            Self::Bogus { .. } => LookupOutcome::DnssecBogus,
        }
    }

    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }

    pub(crate) fn describe(&self, seen_total: usize) -> String {
        match self {
            Self::Verified { legacy: false } => "found the expected TXT record".to_owned(),
            Self::Verified { legacy: true } => {
                "found the expected token under the legacy key ciscocidomainverification".to_owned()
            }
            Self::NotFound { nxdomain: true } => "the name does not exist (NXDOMAIN)".to_owned(),
            Self::NotFound { nxdomain: false } => "the name has no TXT record".to_owned(),
            Self::WrongValue => {
                format!("{seen_total} TXT record(s) found, none equal to the expected value")
            }
            Self::DnsFailure { reason } => format!("the DNS lookup failed: {reason}"),
            Self::Timeout => "the DNS lookup got no answer in time".to_owned(),
            Self::Bogus { diagnosis } if diagnosis.is_empty() => {
                "the answer failed DNSSEC validation (bogus)".to_owned()
            }
            Self::Bogus { diagnosis } => {
                format!("the answer failed DNSSEC validation (bogus): {diagnosis}")
            }
        }
    }
}

/// What one perspective saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerspectiveReport {
    pub name: String,
    pub servers: Vec<SocketAddr>,
    pub outcome: Outcome,
    /// The response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, …) when the server answered.
    pub rcode: Option<String>,
    /// TXT values seen at the name (character-strings joined), cut for display.
    pub seen: Vec<String>,
    /// How many TXT records were seen in all.
    pub seen_total: usize,
    /// What DNSSEC validation concluded about this perspective's answer.
    pub dnssec: Dnssec,
}

/// Everything a lookup saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The fully qualified name queried, e.g. `example.com.`.
    pub name: String,
    /// The TXT value that proves control.
    pub expected: String,
    /// The conclusion over all perspectives (quorum applied).
    pub outcome: Outcome,
    pub perspectives: Vec<PerspectiveReport>,
    /// Likely mistakes, when control was not proven.
    pub hints: Vec<Hint>,
    /// Whether answers were validated, and against what ([`crate::DnssecMode::describe`]).
    pub dnssec: String,
}

/// The evidence of a lookup, as the event log keeps it (JSON) and the dry run shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence<'a> {
    pub name: &'a str,
    pub expected: &'a str,
    pub outcome: &'static str,
    /// Why the DNS failed, for a DNS failure; what fails in the chain of trust, for a bogus
    /// answer.
    pub detail: Option<&'a str>,
    /// Whether answers were DNSSEC-validated and against which trust anchor (`off: …` when not).
    pub dnssec: &'a str,
    pub perspectives: Vec<PerspectiveEvidence<'a>>,
    pub hints: Vec<String>,
    /// A command that repeats the lookup.
    pub dig: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerspectiveEvidence<'a> {
    pub name: &'a str,
    pub servers: Vec<String>,
    pub outcome: &'static str,
    pub rcode: Option<&'a str>,
    pub seen: &'a [String],
    pub seen_total: usize,
    /// `secure`, `insecure` (the zone is not signed), `bogus`, `indeterminate`, or `off`.
    pub dnssec: &'static str,
}

impl Report {
    /// A command that repeats the lookup claimd made (through the first resolver).
    pub fn dig_command(&self) -> String {
        let server = match self.perspectives.first().and_then(|p| p.servers.first()) {
            Some(a) if a.port() == 53 => format!(" @{}", a.ip()),
            Some(a) => format!(" @{} -p {}", a.ip(), a.port()),
            None => String::new(),
        };
        format!("dig{server} TXT {}", self.name)
    }

    /// The same lookup with ldns's `drill`, for systems without `dig` (`kdig`, from Knot, takes
    /// `dig`'s arguments).
    pub fn drill_command(&self) -> String {
        match self.perspectives.first().and_then(|p| p.servers.first()) {
            Some(a) if a.port() == 53 => format!("drill {} @{} TXT", self.name, a.ip()),
            Some(a) => format!("drill -p {} {} @{} TXT", a.port(), self.name, a.ip()),
            None => format!("drill {} TXT", self.name),
        }
    }

    /// One paragraph for a person: what was looked up, where, what was seen, what to do.
    pub fn explain(&self) -> String {
        let mut text = format!("Looked up TXT {}", self.name);
        if let [only] = self.perspectives.as_slice() {
            text += &format!(
                " via {}: {}.{}",
                join(&only.servers),
                only.outcome.describe(only.seen_total),
                dnssec_text(only)
            );
            text += &seen_text(only);
        } else {
            let misses = self
                .perspectives
                .iter()
                .filter(|p| !p.outcome.is_verified())
                .count();
            text += &format!(
                " from {} perspectives ({} may miss; {misses} did):",
                self.perspectives.len(),
                allowed_misses(self.perspectives.len())
            );
            for p in &self.perspectives {
                text += &format!(
                    " [{} via {}: {}.{}{}]",
                    p.name,
                    join(&p.servers),
                    p.outcome.describe(p.seen_total),
                    dnssec_text(p),
                    seen_text(p)
                );
            }
            text += if self.outcome.is_verified() {
                " Result: verified."
            } else {
                " Result: not verified."
            };
        }
        for hint in &self.hints {
            text += &format!(" Hint: {hint}.");
        }
        match &self.outcome {
            Outcome::NotFound { .. } | Outcome::WrongValue => {
                text += &format!(
                    " Publish a TXT record at {} with the value \"{}\" and retry.",
                    self.name, self.expected
                );
            }
            Outcome::DnsFailure { .. } | Outcome::Timeout => text += " Retry later.",
            Outcome::Bogus { .. } => {
                text += " A DNSSEC-bogus answer never proves control: either the zone's signing \
                         or its DS record at the parent is broken (fix it, then retry), or the \
                         answer was tampered with on its way."
            }
            Outcome::Verified { .. } => {}
        }
        if self.dnssec.starts_with("off") {
            text += " DNSSEC validation is off.";
        }
        text + &format!(
            " Check with: {} (or kdig with the same arguments, or {})",
            self.dig_command(),
            self.drill_command()
        )
    }

    /// Outcome, perspectives, rcodes, records seen, hints: what the event log keeps.
    pub fn evidence(&self) -> Evidence<'_> {
        Evidence {
            name: &self.name,
            expected: &self.expected,
            outcome: self.outcome.kind().as_str(),
            detail: match &self.outcome {
                Outcome::DnsFailure { reason } => Some(reason),
                Outcome::Bogus { diagnosis } => Some(diagnosis),
                _ => None,
            },
            dnssec: &self.dnssec,
            perspectives: self
                .perspectives
                .iter()
                .map(|p| PerspectiveEvidence {
                    name: &p.name,
                    servers: p.servers.iter().map(SocketAddr::to_string).collect(),
                    outcome: p.outcome.kind().as_str(),
                    rcode: p.rcode.as_deref(),
                    seen: &p.seen,
                    seen_total: p.seen_total,
                    dnssec: p.dnssec.as_str(),
                })
                .collect(),
            hints: self.hints.iter().map(ToString::to_string).collect(),
            dig: self.dig_command(),
        }
    }
}

impl Report {
    /// What a record and the event log keep of this lookup, made at `at`.
    pub fn summary(&self, at: Timestamp) -> LookupSummary {
        LookupSummary {
            evidence: serde_json::to_string(&self.evidence()).unwrap_or_default(),
            ..self.brief(at)
        }
    }

    /// The summary without the evidence, for a lookup no event will record (a routine
    /// re-check keeps only its outcome and description on the record).
    pub fn brief(&self, at: Timestamp) -> LookupSummary {
        LookupSummary {
            at,
            outcome: self.outcome.kind(),
            detail: self.explain(),
            evidence: String::new(),
        }
    }
}

/// Lines for a terminal: the expected record, each perspective with what it saw, the hints,
/// the result, and the explanation.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "expected: TXT {} \"{}\"", self.name, self.expected)?;
        for p in &self.perspectives {
            let rcode = p.rcode.as_deref().map(|r| format!(" [{r}]"));
            writeln!(
                f,
                "  {} ({}): {}{} dnssec={}",
                p.name,
                join(&p.servers),
                p.outcome.kind().as_str(),
                rcode.unwrap_or_default(),
                p.dnssec.as_str()
            )?;
            for value in &p.seen {
                writeln!(f, "      seen \"{value}\"")?;
            }
        }
        for hint in &self.hints {
            writeln!(f, "hint: {hint}")?;
        }
        writeln!(f, "dnssec: {}", self.dnssec)?;
        writeln!(f, "result: {}", self.outcome.kind().as_str())?;
        write!(f, "{}", self.explain())
    }
}

fn join(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What DNSSEC said about an answer that came (a bogus one says it in its outcome).
fn dnssec_text(p: &PerspectiveReport) -> String {
    match (p.dnssec, &p.outcome) {
        (Dnssec::Secure | Dnssec::Insecure, _) => format!(" DNSSEC: {}.", p.dnssec.describe()),
        _ => String::new(),
    }
}

fn seen_text(p: &PerspectiveReport) -> String {
    if p.seen.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = p.seen.iter().map(|v| format!("\"{v}\"")).collect();
    let more = p.seen_total.saturating_sub(p.seen.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(" Seen: {}{more}.", shown.join(", "))
}

/// A seen value made printable and cut to [`MAX_VALUE_CHARS`].
pub(crate) fn clip(value: &str) -> String {
    let printable: String = value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    match printable.char_indices().nth(MAX_VALUE_CHARS) {
        Some((i, _)) => format!("{}…", &printable[..i]),
        None => printable,
    }
}
