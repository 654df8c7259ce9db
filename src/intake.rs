//! How a command comes in, whatever the door: an [`Inbound`] (its body,
//! only the first bytes of an oversize one; who sent it; the dead letter it
//! becomes when refused) and its [`Prepared`] form. One function per door
//! makes the `Inbound` ([`Inbound::from_delivery`] for AMQP,
//! [`Inbound::from_stored`] for a held or scheduled command brought back,
//! [`operator_cancel`] for an operator's cancel), and [`prepare`] turns any
//! of them into the prepared command the unit of work applies; the unit of
//! work never asks which door it was.

use crate::store::dead_letters::DeadLetter;
use lapin::message::Delivery;
use lapin::types::AMQPValue;
use lapin::Acker;
use lapin::BasicProperties;
use sha2::{Digest, Sha256};

use crate::amqp;
use crate::domain::admission::{admit, Arrival};
use crate::domain::envelope::{Command, CommandBody, DecodeFailure};
use crate::domain::ids::{CommandId, Limits, TenantId};
use crate::domain::outcome::Rejection;
use crate::domain::policy::{Producers, ORIGINAL_USER_HEADER};
use time::OffsetDateTime;

/// Decoded and authorised, or refused before touching the database.
#[derive(Debug, Clone)]
pub enum Prepared {
    Command(Box<Command>),
    Refused(DecodeFailure),
}

/// Admits what came in through any door: decoded and authorised, or refused.
pub fn prepare(
    msg: &Inbound,
    limits: &Limits,
    producers: &Producers,
    now: OffsetDateTime,
) -> Prepared {
    match admit(&msg.arrival(), limits, producers, now) {
        Ok(cmd) => Prepared::Command(Box::new(cmd)),
        Err(failure) => Prepared::Refused(failure),
    }
}

/// An operator's cancel of a scheduled command (`schedule cancel`, the
/// console), with the operator as its `actor`: built as a command, not
/// decoded; its body is kept as the dead letter's if it is refused.
pub fn operator_cancel(
    tenant: &TenantId,
    target: &str,
    actor: &str,
    now: OffsetDateTime,
    limits: &Limits,
) -> (Inbound, Prepared) {
    let command_id = format!("cancel-{}", uuid::Uuid::new_v4());
    let body = serde_json::json!({
        "command_id": command_id,
        "tenant": tenant.as_str(),
        "type": "command.cancel",
        "issued_at": crate::domain::event::format_time(now),
        "actor": actor,
        "payload": {"command_id": target},
    });
    let routing_key = format!("{}.command.cancel", tenant.as_str());
    let msg = Inbound::new(
        body.to_string().into_bytes(),
        BasicProperties::default(),
        "",
        &routing_key,
        false,
        limits,
    );
    // As the decoder words a bad `payload.command_id`.
    let parsed = CommandId::parse(&command_id, limits).and_then(|id| {
        let target = CommandId::parse(target, limits)
            .map_err(|r| Rejection::invalid(format!("payload.{}", r.message)))?;
        Ok((id, target))
    });
    let prepared = match parsed {
        Ok((command_id, target)) => Prepared::Command(Box::new(Command {
            command_id,
            tenant: tenant.clone(),
            issued_at: now,
            actor: Some(actor.to_owned()),
            expected_version: None,
            effective_at: None,
            body: CommandBody::Cancel { command_id: target },
        })),
        Err(rejection) => Prepared::Refused(DecodeFailure {
            rejection,
            command_id: Some(command_id),
            tenant: Some(tenant.to_string()),
            command_type: Some(crate::domain::registry::CANCEL.to_owned()),
        }),
    };
    (msg, prepared)
}

