//! The workload model of the fault tests and the chaos soak
//! (`benches/soak.rs`): entities, their initial commands and a shuffled
//! stream of aspect commands with unique `issued_at`s, so the final state
//! is known whatever the order of arrival.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

/// Roles the users are given; created first.
pub const ROLES: usize = 3;

/// The workload: entities, their initial commands, and a shuffled stream of
/// aspect commands with unique `issued_at`s, plus the model's expectation.
pub struct Workload {
    pub setup: Vec<Value>,
    pub load: Vec<Value>,
    /// (kind, id) -> field -> expected value
    pub expected: BTreeMap<(String, String), BTreeMap<String, Value>>,
}

pub fn workload(contacts: usize, users: usize, commands: usize, seed: u64) -> Workload {
    let mut rng = Lcg(seed);
    let t0 = time::macros::datetime!(2026-11-22 08:00 UTC);
    let at =
        |s: i64| lifecycle_worker::domain::event::format_time(t0 + time::Duration::milliseconds(s));
    let cmd = |n: usize, kind: &str, ms: i64, payload: Value| {
        json!({"command_id": format!("chaos-{n}"), "type": kind, "tenant": "acme",
               "issued_at": at(ms), "actor": "chaos", "payload": payload})
    };
    let mut setup = Vec::new();
    let mut expected: BTreeMap<(String, String), BTreeMap<String, Value>> = BTreeMap::new();
    for r in 0..3 {
        setup.push(cmd(
            setup.len(),
            "role.upsert",
            0,
            json!({"role_id": format!("r-{r}"), "name": format!("Role {r}"), "permissions": []}),
        ));
    }
    for c in 0..contacts {
        let id = format!("c-{c}");
        setup.push(cmd(
            setup.len(),
            "contact.upsert",
            0,
            json!({"contact_id": id, "email": format!("{id}@example.com")}),
        ));
        expected.insert(
            ("contact".into(), id),
            BTreeMap::from([
                ("active".into(), json!(true)),
                ("status".into(), json!("A")),
                ("visibility".into(), json!("everyone")),
            ]),
        );
    }
    for u in 0..users {
        let id = format!("u-{u}");
        setup.push(cmd(
            setup.len(),
            "user.upsert",
            0,
            json!({"user_id": id, "email": format!("{id}@example.com"), "role_id": "r-0"}),
        ));
        expected.insert(
            ("user".into(), id),
            BTreeMap::from([
                ("site_access".into(), json!(true)),
                ("role_id".into(), json!("r-0")),
            ]),
        );
    }
    // Unique issued_at per command: the ms offset is the command's index.
    let mut load = Vec::with_capacity(commands);
    let mut latest: HashMap<(String, String, String), (i64, Value)> = HashMap::new();
    for i in 0..commands {
        let ms = 1_000 + i as i64;
        let n = setup.len() + i;
        let (kind, id, field, value, c) = if rng.below(3) < 2 {
            let id = format!("c-{}", rng.below(contacts as u64));
            match rng.below(4) {
                0 => (
                    "contact",
                    id.clone(),
                    "active",
                    json!(false),
                    cmd(n, "contact.deactivate", ms, json!({"contact_id": id})),
                ),
                1 => (
                    "contact",
                    id.clone(),
                    "active",
                    json!(true),
                    cmd(n, "contact.reactivate", ms, json!({"contact_id": id})),
                ),
                2 => {
                    let s = ["A", "B", "C", "N"][rng.below(4) as usize];
                    (
                        "contact",
                        id.clone(),
                        "status",
                        json!(s),
                        cmd(
                            n,
                            "contact.change_status",
                            ms,
                            json!({"contact_id": id, "status": s}),
                        ),
                    )
                }
                _ => {
                    let v = ["everyone", "advisors", "owner"][rng.below(3) as usize];
                    (
                        "contact",
                        id.clone(),
                        "visibility",
                        json!(v),
                        cmd(
                            n,
                            "contact.set_visibility",
                            ms,
                            json!({"contact_id": id, "visibility": v}),
                        ),
                    )
                }
            }
        } else {
            let id = format!("u-{}", rng.below(users as u64));
            match rng.below(3) {
                0 => (
                    "user",
                    id.clone(),
                    "site_access",
                    json!(false),
                    cmd(n, "user.revoke_access", ms, json!({"user_id": id})),
                ),
                1 => (
                    "user",
                    id.clone(),
                    "site_access",
                    json!(true),
                    cmd(n, "user.restore_access", ms, json!({"user_id": id})),
                ),
                _ => {
                    let r = format!("r-{}", rng.below(ROLES as u64));
                    (
                        "user",
                        id.clone(),
                        "role_id",
                        json!(r),
                        cmd(
                            n,
                            "user.change_role",
                            ms,
                            json!({"user_id": id, "role_id": r}),
                        ),
                    )
                }
            }
        };
        let key = (kind.to_owned(), id, field.to_owned());
        if latest.get(&key).is_none_or(|(t, _)| ms > *t) {
            latest.insert(key, (ms, value));
        }
        load.push(c);
    }
    for ((kind, id, field), (_, value)) in latest {
        expected.get_mut(&(kind, id)).unwrap().insert(field, value);
    }
    // Shuffled, so arrival order differs from issue order.
    for i in (1..load.len()).rev() {
        load.swap(i, rng.below(i as u64 + 1) as usize);
    }
    Workload {
        setup,
        load,
        expected,
    }
}

/// A small deterministic generator (the workload must be reproducible).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}
