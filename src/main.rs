//! `huoke`: run one service, all of them, or an operator command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use huoke::dev::{DEMO_ADMIN, DEMO_SDRS, DEMO_SLUG, dev_jwt_secret, random_token, seed_demo};
use huoke::{Application, all_services, service_named};
use huoke_shared::Infra;
use huoke_shared::config::{JwtConfig, Settings};
use huoke_shared::deadletters;
use huoke_shared::messages::TOPOLOGY;
use huoke_shared::repo::{staff, tenants};
use huoke_shared::store::Store;
use huoke_shared::telemetry::init_logging;

// The scan path allocates many small short-lived values per request; glibc's
// allocator showed as a fifth of its CPU profile (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "huoke",
    version,
    about = "Turns touch points into scored, de-duplicated, routed leads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process on embedded backends (unless DATABASE_URL, REDIS_URL
    /// or AMQP_URL say otherwise), with a seeded demo tenant.
    Dev {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = ".huoke")]
        data: PathBuf,
    },
    /// Run one service: codes, cards, intake, qualify, router, pool or console.
    Serve {
        service: String,
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Tenant administration.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Inspect and replay messages that consumers gave up on.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Mint an access token for a staff member (for scripts).
    Token {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List the dead letters of a queue (e.g. qualify.captures), every tenant's.
    List {
        queue: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Show one dead letter (its id or message id) with the message.
    Show {
        queue: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Send dead letters back into the queue that failed them.
    Replay {
        queue: String,
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and its first admin.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

fn settings(data: Option<PathBuf>) -> anyhow::Result<Settings> {
    let mut s = Settings::from_env()?;
    if let Some(data) = data {
        s.data_dir = data;
    }
    Ok(s)
}

/// Without a configured key, an embedded install uses the secret kept in its data directory.
fn with_dev_jwt(mut s: Settings) -> anyhow::Result<Settings> {
    if s.jwt.is_none() {
        s.jwt = Some(JwtConfig::Secret(dev_jwt_secret(&s.data_dir)?));
    }
    Ok(s)
}

#[tokio::main]
async fn main() {
    init_logging();
    if let Err(err) = run(Cli::parse()).await {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev { listen, data } => {
            let mut s = with_dev_jwt(settings(Some(data))?)?;
            s.listen = listen;
            let given = std::env::var("HUOKE_DEV_PASSWORD").ok().filter(|p| !p.is_empty());
            let password = given.clone().unwrap_or_else(|| random_token(16));
            if password.chars().count() < 8 {
                bail!("configuration error in HUOKE_DEV_PASSWORD: at least 8 characters");
            }
            let data_dir = s.data_dir.clone();
            let app = Application::build(s, all_services()).await?;
            let demo = seed_demo(&app.infra().store, &password, given.is_some()).await?;
            let url = format!("http://{}:{}", listen.ip(), app.port());
            println!("huoke dev is running at {url}  (data in {})", data_dir.display());
            println!("  tenant:   {DEMO_SLUG}");
            println!("  admin:    {DEMO_ADMIN}");
            println!("  SDRs:     {}", DEMO_SDRS.join(", "));
            if given.is_some() {
                println!("  password: from HUOKE_DEV_PASSWORD");
            } else if demo.created {
                println!("  password: {password}   (set HUOKE_DEV_PASSWORD to choose one)");
            } else {
                println!(
                    "  password: unchanged since the demo tenant was created (set HUOKE_DEV_PASSWORD to reset it)"
                );
            }
            println!("  sign in:  curl -s {url}/v1/auth/token -H 'content-type: application/json' \\");
            println!(
                "              -d '{{\"tenant\":\"{DEMO_SLUG}\",\"email\":\"{DEMO_ADMIN}\",\"password\":\"...\"}}'"
            );
            app.run_until_signalled().await
        }
        Command::Serve { service, listen, data } => {
            let Some(def) = service_named(&service) else {
                let names: Vec<_> = all_services().iter().map(|s| s.name).collect();
                bail!("unknown service `{service}`; one of: {}", names.join(", "));
            };
            let mut s = settings(data)?;
            if let Some(listen) = listen {
                s.listen = listen;
            }
            if s.database_url.is_none() {
                s = with_dev_jwt(s)?;
            }
            let app = Application::build(s, vec![def]).await?;
            app.run_until_signalled().await
        }
        Command::Migrate { data } => {
            let s = settings(data)?;
            let store = Store::connect(&s.effective_database_url()).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    slug,
                    name,
                    admin_email,
                    admin_password,
                    data,
                },
        } => {
            let s = settings(data)?;
            let store = Store::connect(&s.effective_database_url()).await?;
            store.migrate().await?;
            let (tenant, admin_id) =
                tenants::create_tenant(&store, &slug, &name, &admin_email, &admin_password).await?;
            println!(
                "{}",
                serde_json::json!({"tenant_id": tenant.id, "slug": tenant.slug, "admin_id": admin_id})
            );
            Ok(())
        }
        Command::Dlq { command } => dlq(command).await,
        Command::Token {
            tenant,
            email,
            ttl,
            data,
        } => {
            let s = with_dev_jwt(settings(data)?)?;
            let store = Store::connect(&s.effective_database_url()).await?;
            let t = tenants::by_slug(&store, &tenant)
                .await?
                .with_context(|| format!("no tenant `{tenant}`"))?;
            let member = staff::by_email(&store, &t.id, &email)
                .await?
                .with_context(|| format!("no staff member {email} in {tenant}"))?;
            let keys = huoke_shared::auth::JwtKeys::from_config(s.jwt.as_ref().context("no signing key configured")?)?;
            println!("{}", keys.issue(&member.id, &t.id, &member.roles(), ttl)?);
            Ok(())
        }
    }
}

async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    let (queue, data) = match &command {
        DlqCommand::List { queue, data, .. }
        | DlqCommand::Show { queue, data, .. }
        | DlqCommand::Replay { queue, data, .. } => (queue.clone(), data.clone()),
    };
    let names: Vec<_> = TOPOLOGY.iter().map(|q| q.name).collect();
    let Some(queue) = deadletters::known_queue(&queue) else {
        bail!("unknown queue `{queue}`; one of: {}", names.join(", "));
    };
    let infra = Infra::connect(with_dev_jwt(settings(data)?)?).await?;
    let scope = deadletters::Scope {
        tenant_id: None,
        queue: Some(queue),
    };
    match command {
        DlqCommand::List { limit, .. } => {
            let rows = deadletters::list(&infra.store, scope, None, limit.clamp(1, 10_000)).await?;
            for row in &rows {
                println!("{}", serde_json::to_string(row)?);
            }
            eprintln!("{} dead letter(s) in {queue}", rows.len());
        }
        DlqCommand::Show { id, .. } => {
            let row = deadletters::get(&infra.store, scope, &id)
                .await?
                .with_context(|| format!("no dead letter `{id}` in {queue}"))?;
            println!("{}", serde_json::to_string_pretty(&row)?);
        }
        DlqCommand::Replay { id, .. } => {
            if let Some(id) = &id {
                deadletters::get(&infra.store, scope, id)
                    .await?
                    .with_context(|| format!("no dead letter `{id}` in {queue}"))?;
            }
            let n = deadletters::replay(&infra.store, &*infra.bus, scope, id.as_deref()).await?;
            println!("{}", serde_json::json!({"replayed": n, "queue": queue}));
        }
    }
    infra.store.close().await;
    Ok(())
}
