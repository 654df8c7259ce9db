//! Ids and strings: decoding.

use super::*;

#[test]
fn a_command_id_must_be_printable_ascii() {
    for bad in ["", "tab\there", "nl\n", "é", "bell\u{7}"] {
        let mut v = valid("contact.deactivate");
        v["command_id"] = json!(bad);
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad:?}");
    }
    let mut v = valid("contact.deactivate");
    v["command_id"] = json!("with space ~!");
    accepted(&v);
}

#[test]
fn ids_with_control_characters_are_invalid() {
    let cases = [
        ("contact.deactivate", "contact_id"),
        ("contact.change_employer", "employer_id"),
        ("employer.upsert", "employer_id"),
        ("role.upsert", "role_id"),
        ("user.delete", "user_id"),
        ("user.change_role", "role_id"),
        ("user.upsert", "contact_id"),
        ("contact.archive", "employer_id"),
    ];
    for (t, field) in cases {
        for bad in ["c\u{7}17", "c\n17", "c\u{0}", "\u{7f}"] {
            let v = with_payload(t, |p| {
                p.insert(field.into(), json!(bad));
            });
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {field} {bad:?}");
        }
    }
    let v = with_payload("contact.bulk", |p| {
        p.insert("contact_ids".into(), json!(["c-1", "c\t2"]));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn ids_longer_than_128_characters_are_invalid() {
    for (t, field) in [
        ("contact.deactivate", "contact_id"),
        ("user.delete", "user_id"),
        ("employer.upsert", "employer_id"),
        ("role.upsert", "role_id"),
    ] {
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("x".repeat(129)));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t}");
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("é".repeat(128)));
        });
        accepted(&v);
    }
    let mut v = valid("contact.deactivate");
    v["command_id"] = json!("x".repeat(129));
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    v["command_id"] = json!("x".repeat(128));
    accepted(&v);
}

#[test]
fn an_actor_is_1_to_128_characters() {
    let mut v = valid("contact.deactivate");
    v["actor"] = json!("a".repeat(129));
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    v["actor"] = json!("a".repeat(128));
    assert_eq!(accepted(&v).actor.map(|a| a.len()), Some(128));
}

#[test]
fn names_longer_than_the_name_limit_are_invalid() {
    let limits = Limits::default();
    for (t, field) in [
        ("contact.upsert", "first_name"),
        ("contact.deactivate", "reason"),
        ("employer.upsert", "name"),
        ("role.upsert", "name"),
        ("user.upsert", "name"),
    ] {
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("n".repeat(limits.max_name_chars + 1)));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {field}");
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("n".repeat(limits.max_name_chars)));
        });
        accepted(&v);
    }
}

#[test]
fn an_empty_id_is_invalid() {
    let v = with_payload("contact.deactivate", |p| {
        p.insert("contact_id".into(), json!(""));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn names_and_codes_with_control_characters_are_invalid() {
    let cases = [
        ("contact.upsert", "first_name"),
        ("contact.upsert", "status"),
        ("contact.change_status", "status"),
        ("contact.deactivate", "reason"),
        ("contact.log_activity", "action_code"),
        ("employer.upsert", "name"),
        ("role.upsert", "name"),
        ("user.upsert", "name"),
    ];
    for (t, field) in cases {
        let v = with_payload(t, |p| {
            p.insert(field.into(), json!("bad\u{1b}[31m"));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {field}");
    }
    let mut v = valid("contact.deactivate");
    v["actor"] = json!("ats\nsync");
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn a_malformed_email_is_invalid() {
    for t in ["contact.upsert", "user.upsert"] {
        for bad in ["ada", "@example.com", "ada@", "ada @example.com"] {
            let v = with_payload(t, |p| {
                p.insert("email".into(), json!(bad));
            });
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {bad:?}");
        }
    }
}

#[test]
fn a_visibility_outside_the_three_values_is_invalid() {
    for bad in [json!("staff"), json!("Everyone"), json!(1), Value::Null] {
        let v = with_payload("contact.set_visibility", |p| {
            p.insert("visibility".into(), bad.clone());
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad}");
    }
}
