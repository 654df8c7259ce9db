//! Dead-letter bodies with personal data masked, until an operator reveals
//! them. Pure: what is shown depends only on the body.
//!
//! Masked by what a value is, not by what its key looks like: kept visible
//! are the envelope's routing fields, a few codes, and the contract's id
//! fields by their exact names (an `attributes.national_id` is a
//! producer's attribute, not an id of the contract); every other value
//! (names, addresses, phone numbers, reasons, attributes, free text, header
//! values) is masked, whatever its type, since a number can be a phone
//! number too. Free text the worker wrote about a message (its failure
//! message, a replay's result) shows as its template.

use serde_json::{Map, Value};

/// What stands in for a masked value.
pub const MASK: &str = "•••";

/// Fields whose values are never personal: routing, timing, versions,
/// status codes, and the contract's ids (sections 2 and 3).
fn visible(key: &str) -> bool {
    matches!(
        key,
        "tenant"
            | "type"
            | "issued_at"
            | "effective_at"
            | "expected_version"
            | "status"
            | "status_code"
            | "action_code"
            | "role"
            | "command_id"
            | "contact_id"
            | "contact_ids"
            | "employer_id"
            | "user_id"
            | "role_id"
    )
}

/// Free-form maps of the producer's own data: nothing in them is shown,
/// whatever its name.
const FREE_FORM: &str = "attributes";

/// The body for the masked view: pretty JSON with personal values masked;
/// a body that is not JSON is masked whole.
pub fn masked_body(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&mask_value(Field::Top, v)).unwrap_or_default(),
        Err(_) => format!("({} bytes, not JSON: hidden until revealed)", body.len()),
    }
}

/// Free text about a message (a failure message, a replay's result) for
/// the masked view: quoted values and numbers replaced.
pub fn masked_text(text: &str) -> String {
    crate::domain::failure::template(text)
}

/// Where a value sits: under a named field, or inside a free-form map.
#[derive(Clone, Copy)]
enum Field<'a> {
    Top,
    Named(&'a str),
    FreeForm,
}

fn mask_value(at: Field<'_>, v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let inner = match at {
                        Field::FreeForm => Field::FreeForm,
                        _ if k == FREE_FORM => Field::FreeForm,
                        _ => Field::Named(&k),
                    };
                    let masked = mask_value(inner, v);
                    (k, masked)
                })
                .collect::<Map<String, Value>>(),
        ),
        // A list is judged by the field that holds it.
        Value::Array(items) => Value::Array(items.into_iter().map(|v| mask_value(at, v)).collect()),
        Value::Null => Value::Null,
        scalar if matches!(at, Field::Named(k) if visible(k)) => scalar,
        _ => Value::String(MASK.into()),
    }
}

