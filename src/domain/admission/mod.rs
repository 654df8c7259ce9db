//! Whether an arriving message becomes a command: size, decoding, clock,
//! routing key and producer grants (contract sections 2, 7 and 9). Pure:
//! the worker hands in what it read from the delivery.

use super::envelope::{decode, Command, CommandBody, DecodeFailure};
use super::ids::Limits;
use super::outcome::{ErrorCode, Rejection};
use super::policy::Producers;
use time::OffsetDateTime;

/// What admission needs to know of a delivery.
#[derive(Clone, Copy, Debug)]
pub struct Arrival<'a> {
    /// The body, or its first bytes when it was too large to keep.
    pub body: &'a [u8],
    /// The body's full length as delivered.
    pub body_len: usize,
    pub routing_key: &'a str,
    /// AMQP `user_id` (validated by RabbitMQ against the connection).
    pub user_id: Option<&'a str>,
    /// Carries the `x-replayed` header.
    pub replayed: bool,
    /// The original producer a replay names.
    pub original_user: Option<&'a str>,
    /// Levels of tables and arrays in the AMQP headers (the headers table
    /// itself is 1; none is 0).
    pub headers_depth: usize,
}

/// Header tables and arrays nested deeper than this make a message
/// `malformed`. Real headers stay within a few levels (`x-death` is an
/// array of tables holding arrays: 4); the AMQP client parses at most 32
/// levels and keeps anything deeper as bytes (vendor/README.md).
pub const MAX_HEADER_DEPTH: usize = 16;

/// Decodes and checks an arriving message; a refusal keeps whatever ids
/// could be read, for the dead-letter store.
pub fn admit(
    arrival: &Arrival<'_>,
    limits: &Limits,
    producers: &Producers,
    now: OffsetDateTime,
) -> Result<Command, DecodeFailure> {
    if arrival.body_len > limits.max_body_bytes {
        // Never decoded: only its first bytes were kept.
        return Err(DecodeFailure {
            rejection: Rejection::new(
                ErrorCode::Malformed,
                format!(
                    "body is {} bytes, more than the limit of {} bytes",
                    arrival.body_len, limits.max_body_bytes
                ),
            ),
            command_id: None,
            tenant: None,
            command_type: None,
        });
    }
    let cmd = decode(arrival.body, limits)?;
    if arrival.headers_depth > MAX_HEADER_DEPTH {
        return Err(cmd.refused(Rejection::new(
            ErrorCode::Malformed,
            format!("AMQP headers are nested more than {MAX_HEADER_DEPTH} levels deep"),
        )));
    }
    let producer =
        producers.acting_producer(arrival.user_id, arrival.replayed, arrival.original_user);
    check_issued_at(&cmd, now, limits)
        .and_then(|()| check_routing_key(&cmd, arrival.routing_key))
        .and_then(|()| {
            producers.authorise_command(producer, cmd.tenant.as_str(), &grants_needed(&cmd))
        })
        .map_err(|rejection| cmd.refused(rejection))?;
    Ok(cmd)
}

/// A command dated further ahead than the allowed skew would win every
/// later staleness comparison.
pub fn check_issued_at(
    cmd: &Command,
    now: OffsetDateTime,
    limits: &Limits,
) -> Result<(), Rejection> {
    if cmd.issued_at > now + limits.max_clock_skew {
        return Err(Rejection::invalid(format!(
            "issued_at is more than {} ahead of the worker's clock",
            humantime::format_duration(limits.max_clock_skew)
        )));
    }
    Ok(())
}

/// The routing key must be `{tenant}.{type}` of the body, so that broker
/// topic permissions on routing keys restrict producers as the body would.
pub fn check_routing_key(cmd: &Command, routing_key: &str) -> Result<(), Rejection> {
    let expected = format!("{}.{}", cmd.tenant, cmd.type_name());
    if routing_key != expected {
        return Err(Rejection::invalid(format!(
            "routing key `{}` does not match the body: expected `{expected}`",
            shown_routing_key(routing_key)
        )));
    }
    Ok(())
}

/// A routing key as a message quotes it: characters a key of ours never
/// holds become `?`, so no quote, control or other character from the
/// producer can end the quoted value early (and make each message its own
/// failure group, `domain::failure`).
fn shown_routing_key(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '?',
        })
        .collect()
}

/// Command types a producer must be granted to send `cmd`: a bulk needs
/// its inner operation's type as well.
pub fn grants_needed(cmd: &Command) -> Vec<&'static str> {
    match &cmd.body {
        CommandBody::Bulk(bulk) => vec![cmd.type_name(), bulk.op.type_name()],
        _ => vec![cmd.type_name()],
    }
}

#[cfg(test)]
mod tests;
