//! `faultline alert …`: add, list and remove alert channels from the command line.

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::DatabaseSettings;
use crate::domain::level::Level;
use crate::store::alerts::{self, ChannelKind, NewChannel, Trigger};
use crate::store::{self, projects};

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a project's alerts to a webhook, Slack, Discord or Microsoft Teams.
    Add(AddChannel),
    /// List alert channels with their last success or failure.
    List {
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Remove an alert channel by its id (from `alert list`).
    Remove {
        id: i64,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Args)]
pub struct AddChannel {
    /// The project's name or id.
    project: String,
    /// webhook (signed JSON), slack, discord or teams.
    #[arg(long)]
    kind: String,
    /// The webhook URL to post to.
    #[arg(long)]
    url: String,
    /// Signs generic webhooks: X-Faultline-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.body">.
    #[arg(long, env = "FAULTLINE_ALERT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// What to alert on, comma-separated: new_issue, regression (default: both).
    #[arg(long, value_delimiter = ',', default_value = "new_issue,regression")]
    triggers: Vec<String>,
    /// Only events of these environments, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    environment: Vec<String>,
    /// Only events at or above this level: debug, info, warning, error or fatal.
    #[arg(long, default_value = "debug")]
    min_level: String,
    #[command(flatten)]
    database: DatabaseSettings,
}

/// Never the URL or the secret: both are credentials.
impl std::fmt::Debug for AddChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddChannel")
            .field("project", &self.project)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

pub async fn run(command: AlertCommand) -> anyhow::Result<()> {
    match command {
        AlertCommand::Add(channel) => add(channel).await?,
        AlertCommand::List { database } => {
            let pool = open(&database).await?;
            for c in alerts::list_channels(&pool).await? {
                let last = match (c.last_success_at, c.last_failure_at) {
                    (_, Some(failed)) if c.last_success_at.is_none_or(|ok| failed > ok) => {
                        format!("failed {failed}: {}", c.last_failure.unwrap_or_default())
                    }
                    (Some(ok), _) => format!("delivered {ok}"),
                    _ => "nothing sent yet".into(),
                };
                let environments = if c.environments.is_empty() {
                    "all environments".to_owned()
                } else {
                    c.environments.join(",")
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\tlevel>={}\t{}",
                    c.id,
                    c.project_name,
                    c.kind,
                    c.triggers.join(","),
                    environments,
                    c.min_level,
                    last
                );
            }
        }
        AlertCommand::Remove { id, database } => {
            let pool = open(&database).await?;
            anyhow::ensure!(
                alerts::delete_channel(&pool, id).await?,
                "no alert channel {id}"
            );
            println!("Removed alert channel {id}");
        }
    }
    Ok(())
}

async fn add(args: AddChannel) -> anyhow::Result<()> {
    let AddChannel {
        project,
        kind,
        url,
        secret,
        triggers,
        environment,
        min_level,
        database,
    } = args;
    let kind =
        ChannelKind::parse(&kind).context("--kind must be webhook, slack, discord or teams")?;
    anyhow::ensure!(
        url.starts_with("https://") || url.starts_with("http://"),
        "--url must be an http:// or https:// address"
    );
    let triggers = triggers
        .iter()
        .map(|t| {
            Trigger::parse(t.trim())
                .with_context(|| format!("unknown trigger {t:?}: use new_issue or regression"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let min_level = Level::parse(&min_level).with_context(|| {
        let names: Vec<&str> = Level::ALL.map(Level::as_str).to_vec();
        format!("--min-level must be one of {}", names.join(", "))
    })?;
    let pool = open(&database).await?;
    let found = match project.parse::<i64>() {
        Ok(id) => projects::find(&pool, id).await?,
        Err(_) => projects::find_by_name(&pool, &project).await?,
    };
    let project = found.with_context(|| format!("no project {project:?}"))?;
    let channel = NewChannel {
        project_id: project.id,
        kind,
        target: url,
        secret,
        triggers,
        environments: environment.into_iter().filter(|e| !e.is_empty()).collect(),
        min_level,
    };
    let id = alerts::create_channel(&pool, &channel).await?;
    println!(
        "Added alert channel {id}: {} for project {}",
        channel.kind.as_str(),
        project.name
    );
    Ok(())
}

async fn open(database: &DatabaseSettings) -> anyhow::Result<sqlx::PgPool> {
    let pool = store::connect(database).await?;
    store::migrate(&pool).await?;
    Ok(pool)
}