/// Message properties for the masked view: header names and the standard
/// properties' names stay, their values are masked (a header can carry
/// anything), except the ones that route and identify.
pub fn masked_properties(properties: &Value) -> Value {
    let mut out = properties.clone();
    if let Some(Value::Object(headers)) = out.get_mut("headers") {
        for v in headers.values_mut() {
            *v = Value::String(MASK.into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masked(v: Value) -> Value {
        serde_json::from_str(&masked_body(v.to_string().as_bytes())).unwrap()
    }

    #[test]
    fn routing_fields_and_ids_stay_and_everything_personal_is_masked() {
        let out = masked(json!({
            "command_id": "c-1", "tenant": "acme", "type": "contact.upsert",
            "issued_at": "2026-11-22T08:00:00Z", "actor": "hr-sync",
            "payload": {
                "contact_id": "c-9", "employer_id": "e-1",
                "email": "ana@example.com", "first_name": "Ana", "phone": 4930123456_i64,
                "do_not_email": true, "status_code": "A", "expected_version": 3,
                "attributes": {"shoe": "42", "nested": ["x", {"secret": "y"}]},
                "contact_ids": ["c-1", "c-2"], "middle_name": null
            }
        }));
        assert_eq!(out["command_id"], "c-1");
        assert_eq!(out["tenant"], "acme");
        assert_eq!(out["type"], "contact.upsert");
        assert_eq!(out["issued_at"], "2026-11-22T08:00:00Z");
        assert_eq!(out["actor"], MASK);
        let p = &out["payload"];
        assert_eq!(p["contact_id"], "c-9");
        assert_eq!(p["employer_id"], "e-1");
        assert_eq!(p["status_code"], "A");
        assert_eq!(p["expected_version"], 3);
        assert_eq!(p["contact_ids"], json!(["c-1", "c-2"]));
        for personal in [
            &p["email"],
            &p["first_name"],
            &p["phone"],
            &p["do_not_email"],
        ] {
            assert_eq!(personal, MASK);
        }
        assert_eq!(p["attributes"]["shoe"], MASK);
        assert_eq!(p["attributes"]["nested"], json!([MASK, {"secret": MASK}]));
        assert_eq!(p["middle_name"], Value::Null);
        let text = masked_body(b"{\"payload\":{\"email\":\"ana@example.com\"}}");
        assert!(!text.contains("ana@"), "{text}");
    }

    #[test]
    fn ids_are_the_contracts_id_fields_not_any_key_ending_in_id() {
        let out = masked(json!({
            "command_id": "c-1", "tenant": "acme",
            "payload": {
                "contact_id": "c-9", "user_id": "u-1", "role_id": "r-1",
                "external_id": "X-77", "reason": "moved to 12 Elm St",
                "attributes": {"national_id": "AB123456C", "passport_id": "P9876543",
                               "contact_id": "c-other", "tags": ["vip"]},
                "filter": {"employer_id": "e-1"},
                "operation": {"type": "contact.set_attributes",
                              "payload": {"attributes": {"national_id": "ZZ99"}}}
            }
        }));
        let p = &out["payload"];
        for (id, value) in [
            ("contact_id", "c-9"),
            ("user_id", "u-1"),
            ("role_id", "r-1"),
        ] {
            assert_eq!(p[id], value);
        }
        assert_eq!(p["filter"]["employer_id"], "e-1");
        assert_eq!(p["operation"]["type"], "contact.set_attributes");
        // Not an id of the contract, whatever its name says.
        assert_eq!(p["external_id"], MASK);
        assert_eq!(p["reason"], MASK);
        // An attribute's value is the producer's data, whatever its name.
        assert_eq!(
            p["attributes"],
            json!({"national_id": MASK, "passport_id": MASK, "contact_id": MASK, "tags": [MASK]})
        );
        assert_eq!(p["operation"]["payload"]["attributes"]["national_id"], MASK);
    }

    #[test]
    fn free_text_shows_as_its_template() {
        assert_eq!(
            masked_text("failed again: invalid_command: attribute national_id `AB123456C` refused"),
            "failed again: invalid_command: attribute national_id <value> refused"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_hidden_whole() {
        let text = masked_body(b"ana@example.com <script>");
        assert!(!text.contains("ana"), "{text}");
        assert!(text.contains("24 bytes"), "{text}");
        assert!(masked_body(&[0xff, 0xfe]).contains("2 bytes"));
    }

    #[test]
    fn an_id_field_holding_objects_is_masked_inside() {
        // Only scalar values of id fields (and lists of them) are shown.
        let out = masked(json!({"payload": {"user_id": {"email": "a@b"},
                                            "contact_ids": [{"email": "c@d"}, "c-1"]}}));
        assert_eq!(out["payload"]["user_id"]["email"], MASK);
        assert_eq!(
            out["payload"]["contact_ids"],
            json!([{"email": MASK}, "c-1"])
        );
    }

    #[test]
    fn header_values_are_masked_and_names_kept() {
        let props = json!({"user_id": "ats", "headers": {"x-person": "Ana", "x-replayed": 2}});
        let out = masked_properties(&props);
        assert_eq!(out["headers"]["x-person"], MASK);
        assert_eq!(out["headers"]["x-replayed"], MASK);
        assert_eq!(out["user_id"], "ats");
    }
}