/// A delivery as the batch sees it, independent of the channel.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// When the delivery arrived, for the command duration metric.
    pub received: std::time::Instant,
    /// The broker delivered it before (or `dlq replay` sent it again): it
    /// may well be a duplicate, so the inbox is checked up front.
    pub maybe_duplicate: bool,
    /// The body; for a body over `limits.max_body_bytes`, only the first
    /// `limits.dead_letter_body_bytes`, so that it is not held in memory.
    pub body: Vec<u8>,
    /// The full body's length.
    pub body_len: usize,
    /// The full body's SHA-256, taken on arrival when the body was cut.
    cut_body_sha256: Option<[u8; 32]>,
    pub properties: BasicProperties,
    pub exchange: String,
    pub routing_key: String,
    /// The delivery carries `x-replayed`.
    pub replayed: bool,
    /// The producer a replay names ([`ORIGINAL_USER_HEADER`]).
    pub original_user: Option<String>,
    /// How deeply the headers nest tables and arrays.
    headers_depth: usize,
}

impl Inbound {
    /// Takes the delivery apart: what the batch needs, and the acker.
    pub fn from_delivery(d: Delivery, limits: &Limits) -> (Inbound, Acker) {
        let Delivery {
            data,
            properties,
            exchange,
            routing_key,
            redelivered,
            acker,
            ..
        } = d;
        (
            Inbound::new(
                data,
                properties,
                exchange.as_str(),
                routing_key.as_str(),
                redelivered,
                limits,
            ),
            acker,
        )
    }

