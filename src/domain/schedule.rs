//! Effective-dated commands (contract section 12): whether a command waits,
//! and why a cancel is refused. The worker's clock decides: `now` is always
//! the worker's.

use super::contact::decide::check_op_against_policy;
use super::effective::due_at;
use super::envelope::{Command, CommandBody};
use super::ids::{CommandId, Limits};
use super::outcome::{ErrorCode, Outcome, Rejection};
use super::policy::TenantPolicy;
use time::OffsetDateTime;

/// When `cmd` must apply: `Some(instant)` when it is to be scheduled, after
/// the checks that do not depend on any entity's state (the tenant policy:
/// `invalid_status`); `None` when it applies now.
pub fn due_later(
    cmd: &Command,
    policy: &TenantPolicy,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, Rejection> {
    let Some(effective) = cmd.effective_at else {
        return Ok(None);
    };
    let Some(at) = due_at(effective, &policy.time_zone, now, limits.max_schedule_ahead)? else {
        return Ok(None);
    };
    match &cmd.body {
        CommandBody::Contact { op, .. } => check_op_against_policy(policy, op)?,
        CommandBody::Bulk(b) => check_op_against_policy(policy, &b.op)?,
        CommandBody::User { .. } | CommandBody::Directory(_) | CommandBody::Cancel { .. } => {}
    }
    Ok(Some(at))
}

/// Why `command.cancel` of `target` is refused when it is not pending:
/// never seen in the tenant, or its outcome is already decided.
pub fn not_cancellable(target: &CommandId, recorded: Option<Outcome>) -> Rejection {
    match recorded {
        None => Rejection::new(
            ErrorCode::NotFound,
            format!("no command `{target}` in this tenant"),
        ),
        Some(outcome) => Rejection::new(
            ErrorCode::InvalidTransition,
            format!(
                "command `{target}` is not scheduled (its outcome is {})",
                outcome.as_str()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::envelope::decode;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    fn command(kind: &str, payload: serde_json::Value, effective_at: &str) -> Command {
        let v = json!({"command_id": "c-1", "type": kind, "tenant": "acme",
                       "issued_at": "2026-12-01T11:00:00Z", "effective_at": effective_at,
                       "payload": payload});
        decode(v.to_string().as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn a_future_command_waits_once_the_tenant_policy_accepts_it() {
        let policy = TenantPolicy::default();
        let limits = Limits::default();
        let later = command(
            "contact.deactivate",
            json!({"contact_id": "c"}),
            "2026-12-31",
        );
        assert_eq!(
            due_later(&later, &policy, &limits, NOW).unwrap(),
            Some(datetime!(2026-12-31 00:00 UTC))
        );
        let bad = command(
            "contact.change_status",
            json!({"contact_id": "c", "status": "ZZ"}),
            "2026-12-31",
        );
        assert_eq!(
            due_later(&bad, &policy, &limits, NOW).unwrap_err().code,
            ErrorCode::InvalidStatus,
            "refused when it arrives"
        );
        let bulk = command(
            "contact.bulk",
            json!({"contact_ids": ["c"], "operation": {"type": "contact.change_status", "payload": {"status": "ZZ"}}}),
            "2026-12-31",
        );
        assert_eq!(
            due_later(&bulk, &policy, &limits, NOW).unwrap_err().code,
            ErrorCode::InvalidStatus
        );
        // Due already: applied at once, where the usual checks run.
        let past = command(
            "contact.change_status",
            json!({"contact_id": "c", "status": "ZZ"}),
            "2026-11-30",
        );
        assert_eq!(due_later(&past, &policy, &limits, NOW).unwrap(), None);
        let berlin = TenantPolicy {
            time_zone: "Europe/Berlin".into(),
            ..TenantPolicy::default()
        };
        assert_eq!(
            due_later(&later, &berlin, &limits, NOW).unwrap(),
            Some(datetime!(2026-12-30 23:00 UTC))
        );
    }

    #[test]
    fn a_cancel_of_what_is_not_pending_says_why() {
        let target = CommandId::parse("t-1", &Limits::default()).unwrap();
        assert_eq!(not_cancellable(&target, None).code, ErrorCode::NotFound);
        for done in [
            Outcome::Applied,
            Outcome::Stale,
            Outcome::Cancelled,
            Outcome::Held,
        ] {
            assert_eq!(
                not_cancellable(&target, Some(done)).code,
                ErrorCode::InvalidTransition
            );
        }
    }
}
