//! `faultline alert …`: add, list, test and remove alert channels from the command line. Each
//! command that creates a channel prints its id on the last line, for scripts.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{address, email, rules, sample_delivery, Outcome, Poster};
use crate::config::{AlertSettings, DatabaseSettings, PublicSettings};
use crate::domain::level::Level;
use crate::store::alerts::{self, ChannelKind, NewChannel, Trigger};
use crate::store::projects::{self, Project};
use crate::store::{self};

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a project's new issues and regressions to a webhook (generic signed JSON, Slack,
    /// Discord or Microsoft Teams) or by e-mail. Prints the channel's id last.
    Add(Box<AddChannel>),
    /// List alert channels (of one project, when named) with their last success or failure.
    List {
        /// A project's name or id.
        project: Option<String>,
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Post a sample notification to a channel now and say how it went.
    Test {
        id: i64,
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        public: PublicSettings,
        #[command(flatten)]
        alerts: AlertSettings,
    },
    /// Remove an alert channel by its id (from `alert list`).
    Remove {
        id: i64,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Args)]
#[group(id = "destination", required = true, multiple = false, args = ["webhook", "email"])]
pub struct AddChannel {
    /// The project's name or id.
    project: String,
    /// The webhook URL to post to.
    #[arg(long)]
    webhook: Option<String>,
    /// E-mail addresses to write to, comma-separated (needs FAULTLINE_SMTP_URL).
    #[arg(long)]
    email: Option<String>,
    /// What the receiver reads: json (Faultline's documented payload), slack, discord or teams.
    #[arg(long, default_value = "json")]
    format: String,
    /// Signs json webhooks: X-Faultline-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.body">.
    #[arg(long, env = "FAULTLINE_ALERT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// What to alert on, comma-separated: new, regression, spike (default: new,regression, and
    /// spike when --spike is given).
    #[arg(long = "on", value_delimiter = ',')]
    triggers: Vec<String>,
    /// Spike threshold: more than N events of one issue within a window, e.g. 100/5m.
    #[arg(long)]
    spike: Option<String>,
    /// Least time between two spike alerts for one issue, e.g. 30m.
    #[arg(long, default_value = "30m")]
    cooldown: String,
    /// Only events of these environments, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    environment: Vec<String>,
    /// Only events at or above this level: debug, info, warning, error or fatal.
    #[arg(long, default_value = "debug")]
    min_level: String,
    #[command(flatten)]
    database: DatabaseSettings,
    #[command(flatten)]
    alerts: AlertSettings,
}

/// Never the URL or the secret: both are credentials.
impl std::fmt::Debug for AddChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddChannel")
            .field("project", &self.project)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

pub async fn run(command: AlertCommand) -> anyhow::Result<()> {
    match command {
        AlertCommand::Add(channel) => add(*channel).await,
        AlertCommand::List { project, database } => list(project, &database).await,
        AlertCommand::Test {
            id,
            database,
            public,
            alerts,
        } => test(id, &database, public, &alerts).await,
        AlertCommand::Remove { id, database } => {
            let pool = open(&database).await?;
            anyhow::ensure!(
                alerts::delete_channel(&pool, id, None).await?,
                "no alert channel {id}"
            );
            println!("Removed alert channel {id}");
            Ok(())
        }
    }
}

