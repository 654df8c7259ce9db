//! Failure causes of dead letters (contract section 13): a rejection
//! message with its variable parts replaced, and a stable id for the cause,
//! so that thousands of dead letters from one bug form one group.

use sha2::{Digest, Sha256};

use super::registry::CommandType;

/// What stands for a message whose quoting [`template`] cannot follow: a
/// value that holds its own quote character would otherwise leave part of
/// the value in the template and make each such message a group of its own.
pub const UNQUOTED: &str = "<message with unbalanced quotes>";

/// `message` with quoted values (between backticks, double or single
/// quotes) replaced by `<value>` and numbers by `<n>`; [`UNQUOTED`] when a
/// quote character is left over.
pub fn template(message: &str) -> String {
    let out = replace_values(message);
    if out.contains(['`', '"']) {
        return UNQUOTED.to_owned();
    }
    out
}

fn replace_values(message: &str) -> String {
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
    // A type the worker does not know is the producer's free text: all such
    // form one group per cause, not one per spelling.
    let command_type = command_type
        .and_then(CommandType::parse)
        .map_or("", CommandType::name);
    let digest = Sha256::digest(format!("{code}\0{command_type}\0{template}").as_bytes());
    hex::encode(&digest[..6])
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
        assert_eq!(template("an `unclosed quote"), UNQUOTED);
        assert_eq!(template("routing key `a`b` differs"), UNQUOTED);
        assert_eq!(
            template("field `a\"b` is unknown"),
            "field <value> is unknown"
        );
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
        // Types the worker does not know form one group, however spelt.
        assert_eq!(
            group_id("invalid_command", Some("x`1"), "t"),
            group_id("invalid_command", Some("contact.nope"), "t")
        );
        assert_eq!(
            group_id("invalid_command", Some("x`1"), "t"),
            group_id("invalid_command", None, "t")
        );
        assert_ne!(id, group_id("not_found", None, &a));
    }
}
