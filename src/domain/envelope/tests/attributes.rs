//! Attributes: decoding.

use super::*;

#[test]
fn attribute_values_that_are_objects_or_arrays_are_invalid() {
    for t in ["contact.set_attributes", "contact.upsert"] {
        for bad in [json!({"a": 1}), json!([1, 2]), json!([])] {
            let v = with_payload(t, |p| {
                p.insert("attributes".into(), json!({"tier": bad}));
            });
            assert_eq!(code(&v), ErrorCode::InvalidCommand, "{t} {bad}");
        }
    }
}

#[test]
fn do_not_email_must_be_a_bool_or_null() {
    for bad in [json!("yes"), json!(1), json!(0), json!("true")] {
        let v = with_payload("contact.set_attributes", |p| {
            p.insert("attributes".into(), json!({"do_not_email": bad}));
        });
        assert_eq!(code(&v), ErrorCode::InvalidCommand, "{bad}");
    }
    for good in [json!(true), json!(false), Value::Null] {
        let v = with_payload("contact.set_attributes", |p| {
            p.insert("attributes".into(), json!({"do_not_email": good}));
        });
        accepted(&v);
    }
}

#[test]
fn set_attributes_needs_at_least_one_attribute_and_an_object() {
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), json!({}));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), Value::Null);
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}

#[test]
fn more_attributes_than_the_limit_are_invalid() {
    let limits = Limits::default();
    let many: serde_json::Map<String, Value> = (0..=limits.max_attributes)
        .map(|i| (format!("a{i}"), json!(i)))
        .collect();
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), Value::Object(many.clone()));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let mut fewer = many;
    fewer.remove("a0");
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), Value::Object(fewer));
    });
    accepted(&v);
}

#[test]
fn attribute_names_and_strings_with_control_characters_are_invalid() {
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), json!({"ti\ner": "x"}));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
    let v = with_payload("contact.set_attributes", |p| {
        p.insert("attributes".into(), json!({"tier": "go\u{0}ld"}));
    });
    assert_eq!(code(&v), ErrorCode::InvalidCommand);
}