    pub fn new(
        data: Vec<u8>,
        properties: BasicProperties,
        exchange: &str,
        routing_key: &str,
        redelivered: bool,
        limits: &Limits,
    ) -> Inbound {
        let header = |name: &str| {
            properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(name).cloned())
        };
        let replayed = header(amqp::REPLAYED_HEADER).is_some();
        let original_user = match header(ORIGINAL_USER_HEADER) {
            Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into()),
            Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
            _ => None,
        };
        let headers_depth = properties.headers().as_ref().map_or(0, amqp::table_depth);
        let body_len = data.len();
        let (body, cut_body_sha256) = if body_len > limits.max_body_bytes {
            let digest: [u8; 32] = Sha256::digest(&data).into();
            let mut kept = data;
            kept.truncate(limits.dead_letter_body_bytes);
            kept.shrink_to_fit();
            (kept, Some(digest))
        } else {
            (data, None)
        };
        Inbound {
            received: std::time::Instant::now(),
            maybe_duplicate: redelivered || replayed,
            body,
            body_len,
            cut_body_sha256,
            properties,
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            replayed,
            original_user,
            headers_depth,
        }
    }

    /// A command kept by the store (held by the guardrail, scheduled) as
    /// the delivery it was.
    pub fn from_stored(
        body: &[u8],
        properties: &serde_json::Value,
        exchange: &str,
        routing_key: &str,
        limits: &Limits,
    ) -> Inbound {
        Inbound::new(
            body.to_vec(),
            amqp::properties_from_json(properties),
            exchange,
            routing_key,
            false,
            limits,
        )
    }

    /// The properties as the store keeps them (dead letters, holds, the
    /// schedule).
    pub fn properties_json(&self) -> serde_json::Value {
        amqp::properties_to_json(&self.properties)
    }

    pub fn user_id(&self) -> Option<&str> {
        self.properties.user_id().as_ref().map(|u| u.as_str())
    }

    /// The producer this delivery is authorised as (see [`Producers::acting_producer`]).
    pub fn acting_producer<'a>(&'a self, producers: &Producers) -> Option<&'a str> {
        producers.acting_producer(self.user_id(), self.replayed, self.original_user.as_deref())
    }

    /// What admission needs of this delivery.
    pub fn arrival(&self) -> Arrival<'_> {
        Arrival {
            body: &self.body,
            body_len: self.body_len,
            routing_key: &self.routing_key,
            user_id: self.user_id(),
            replayed: self.replayed,
            original_user: self.original_user.as_deref(),
            headers_depth: self.headers_depth,
        }
    }

    /// Lower-case hex SHA-256 of the full body.
    pub fn body_sha256(&self) -> String {
        let digest: [u8; 32] = match self.cut_body_sha256 {
            Some(d) => d,
            None => Sha256::digest(&self.body).into(),
        };
        hex::encode(digest)
    }

    /// The dead-letter row this delivery becomes when refused. The
    /// producer recorded is the one it was authorised as (the original
    /// producer of a trusted replay), so a replay of the row is authorised
    /// the same way again.
    pub fn dead_letter(
        &self,
        failure: &DecodeFailure,
        producers: &Producers,
        limits: &Limits,
    ) -> DeadLetter {
        let properties = self.properties_json();
        let trusted = producers.trusts_replay_from(self.user_id(), self.replayed);
        let kept = self.body.len().min(limits.dead_letter_body_bytes);
        DeadLetter {
            body: self.body[..kept].to_vec(),
            body_len: self.body_len as i64,
            body_sha256: self.body_sha256(),
            // A producer's own x-replayed header counts for nothing.
            replay: if trusted {
                amqp::replay_number(&properties)
            } else {
                0
            },
            user_id: self.acting_producer(producers).map(str::to_owned),
            properties,
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            tenant: failure.tenant.clone(),
            command_id: failure.command_id.clone(),
            command_type: failure.command_type.clone(),
            subject: crate::domain::envelope::subject_of(&self.body),
            code: failure.rejection.code.as_str().to_owned(),
            message: failure.rejection.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::ErrorCode;
    use lapin::types::{FieldTable, LongString};

    fn failure(code: ErrorCode) -> DecodeFailure {
        DecodeFailure {
            rejection: Rejection::new(code, "refused"),
            command_id: None,
            tenant: None,
            command_type: None,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 100,
            dead_letter_body_bytes: 10,
            ..Limits::default()
        }
    }

    #[test]
    fn an_oversize_body_is_cut_on_arrival_and_keeps_its_length_and_hash() {
        let body = vec![b'x'; 150];
        let msg = Inbound::new(
            body.clone(),
            BasicProperties::default(),
            "e",
            "k",
            false,
            &limits(),
        );
        assert_eq!(msg.body.len(), 10);
        assert_eq!(msg.body_len, 150);
        assert_eq!(msg.body_sha256(), hex::encode(Sha256::digest(&body)));
        let d = msg.dead_letter(
            &failure(ErrorCode::Malformed),
            &Producers::default(),
            &limits(),
        );
        assert_eq!((d.body.len(), d.body_len), (10, 150));
        assert_eq!(d.body_sha256, msg.body_sha256());
    }

    #[test]
    fn a_body_within_the_limit_is_kept_whole_but_stored_cut() {
        let body = vec![b'y'; 60];
        let msg = Inbound::new(
            body.clone(),
            BasicProperties::default(),
            "e",
            "k",
            false,
            &limits(),
        );
        assert_eq!(msg.body, body);
        let d = msg.dead_letter(
            &failure(ErrorCode::InvalidCommand),
            &Producers::default(),
            &limits(),
        );
        assert_eq!((d.body.len(), d.body_len), (10, 60));
        assert_eq!(d.body_sha256, hex::encode(Sha256::digest(&body)));
    }

    #[test]
    fn replay_headers_are_read() {
        let mut headers = FieldTable::default();
        headers.insert(amqp::REPLAYED_HEADER.into(), AMQPValue::LongLongInt(2));
        headers.insert(
            ORIGINAL_USER_HEADER.into(),
            AMQPValue::LongString(LongString::from("narrow")),
        );
        let props = BasicProperties::default()
            .with_headers(headers)
            .with_user_id("operator".into());
        let msg = Inbound::new(b"{}".to_vec(), props, "e", "k", false, &limits());
        assert!(msg.replayed && msg.maybe_duplicate);
        assert_eq!(msg.original_user.as_deref(), Some("narrow"));
        assert_eq!(msg.user_id(), Some("operator"));
    }
}
