//! `privacy lookup`: the operator's side of a data-subject request
//! (contract section 11): who holds an address, and whether it was erased.

use clap::Subcommand;
use serde_json::json;
use sqlx::PgPool;

use crate::config::Settings;
use crate::hash_key::HashKey;
use crate::store::erasure;

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// The tenant's contacts and users (live or soft-deleted) with an
    /// address, in any case, and whether the address is on the tenant's
    /// blocklist of erased addresses. The address is never logged.
    ///
    /// Example: lifecycle-worker privacy lookup --tenant acme --email ada@example.com
    Lookup {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: &Settings, pool: &PgPool, cmd: PrivacyCommand) -> anyhow::Result<()> {
    match cmd {
        PrivacyCommand::Lookup {
            tenant,
            email,
            json,
        } => {
            let key = HashKey::load(pool, settings.privacy.hash_key.as_ref()).await?;
            let mut conn = pool.acquire().await?;
            let holders = erasure::holders(&mut conn, &tenant, &email).await?;
            let erased =
                erasure::is_erased(&mut conn, &tenant, &key.email_hmac(&tenant, &email)).await?;
            if json {
                println!(
                    "{}",
                    json!({"tenant": tenant, "holders": holders, "erased": erased})
                );
                return Ok(());
            }
            if holders.is_empty() {
                println!("no contact or user of tenant {tenant} has this address");
            }
            for h in &holders {
                let state = if h.deleted { "soft-deleted" } else { "live" };
                println!("{:<8} {:<40} {state}", h.kind, h.id);
            }
            println!(
                "erased: {}",
                if erased {
                    "yes (suppressed as previously_erased until contact.confirm_consent)"
                } else {
                    "no"
                }
            );
            Ok(())
        }
    }
}
