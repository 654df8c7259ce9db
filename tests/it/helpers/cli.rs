//! The real binary's CLI run against the test's database and broker.

use std::process::Stdio;

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::process::{Child, Command};

use super::worker::guardrail_env;
use super::TestEnv;

impl TestEnv {
    /// Runs the binary and returns (exit code, stdout, stderr).
    pub async fn cli_text(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cli(args).await;
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The real binary as a running process (killed on drop).
    pub fn cli_child(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
            .args(args)
            .env(
                "LIFECYCLE__DATABASE__URL",
                self.settings.database.url.expose_secret(),
            )
            .env(
                "LIFECYCLE__AMQP__URL",
                self.settings.amqp.url.expose_secret(),
            )
            .env("LIFECYCLE__AMQP__PREFIX", &self.settings.amqp.prefix)
            .envs(guardrail_env(&self.settings))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("lifecycle-worker starts")
    }

    /// Runs the real binary against this test's database and broker.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with(args, &[]).await
    }

    /// [`TestEnv::cli`] with environment variables added or overridden.
    pub async fn cli_with(
        &self,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> std::process::Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
            .args(args)
            .env(
                "LIFECYCLE__DATABASE__URL",
                self.settings.database.url.expose_secret(),
            )
            .env(
                "LIFECYCLE__AMQP__URL",
                self.settings.amqp.url.expose_secret(),
            )
            .env("LIFECYCLE__AMQP__PREFIX", &self.settings.amqp.prefix)
            .env("RUST_LOG", "warn")
            .envs(guardrail_env(&self.settings))
            .envs(extra_env.iter().copied())
            .output()
            .await
            .expect("running lifecycle-worker")
    }

    /// `contact show` output, or `None` when it exits 1 (no such contact).
    pub async fn contact_show(&self, tenant: &str, id: &str) -> Option<Value> {
        self.show(&["contact", "show", "--tenant", tenant, id])
            .await
    }

    pub async fn contact_show_activity(&self, tenant: &str, id: &str) -> Value {
        self.show(&["contact", "show", "--tenant", tenant, id, "--activity"])
            .await
            .expect("contact exists")
    }

    pub async fn user_show(&self, tenant: &str, id: &str) -> Option<Value> {
        self.show(&["user", "show", "--tenant", tenant, id]).await
    }

    async fn show(&self, args: &[&str]) -> Option<Value> {
        let out = self.cli(args).await;
        match out.status.code() {
            Some(0) => Some(serde_json::from_slice(&out.stdout).expect("show prints JSON")),
            Some(1) => {
                assert!(!out.stderr.is_empty(), "exit 1 explains itself on stderr");
                None
            }
            other => panic!(
                "show failed with {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}
