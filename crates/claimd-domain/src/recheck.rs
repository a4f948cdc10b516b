//! Continuous re-verification: what a later lookup of a verified domain means for it, as pure
//! functions over the record's re-check state and the organization's policy.
//!
//! A definite failure (the record absent or wrong, by quorum) puts the domain **at risk** and
//! starts the grace period; a success at any time brings it back; a definite failure once the
//! grace has run out makes it **lapse**, and the organization's [`LapseAction`] applies. An
//! indeterminate outcome (timeout, server failure) never moves a domain toward lapse: it is
//! recorded and retried sooner, with backoff. During grace the domain still counts as verified
//! (and claimed) everywhere.

use std::time::Duration;

use crate::{DomainRecord, LookupOutcome, Timestamp};

/// What happens to a domain whose record stayed gone for the whole grace period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LapseAction {
    /// Drop the verification, and with it any claim (the default).
    #[default]
    Unverify,
    /// Drop the claim only; the domain stays verified, flagged as lapsed.
    Unclaim,
    /// Change nothing; the domain is flagged as lapsed.
    Keep,
}

impl LapseAction {
    pub const ALL: [LapseAction; 3] = [Self::Unverify, Self::Unclaim, Self::Keep];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverify => "unverify",
            Self::Unclaim => "unclaim",
            Self::Keep => "keep",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The re-check policy in force for one organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecheckPolicy {
    /// Between two checks of a domain that is fine.
    pub interval: Duration,
    /// From the first definite failure to the lapse.
    pub grace: Duration,
    pub lapse_action: LapseAction,
}

/// An organization's own re-check choices; `None` takes the operator's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecheckSettings {
    pub interval: Option<Duration>,
    pub grace: Option<Duration>,
    pub lapse_action: Option<LapseAction>,
}

/// The operator's re-check defaults, and the bounds an organization may choose within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecheckConfig {
    pub default: RecheckPolicy,
    pub min_interval: Duration,
    pub max_interval: Duration,
    pub max_grace: Duration,
}

impl Default for RecheckConfig {
    fn default() -> Self {
        Self {
            default: RecheckPolicy {
                interval: Duration::from_secs(24 * 3600),
                grace: Duration::from_secs(7 * 24 * 3600),
                lapse_action: LapseAction::Unverify,
            },
            min_interval: Duration::from_secs(3600),
            max_interval: Duration::from_secs(30 * 24 * 3600),
            max_grace: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl RecheckConfig {
    /// The policy in force for an organization with `settings`: its own choices, kept within
    /// the bounds (which may have narrowed since it chose), else the operator's defaults.
    pub fn policy(&self, settings: &RecheckSettings) -> RecheckPolicy {
        let low = self.min_interval.min(self.max_interval);
        RecheckPolicy {
            interval: settings
                .interval
                .map_or(self.default.interval, |i| i.clamp(low, self.max_interval)),
            grace: settings
                .grace
                .map_or(self.default.grace, |g| g.min(self.max_grace)),
            lapse_action: settings.lapse_action.unwrap_or(self.default.lapse_action),
        }
    }

    /// Refuses settings outside the bounds, saying which and why.
    pub fn check_settings(&self, settings: &RecheckSettings) -> Result<(), String> {
        if let Some(interval) = settings.interval
            && !(self.min_interval..=self.max_interval).contains(&interval)
        {
            return Err(format!(
                "recheckInterval: must be from {} to {} seconds on this server",
                self.min_interval.as_secs(),
                self.max_interval.as_secs()
            ));
        }
        if let Some(grace) = settings.grace
            && grace > self.max_grace
        {
            return Err(format!(
                "recheckGrace: must be at most {} seconds on this server",
                self.max_grace.as_secs()
            ));
        }
        Ok(())
    }
}

/// Where a verified domain stands with its re-checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecheckState {
    /// The next check; `None` while the record is pending (nothing to re-check).
    pub due_at: Option<Timestamp>,
    /// The first definite failure of the current run: the domain is at risk since then.
    pub failing_since: Option<Timestamp>,
    /// When the grace runs out, while at risk.
    pub lapses_at: Option<Timestamp>,
    /// The first indeterminate outcome of the current run of them.
    pub unreachable_since: Option<Timestamp>,
    /// Indeterminate outcomes in a row (the retry backs off with them).
    pub indeterminate_runs: u32,
    /// The domain lapsed and its policy kept it verified (`unclaim`, `keep`).
    pub lapsed_at: Option<Timestamp>,
}

/// Indeterminate outcomes in a row after which a domain is reported as not checkable.
pub const NOT_CHECKABLE_AFTER: u32 = 3;

impl RecheckState {
    /// Since when the domain could not be checked, once that has gone on for a while.
    pub fn not_checkable_since(&self) -> Option<Timestamp> {
        (self.indeterminate_runs >= NOT_CHECKABLE_AFTER)
            .then_some(self.unreachable_since)
            .flatten()
    }

    /// A freshly verified domain: first check one interval (plus `jitter`) from now.
    pub fn scheduled(now: Timestamp, policy: &RecheckPolicy, jitter: Duration) -> Self {
        Self {
            due_at: Some(now.plus(policy.interval + jitter)),
            ..Self::default()
        }
    }
}

/// How a lookup counts for a re-check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Control is proven.
    Proven,
    /// The record is definitely not there (absent, or another value), by quorum.
    Failed,
    /// Nothing can be concluded: no answer, the DNS answered with an error, or the answer is
    /// DNSSEC-bogus (which may be an attack on the lookup, not a loss of control).
    Indeterminate,
}

impl Verdict {
    pub fn of(outcome: LookupOutcome) -> Self {
        match outcome {
            LookupOutcome::Verified => Self::Proven,
            LookupOutcome::NotFound | LookupOutcome::NxDomain | LookupOutcome::WrongValue => {
                Self::Failed
            }
            LookupOutcome::DnsFailure | LookupOutcome::Timeout | LookupOutcome::DnssecBogus => {
                Self::Indeterminate
            }
        }
    }
}

/// What a re-check does to the domain, besides keeping its lookup and its next check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecheckStep {
    /// Fine, as before: only the schedule moves.
    Routine,
    /// Fine again after being at risk or lapsed.
    Recovered,
    /// The first definite failure: at risk until `lapses_at`.
    AtRisk { lapses_at: Timestamp },
    /// Still failing, within the grace period.
    StillAtRisk,
    /// Failing past the grace period: the policy's action applies.
    Lapse(LapseAction),
    /// Lapsed before and kept verified by the policy, still failing.
    StillLapsed,
    /// Nothing could be concluded; nothing moves toward a lapse.
    Unreachable,
}

