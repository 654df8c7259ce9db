//! Failure causes of dead letters (contract section 13): a rejection
//! message with its variable parts replaced, and a stable id for the cause,
//! so that thousands of dead letters from one bug form one group.

use sha2::{Digest, Sha256};

/// `message` with quoted values (between backticks, double or single
/// quotes) replaced by `<value>` and numbers by `<n>`.
pub fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' | '"' | '\'' if chars.clone().any(|x| x == c) => {
                for x in chars.by_ref() {
                    if x == c {
                        break;
                    }
                }
                out.push_str("<value>");
            }
            '0'..='9' => {
                while chars
                    .peek()
                    .is_some_and(|x| x.is_ascii_digit() || *x == '.' || *x == '_')
                {
                    chars.next();
                }
                out.push_str("<n>");
            }
            _ => out.push(c),
        }
    }
    out
}

/// A failure cause's id: the same code, command type and template give the
/// same id, on every run and every replica.
pub fn group_id(code: &str, command_type: Option<&str>, template: &str) -> String {
    let digest =
        Sha256::digest(format!("{code}\0{}\0{template}", command_type.unwrap_or("")).as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_numbers_and_quoted_values_become_placeholders() {
        assert_eq!(
            template("contact `c-17` does not exist"),
            "contact <value> does not exist"
        );
        assert_eq!(
            template("expected version 7, the contact is at version 12"),
            "expected version <n>, the contact is at version <n>"
        );
        assert_eq!(
            template("status `ZZ` is not one of the tenant's codes (A B C)"),
            "status <value> is not one of the tenant's codes (A B C)"
        );
        assert_eq!(
            template(r#"unknown field "colour", expected one of "a", "b""#),
            "unknown field <value>, expected one of <value>, <value>"
        );
        assert_eq!(template("body is 300.5 bytes"), "body is <n> bytes");
        assert_eq!(template("an `unclosed quote"), "an `unclosed quote");
    }

    #[test]
    fn one_cause_one_stable_id() {
        let a = template("contact `c-1` does not exist");
        let b = template("contact `x-999` does not exist");
        assert_eq!(a, b);
        let id = group_id("not_found", Some("contact.deactivate"), &a);
        assert_eq!(id.len(), 12);
        assert_eq!(id, group_id("not_found", Some("contact.deactivate"), &b));
        assert_ne!(id, group_id("not_found", Some("contact.archive"), &a));
        assert_ne!(id, group_id("frozen", Some("contact.deactivate"), &a));
        assert_ne!(id, group_id("not_found", None, &a));
    }
}
