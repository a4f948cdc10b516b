//! The quorum over perspectives: how many may fail to see the token, and what the lookup
//! concludes from their outcomes.

use crate::{Outcome, PerspectiveReport};

/// How many perspectives may fail to see the token while the lookup still succeeds: at most
/// one for two to five perspectives, two for six or more (the CA/Browser Forum's table).
pub fn allowed_misses(perspectives: usize) -> usize {
    match perspectives {
        0 | 1 => 0,
        2..=5 => 1,
        _ => 2,
    }
}

/// The conclusion over the perspectives' outcomes. When control is not proven, the most telling
/// failure wins: an answer that lacks the value says more than a server error.
pub(crate) fn conclude(perspectives: &[PerspectiveReport]) -> Outcome {
    let misses: Vec<&Outcome> = perspectives
        .iter()
        .map(|p| &p.outcome)
        .filter(|o| !o.is_verified())
        .collect();
    if !perspectives.is_empty() && misses.len() <= allowed_misses(perspectives.len()) {
        let legacy_only = perspectives
            .iter()
            .all(|p| !matches!(p.outcome, Outcome::Verified { legacy: false }));
        return Outcome::Verified {
            legacy: legacy_only,
        };
    }
    let rank = |o: &Outcome| match o {
        Outcome::WrongValue => 0,
        Outcome::NotFound { .. } => 1,
        Outcome::Bogus { .. } => 2,
        Outcome::DnsFailure { .. } => 3,
        _ => 4,
    };
    misses
        .into_iter()
        .min_by_key(|o| rank(o))
        .cloned()
        .unwrap_or(Outcome::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_table() {
        assert_eq!(
            (1..=8).map(allowed_misses).collect::<Vec<_>>(),
            [0, 1, 1, 1, 1, 2, 2, 2]
        );
    }
}