impl RecheckStep {
    /// Whether the step is a transition the event log keeps (with its DNS evidence).
    pub fn is_transition(self) -> bool {
        matches!(self, Self::Recovered | Self::AtRisk { .. } | Self::Lapse(_))
    }
}

/// A spread of up to a tenth of the interval, fixed per domain, so that domains verified
/// together (an import, a busy day) are not all checked in the same second.
pub fn jitter(domain: &crate::DomainName, interval: Duration) -> Duration {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in domain.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    interval / 10 * (hash % 1000) / 1000
}

/// The first retry after an indeterminate outcome, before backing off.
const FIRST_RETRY: Duration = Duration::from_secs(60);

/// What a re-check concluding `outcome` at `now` does to `record` under `policy`, and the record
/// with its new re-check state and next check (`jitter` spreads routine checks out). Call only
/// for records that are verified or claimed.
pub fn plan_recheck(
    record: &DomainRecord,
    outcome: LookupOutcome,
    now: Timestamp,
    policy: &RecheckPolicy,
    jitter: Duration,
) -> (RecheckStep, RecheckState) {
    let before = &record.recheck;
    let routine_due = Some(now.plus(policy.interval + jitter));
    match Verdict::of(outcome) {
        Verdict::Proven => {
            let step = if before.failing_since.is_some() || before.lapsed_at.is_some() {
                RecheckStep::Recovered
            } else {
                RecheckStep::Routine
            };
            let state = RecheckState {
                due_at: routine_due,
                ..RecheckState::default()
            };
            (step, state)
        }
        Verdict::Indeterminate => {
            let runs = before.indeterminate_runs.saturating_add(1);
            let state = RecheckState {
                due_at: Some(now.plus(backoff(policy, runs))),
                unreachable_since: before.unreachable_since.or(Some(now)),
                indeterminate_runs: runs,
                ..before.clone()
            };
            (RecheckStep::Unreachable, state)
        }
        Verdict::Failed => {
            let failing_since = before.failing_since.unwrap_or(now);
            let lapses_at = before
                .lapses_at
                .unwrap_or_else(|| failing_since.plus(policy.grace));
            let at_risk = RecheckState {
                failing_since: Some(failing_since),
                lapses_at: Some(lapses_at),
                ..RecheckState::default()
            };
            if now < lapses_at {
                let step = if before.failing_since.is_none() {
                    RecheckStep::AtRisk { lapses_at }
                } else {
                    RecheckStep::StillAtRisk
                };
                // Look again a few times within the grace, and once more when it runs out.
                let next = now.plus((policy.grace / 4).min(policy.interval));
                let state = RecheckState {
                    due_at: Some(next.min(lapses_at)),
                    ..at_risk
                };
                return (step, state);
            }
            if before.lapsed_at.is_some() {
                // Lapsed already, and kept verified by its policy: flagged, checked as usual.
                let state = RecheckState {
                    due_at: routine_due,
                    lapsed_at: before.lapsed_at,
                    ..at_risk
                };
                return (RecheckStep::StillLapsed, state);
            }
            let state = match policy.lapse_action {
                // Pending again: nothing left to re-check.
                LapseAction::Unverify => RecheckState::default(),
                LapseAction::Unclaim | LapseAction::Keep => RecheckState {
                    due_at: routine_due,
                    lapsed_at: Some(now),
                    ..at_risk
                },
            };
            (RecheckStep::Lapse(policy.lapse_action), state)
        }
    }
}

