//! Named failure points for fault-injection tests (feature `failpoints`).
//! Tests arm a point with a command-id prefix unique to them, so parallel
//! tests in one process never trip each other's points.

use std::sync::Mutex;

static PANIC_ON_APPLY: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes applying any command whose id starts with `prefix` panic.
pub fn panic_on_apply(prefix: &str) {
    PANIC_ON_APPLY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(prefix.to_owned());
}

/// The `before_apply` failure point.
pub fn before_apply(command_id: &str) {
    let armed = PANIC_ON_APPLY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|p| command_id.starts_with(p.as_str()));
    if armed {
        panic!("failpoint before_apply hit for command {command_id}");
    }
}
