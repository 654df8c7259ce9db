//! Producer authorisation with a real RabbitMQ user and the AMQP `user_id`
//! property (which RabbitMQ checks against the connection's user).

use crate::helpers::TestEnv;
use lifecycle_worker::amqp;
use lifecycle_worker::domain::policy::ProducerGrant;
use secrecy::SecretString;
use serde_json::json;

/// A RabbitMQ user that exists for the duration of a test.
struct BrokerUser {
    name: String,
}

async fn rabbitmqctl(args: &[&str]) {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl BrokerUser {
    async fn create(name: &str, password: &str) -> BrokerUser {
        rabbitmqctl(&["-q", "add_user", name, password]).await;
        rabbitmqctl(&["-q", "set_permissions", "-p", "/", name, ".*", ".*", ".*"]).await;
        BrokerUser {
            name: name.to_owned(),
        }
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_user", &self.name])
            .output();
    }
}

#[tokio::test]
async fn producers_may_send_only_what_they_are_granted() {
    let name = format!("ats-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let user = BrokerUser::create(&name, "secret").await;
    let env = TestEnv::start_with(|s| {
        s.producers.insert(
            name.clone(),
            ProducerGrant {
                tenants: vec!["acme".into()],
                commands: vec!["contact.*".into(), "employer.*".into()],
                replay: false,
            },
        );
    })
    .await;

    let mut producer_settings = env.settings.amqp.clone();
    producer_settings.url = SecretString::from(format!("amqp://{name}:secret@127.0.0.1:5672/%2f"));
    let conn = amqp::connect(&producer_settings, "test-producer")
        .await
        .unwrap();
    let ch = amqp::confirm_channel(&conn).await.unwrap();

    let send_as = |cmd: serde_json::Value, user_id: Option<String>| {
        let ch = ch.clone();
        let env = &env;
        async move {
            let correlation = cmd["command_id"].as_str().unwrap().to_owned();
            let mut props = amqp::json_properties()
                .with_reply_to(env_reply_queue(env).into())
                .with_correlation_id(correlation.as_str().into());
            if let Some(u) = user_id {
                props = props.with_user_id(u.into());
            }
            let body = serde_json::to_vec(&cmd).unwrap();
            env.publish_on(&ch, &crate::helpers::routing_key_of(&cmd), &body, props)
                .await;
            env.reply(&correlation).await
        }
    };

    let allowed = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    assert_eq!(
        send_as(allowed, Some(name.clone())).await["outcome"],
        "applied"
    );

    let wrong_type = env.command(
        "acme",
        "user.upsert",
        0,
        json!({"user_id": "u-1", "email": "a@example.com"}),
    );
    let r = send_as(wrong_type, Some(name.clone())).await;
    assert_eq!(r["error"]["code"], "forbidden");

    let wrong_tenant = env.command(
        "globex",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    assert_eq!(
        send_as(wrong_tenant, Some(name.clone())).await["error"]["code"],
        "forbidden"
    );

    let anonymous = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-1"}),
    );
    assert_eq!(send_as(anonymous, None).await["error"]["code"], "forbidden");

    // The guest connection cannot claim to be the producer: RabbitMQ
    // refuses a user_id that is not the connection's own user.
    let forged = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-1"}),
    );
    let refused = env
        .ch
        .basic_publish(
            env.names.commands.as_str().into(),
            "acme.contact.deactivate".into(),
            Default::default(),
            &serde_json::to_vec(&forged).unwrap(),
            amqp::json_properties().with_user_id(name.as_str().into()),
        )
        .await;
    let confirmed = match refused {
        Ok(confirm) => confirm.await.map(|c| c.is_ack()).unwrap_or(false),
        Err(_) => false,
    };
    assert!(!confirmed, "the broker must refuse a forged user_id");

    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["active"], true, "no refused command had an effect");
    assert_eq!(env.dead_letters().await.len(), 3);
    let _ = conn.close(200, "done".into()).await;
    drop(user);
    env.finish().await;
}

fn env_reply_queue(env: &TestEnv) -> String {
    env.reply_queue_name().to_owned()
}