/// The wait after `runs` indeterminate outcomes in a row: from a minute (or a quarter of the
/// interval, if shorter), doubling, never longer than the interval.
fn backoff(policy: &RecheckPolicy, runs: u32) -> Duration {
    let first = FIRST_RETRY.min(policy.interval / 4);
    let factor = 1u32 << runs.saturating_sub(1).min(16);
    (first * factor).min(policy.interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DomainName, DomainState, OrgId, VerificationToken};

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn policy(lapse_action: LapseAction) -> RecheckPolicy {
        RecheckPolicy {
            interval: 24 * HOUR,
            grace: 7 * 24 * HOUR,
            lapse_action,
        }
    }

    fn at(d: Duration) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000).plus(d)
    }

    fn verified() -> DomainRecord {
        let mut r = DomainRecord::pending(
            OrgId::new("a"),
            DomainName::parse("example.com").unwrap(),
            VerificationToken::from_stored("t".into()),
            at(HOUR),
            at(Duration::ZERO),
        );
        r.state = DomainState::Verified;
        r.recheck =
            RecheckState::scheduled(at(Duration::ZERO), &policy(LapseAction::Unverify), MIN);
        r
    }

    /// Applies the outcomes in turn, each at its time; the steps taken.
    fn walk(
        mut record: DomainRecord,
        policy: &RecheckPolicy,
        outcomes: &[(Duration, LookupOutcome)],
    ) -> (Vec<RecheckStep>, DomainRecord) {
        let mut steps = Vec::new();
        for (when, outcome) in outcomes {
            let (step, state) = plan_recheck(&record, *outcome, at(*when), policy, Duration::ZERO);
            record.recheck = state;
            steps.push(step);
        }
        (steps, record)
    }

    use LookupOutcome::{DnsFailure, NotFound, Timeout, Verified as Found, WrongValue};

    #[test]
    fn a_fine_domain_is_checked_every_interval_with_its_jitter() {
        let p = policy(LapseAction::Unverify);
        let (step, state) = plan_recheck(&verified(), Found, at(HOUR), &p, MIN);
        assert_eq!(step, RecheckStep::Routine);
        assert_eq!(state.due_at, Some(at(HOUR + 24 * HOUR + MIN)));
        assert!(!step.is_transition());
    }

    #[test]
    fn a_failure_starts_the_grace_and_a_success_ends_it() {
        let p = policy(LapseAction::Unverify);
        let (steps, record) = walk(
            verified(),
            &p,
            &[(HOUR, NotFound), (2 * HOUR, WrongValue), (3 * HOUR, Found)],
        );
        assert_eq!(
            steps,
            [
                RecheckStep::AtRisk {
                    lapses_at: at(HOUR + 7 * 24 * HOUR)
                },
                RecheckStep::StillAtRisk,
                RecheckStep::Recovered
            ]
        );
        assert_eq!(record.recheck.failing_since, None);
        assert_eq!(record.recheck.due_at, Some(at(3 * HOUR + 24 * HOUR)));
    }

    #[test]
    fn within_the_grace_it_is_looked_at_again_and_once_more_when_the_grace_runs_out() {
        let p = RecheckPolicy {
            interval: 24 * HOUR,
            grace: 10 * HOUR,
            lapse_action: LapseAction::Unverify,
        };
        let (_, state) = plan_recheck(&verified(), NotFound, at(HOUR), &p, MIN);
        // A quarter of the grace later, without jitter.
        assert_eq!(state.due_at, Some(at(HOUR + 10 * HOUR / 4)));
        let mut record = verified();
        record.recheck = state;
        let (_, state) = plan_recheck(&record, NotFound, at(10 * HOUR), &p, MIN);
        assert_eq!(state.due_at, Some(at(11 * HOUR)), "not past the lapse time");
    }

    #[test]
    fn past_the_grace_the_policy_applies() {
        let grace = 7 * 24 * HOUR;
        for action in LapseAction::ALL {
            let p = policy(action);
            let (steps, record) = walk(
                verified(),
                &p,
                &[(HOUR, NotFound), (HOUR + grace, NotFound)],
            );
            assert_eq!(steps[1], RecheckStep::Lapse(action), "{action:?}");
            match action {
                LapseAction::Unverify => assert_eq!(record.recheck, RecheckState::default()),
                LapseAction::Unclaim | LapseAction::Keep => {
                    assert_eq!(record.recheck.lapsed_at, Some(at(HOUR + grace)));
                    assert!(record.recheck.due_at.is_some(), "kept: still checked");
                    // Still failing: flagged, nothing more happens.
                    let (step, _) =
                        plan_recheck(&record, NotFound, at(2 * grace), &p, Duration::ZERO);
                    assert_eq!(step, RecheckStep::StillLapsed);
                    // Back: recovered, the flag goes.
                    let (step, state) =
                        plan_recheck(&record, Found, at(2 * grace), &p, Duration::ZERO);
                    assert_eq!(step, RecheckStep::Recovered);
                    assert_eq!(state.lapsed_at, None);
                }
            }
        }
    }

    #[test]
    fn indeterminate_outcomes_never_lapse_a_domain_and_back_off() {
        let p = policy(LapseAction::Unverify);
        let month = 30 * 24 * HOUR;
        let outcomes: Vec<(Duration, LookupOutcome)> = (1..=40u32)
            .map(|i| {
                (
                    month * i / 40,
                    if i % 2 == 0 { Timeout } else { DnsFailure },
                )
            })
            .collect();
        let (steps, record) = walk(verified(), &p, &outcomes);
        assert!(steps.iter().all(|s| *s == RecheckStep::Unreachable));
        assert_eq!(record.recheck.unreachable_since, Some(at(month / 40)));
        assert_eq!(
            record.recheck.not_checkable_since(),
            Some(at(month / 40)),
            "a long run is reported"
        );
        // Backing off from a minute, doubling, never past the interval.
        let waits: Vec<Duration> = (1..=13).map(|runs| backoff(&p, runs)).collect();
        assert_eq!(waits[0], MIN);
        assert_eq!(waits[1], 2 * MIN);
        assert_eq!(waits[12], 24 * HOUR);
        // At risk, then unreachable past the lapse time: still no lapse.
        let (steps, _) = walk(
            verified(),
            &p,
            &[
                (HOUR, NotFound),
                (month, Timeout),
                (month + HOUR, DnsFailure),
            ],
        );
        assert!(
            !steps.iter().any(|s| matches!(s, RecheckStep::Lapse(_))),
            "{steps:?}"
        );
    }

    #[test]
    fn an_unreachable_run_ends_with_any_conclusive_answer() {
        let p = policy(LapseAction::Unverify);
        let (_, record) = walk(
            verified(),
            &p,
            &[
                (HOUR, Timeout),
                (2 * HOUR, Timeout),
                (3 * HOUR, Timeout),
                (4 * HOUR, Found),
            ],
        );
        assert_eq!(record.recheck.not_checkable_since(), None);
        assert_eq!(record.recheck.indeterminate_runs, 0);
    }

    #[test]
    fn lapse_actions_round_trip_their_names() {
        for a in LapseAction::ALL {
            assert_eq!(LapseAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(LapseAction::parse("delete"), None);
    }

    #[test]
    fn organizations_choose_within_the_operator_bounds() {
        let config = RecheckConfig::default();
        let own = RecheckSettings {
            interval: Some(2 * HOUR),
            grace: None,
            lapse_action: Some(LapseAction::Keep),
        };
        assert_eq!(config.check_settings(&own), Ok(()));
        let p = config.policy(&own);
        assert_eq!(
            (p.interval, p.grace, p.lapse_action),
            (2 * HOUR, 7 * 24 * HOUR, LapseAction::Keep)
        );
        let too_often = RecheckSettings {
            interval: Some(MIN),
            ..own
        };
        let err = config.check_settings(&too_often).unwrap_err();
        assert!(err.starts_with("recheckInterval:"), "{err}");
        // Bounds narrowed after the choice: the policy keeps within them anyway.
        assert_eq!(config.policy(&too_often).interval, config.min_interval);
        let too_long = RecheckSettings {
            grace: Some(365 * 24 * HOUR),
            ..RecheckSettings::default()
        };
        assert!(
            config
                .check_settings(&too_long)
                .unwrap_err()
                .starts_with("recheckGrace:")
        );
    }

    #[test]
    fn jitter_spreads_domains_within_a_tenth_of_the_interval() {
        let spread: std::collections::HashSet<Duration> = (0..50)
            .map(|i| {
                jitter(
                    &DomainName::parse(&format!("d{i}.example.com")).unwrap(),
                    24 * HOUR,
                )
            })
            .collect();
        assert!(spread.len() > 40, "different domains, different times");
        assert!(spread.iter().all(|j| *j < 24 * HOUR / 10));
        let d = DomainName::parse("example.com").unwrap();
        assert_eq!(jitter(&d, HOUR), jitter(&d, HOUR), "fixed per domain");
    }
}