async fn add(args: AddChannel) -> anyhow::Result<()> {
    let (kind, target) = destination(&args).await?;
    let spike = args
        .spike
        .as_deref()
        .map(rules::parse_spike)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let cooldown = rules::parse_minutes(&args.cooldown).map_err(anyhow::Error::msg)?;
    let mut names = args.triggers.clone();
    if names.is_empty() {
        names = vec!["new".into(), "regression".into()];
        if spike.is_some() {
            names.push("spike".into());
        }
    }
    let triggers = names
        .iter()
        .map(|t| match t.trim() {
            "new" => Ok(Trigger::NewIssue),
            other => Trigger::parse(other).with_context(|| {
                format!("unknown trigger {t:?} in --on: use new, regression, spike")
            }),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        spike.is_some() || !triggers.contains(&Trigger::Spike),
        "--on spike needs a threshold: --spike 100/5m"
    );
    let min_level = Level::parse(&args.min_level).with_context(|| {
        let names: Vec<&str> = Level::ALL.map(Level::as_str).to_vec();
        format!("--min-level must be one of {}", names.join(", "))
    })?;
    let pool = open(&args.database).await?;
    let project = find_project(&pool, &args.project).await?;
    let channel = NewChannel {
        project_id: project.id,
        kind,
        target,
        secret: args.secret,
        triggers,
        environments: args
            .environment
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect(),
        min_level,
        spike_events: spike.map(|(events, _)| events),
        spike_minutes: spike.map(|(_, minutes)| minutes),
        cooldown_minutes: cooldown,
    };
    let id = alerts::create_channel(&pool, &channel).await?;
    println!(
        "Added a {} alert channel for project {}. Its id:",
        channel.kind.as_str(),
        project.name
    );
    println!("{id}");
    Ok(())
}

/// The channel's kind and where it posts: a checked webhook URL, or checked addresses.
async fn destination(args: &AddChannel) -> anyhow::Result<(ChannelKind, String)> {
    if let Some(to) = &args.email {
        email::check_addresses(to).map_err(anyhow::Error::msg)?;
        return Ok((ChannelKind::Email, to.clone()));
    }
    let url = args.webhook.clone().unwrap_or_default();
    let kind = match args.format.as_str() {
        "json" => ChannelKind::Webhook,
        other => ChannelKind::parse(other)
            .filter(|k| !matches!(k, ChannelKind::Webhook | ChannelKind::Email))
            .context("--format must be json, slack, discord or teams")?,
    };
    match address::check_resolved(&url, args.alerts.allow_private_webhooks).await {
        // Not resolvable from here right now: every send checks it again.
        Err(address::RefusedTarget::Unresolved) => {
            eprintln!("warning: {} now", address::RefusedTarget::Unresolved)
        }
        other => other?,
    }
    Ok((kind, url))
}

async fn list(project: Option<String>, database: &DatabaseSettings) -> anyhow::Result<()> {
    let pool = open(database).await?;
    let only = match project {
        Some(name) => Some(find_project(&pool, &name).await?.id),
        None => None,
    };
    for c in alerts::list_channels(&pool, only).await? {
        let last = match (c.last_success_at, c.last_failure_at) {
            _ if c.disabled_at.is_some() => format!(
                "disabled (a test that succeeds enables it): {}",
                c.last_failure.clone().unwrap_or_default()
            ),
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
    Ok(())
}

async fn test(
    id: i64,
    database: &DatabaseSettings,
    public: PublicSettings,
    settings: &AlertSettings,
) -> anyhow::Result<()> {
    let pool = open(database).await?;
    let (project_id, project_name, kind, target, secret) = alerts::channel_target(&pool, id)
        .await?
        .with_context(|| format!("no alert channel {id}"))?;
    let sample = sample_delivery(id, project_id, project_name, kind, target, secret);
    let poster = Poster::new(public.base_url, settings)?;
    match poster.send(&sample).await {
        Outcome::Delivered => {
            alerts::enable_channel(&pool, id).await?;
            println!("Delivered a test notification to alert channel {id}");
            Ok(())
        }
        Outcome::Retry(error, _) | Outcome::Refused(error) | Outcome::Gone(error) => {
            anyhow::bail!("the test notification was not delivered: {error}")
        }
    }
}

async fn find_project(pool: &sqlx::PgPool, name_or_id: &str) -> anyhow::Result<Project> {
    let found = match name_or_id.parse::<i64>() {
        Ok(id) => projects::find(pool, id).await?,
        Err(_) => projects::find_by_name(pool, name_or_id).await?,
    };
    found.with_context(|| format!("no project {name_or_id:?}"))
}

async fn open(database: &DatabaseSettings) -> anyhow::Result<sqlx::PgPool> {
    let pool = store::connect(database).await?;
    store::migrate(&pool).await?;
    Ok(pool)
}
