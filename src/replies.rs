//! Replies to `reply_to`, sent after the commit. A reply is the outcome's
//! notice, not its record (the inbox keeps it, and a redelivered command is
//! answered again from there), so a reply the broker does not take never
//! holds up the queue:
//! - refused (nack: the reply queue is full with `reject-publish`, or the
//!   broker is short of resources): sent again, [`ATTEMPTS`] times in all
//!   with a short backoff, then given up;
//! - unroutable (the `reply_to` queue does not exist; replies are published
//!   `mandatory` so the broker says so): given up at once.
//!
//! Each given-up reply is counted in `lifecycle_replies_undelivered_total`
//! by reason and logged with its correlation id; the command stays applied
//! and its delivery is acknowledged.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use serde_json::Value;
use tracing::warn;

use crate::domain::outcome::Reply;
use crate::monitoring;

/// Publishes of one reply at most, when the broker refuses it.
pub const ATTEMPTS: usize = 3;

/// Why a reply did not reach its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undelivered {
    /// The broker refused it every time it was sent.
    Refused,
    /// No queue of that name.
    Unroutable,
}

impl Undelivered {
    pub fn as_str(self) -> &'static str {
        match self {
            Undelivered::Refused => "refused",
            Undelivered::Unroutable => "unroutable",
        }
    }
}

/// One reply to send: the command's properties (`reply_to`, correlation)
/// and the reply.
pub type Outgoing<'a> = (&'a BasicProperties, &'a Reply);

/// Sends every reply at once and awaits their confirms together; a refused
/// one is sent again alone. Returns what could not be delivered (already
/// counted and logged); an error only when the channel itself failed.
pub async fn deliver(
    ch: &Channel,
    replies: &[Outgoing<'_>],
) -> lapin::Result<Vec<(usize, Undelivered)>> {
    let mut sent = Vec::with_capacity(replies.len());
    for (i, (props, reply)) in replies.iter().enumerate() {
        if let Some(c) = publish(ch, props, reply).await? {
            sent.push((i, c));
        }
    }
    let mut undelivered = Vec::new();
    for (i, confirm) in sent {
        let fate = match judge(confirm.await?) {
            Some(Undelivered::Refused) => retry(ch, replies[i]).await?,
            other => other,
        };
        if let Some(why) = fate {
            given_up(replies[i], why);
            undelivered.push((i, why));
        }
    }
    Ok(undelivered)
}

/// Sends a refused reply again, with backoff, until the broker takes it or
/// [`ATTEMPTS`] publishes were made.
async fn retry(ch: &Channel, (props, reply): Outgoing<'_>) -> lapin::Result<Option<Undelivered>> {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_times(ATTEMPTS - 1)
        .build();
    let mut fate = Some(Undelivered::Refused);
    while fate == Some(Undelivered::Refused) {
        let Some(delay) = delays.next() else { break };
        tokio::time::sleep(delay).await;
        fate = match publish(ch, props, reply).await? {
            Some(c) => judge(c.await?),
            None => None,
        };
    }
    Ok(fate)
}

fn judge(confirm: Confirmation) -> Option<Undelivered> {
    if !confirm.is_ack() {
        Some(Undelivered::Refused)
    } else if confirm.take_message().is_some() {
        Some(Undelivered::Unroutable)
    } else {
        None
    }
}

fn given_up((props, reply): Outgoing<'_>, why: Undelivered) {
    monitoring::reply_undelivered(why.as_str());
    warn!(
        reason = why.as_str(),
        correlation_id = props.correlation_id().as_ref().map(|c| c.as_str()),
        command_id = reply.command_id.as_deref(),
        "reply not delivered; the command's outcome stays in the inbox"
    );
}

/// Publishes the reply to `reply_to`, if the command asked for one; the
/// broker's confirm is returned to be awaited.
async fn publish(
    ch: &Channel,
    props: &BasicProperties,
    reply: &Reply,
) -> lapin::Result<Option<PublisherConfirm>> {
    let Some(reply_to) = props.reply_to().as_ref() else {
        return Ok(None);
    };
    let correlation = props
        .correlation_id()
        .as_ref()
        .map(|c| c.as_str().to_owned())
        .or_else(|| reply.command_id.clone());
    let mut out = BasicProperties::default().with_content_type("application/json".into());
    if let Some(c) = correlation {
        out = out.with_correlation_id(c.into());
    }
    let body = serde_json::to_vec(reply).unwrap_or_else(|_| Value::Null.to_string().into_bytes());
    ch.basic_publish(
        "".into(),
        reply_to.as_str().into(),
        // Mandatory: a reply_to naming no queue comes back, and is counted.
        BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        },
        &body,
        out,
    )
    .await
    .map(Some)
}
