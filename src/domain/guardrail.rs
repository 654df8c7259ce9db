//! The mass-change guardrail (contract section 10), pure: whether a
//! tenant's next destructive changes may apply, given what its window
//! already holds.

use super::policy::Guardrail;

/// A tenant's guardrail as one transaction sees it, with the tenant's
/// guardrail row locked: whether it is tripped, and the destructive changes
/// applied in its window so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub policy: Guardrail,
    pub tripped: bool,
    pub count: u64,
}

/// What to do with a command's destructive changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Apply,
    /// Hold the command; `trips` when this command is the one that trips
    /// the guardrail.
    Hold {
        trips: bool,
    },
}

impl Allowance {
    /// Decides for a command that would apply `changes` destructive changes
    /// (a bulk counts each contact), and counts them when they apply.
    pub fn admit(&mut self, changes: u64) -> Verdict {
        if !self.policy.enabled || changes == 0 {
            return Verdict::Apply;
        }
        if self.tripped {
            return Verdict::Hold { trips: false };
        }
        if self.count + changes > self.policy.max_changes {
            self.tripped = true;
            return Verdict::Hold { trips: true };
        }
        self.count += changes;
        Verdict::Apply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowance(max_changes: u64) -> Allowance {
        Allowance {
            policy: Guardrail {
                max_changes,
                ..Guardrail::default()
            },
            tripped: false,
            count: 0,
        }
    }

    #[test]
    fn the_change_that_would_exceed_the_allowance_trips_and_later_ones_are_held() {
        let mut a = allowance(3);
        for _ in 0..3 {
            assert_eq!(a.admit(1), Verdict::Apply);
        }
        assert_eq!(a.admit(1), Verdict::Hold { trips: true });
        assert_eq!(a.admit(1), Verdict::Hold { trips: false });
        assert_eq!(a.count, 3);
        // Nothing destructive keeps applying while tripped.
        assert_eq!(a.admit(0), Verdict::Apply);
    }

    #[test]
    fn a_bulk_is_held_whole_when_it_would_exceed_what_is_left() {
        let mut a = allowance(10);
        assert_eq!(a.admit(8), Verdict::Apply);
        assert_eq!(a.admit(3), Verdict::Hold { trips: true });
        assert_eq!(a.count, 8);
        let mut b = allowance(10);
        assert_eq!(b.admit(8), Verdict::Apply);
        assert_eq!(b.admit(2), Verdict::Apply);
        assert_eq!(b.admit(1), Verdict::Hold { trips: true });
    }

    #[test]
    fn a_disabled_guardrail_counts_nothing_and_holds_nothing() {
        let mut a = allowance(1);
        a.policy.enabled = false;
        for _ in 0..5 {
            assert_eq!(a.admit(1), Verdict::Apply);
        }
        assert_eq!(a.count, 0);
    }
}
