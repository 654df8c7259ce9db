//! A message body for a human to read, as the CLI prints it and the
//! console shows it once revealed.

use serde_json::Value;

/// Pretty JSON, else the escaped text, else hex.
pub fn render(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    match std::str::from_utf8(body) {
        Ok(text) => format!("(not JSON) {}", text.escape_debug()),
        Err(_) => {
            let mut hex = String::from("(not UTF-8; hex)\n");
            for chunk in body.chunks(16) {
                let line: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                hex.push_str(&line.join(" "));
                hex.push('\n');
            }
            hex
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_text_is_escaped_and_the_rest_is_hex() {
        assert_eq!(render(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(render(b"hi\x1b"), "(not JSON) hi\\u{1b}");
        assert_eq!(render(&[0xff, 0x00]), "(not UTF-8; hex)\nff 00\n");
    }
}
