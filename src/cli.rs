//! The `faultline` command line: every command and environment variable is in `--help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use rand::RngCore;

use crate::config::{DatabaseSettings, LogFormat, PublicSettings, Settings};
use crate::startup::Application;
use crate::store::{self, projects};

#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version,
    about = "Self-hosted error monitoring for the official Sentry SDKs"
)]
pub struct Cli {
    /// Log format: json (one object per line) or pretty.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: migrate the database, then accept events and serve the dashboard.
    Serve(Box<Settings>),
    /// Create the database if needed and apply pending migrations, then exit.
    Migrate(DatabaseSettings),
    /// Manage projects (each has its own DSN).
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project; its DSN is the last line printed.
    Create {
        /// A short name such as checkout-api.
        name: String,
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        public: PublicSettings,
    },
    /// List every project with its DSN.
    List {
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        public: PublicSettings,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(settings) => {
            Application::build(*settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Migrate(database) => {
            let pool = store::connect(&database).await?;
            store::migrate(&pool).await?;
            println!("database is up to date");
        }
        Command::Project { command } => run_project(command).await?,
    }
    Ok(())
}

async fn run_project(command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create {
            name,
            database,
            public,
        } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "a project name has 1 to 100 characters"
            );
            let pool = store::connect(&database).await?;
            store::migrate(&pool).await?;
            let key = new_public_key();
            let id = projects::create(&pool, name, &key).await?;
            println!("Created project {name} (id {id}). Its DSN:");
            println!("{}", dsn(&public.base_url, &key, id)?);
        }
        ProjectCommand::List { database, public } => {
            let pool = store::connect(&database).await?;
            store::migrate(&pool).await?;
            for project in projects::list(&pool).await? {
                let dsn = match &project.public_key {
                    Some(key) => dsn(&public.base_url, key, project.id)?,
                    None => "(no active key)".to_owned(),
                };
                println!("{}\t{}\t{}", project.id, project.name, dsn);
            }
        }
    }
    Ok(())
}

/// 32 random hex characters, as Sentry's public keys.
pub fn new_public_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `scheme://KEY@host[:port][/path]/PROJECT_ID` from the base URL users reach Faultline at.
pub fn dsn(base_url: &str, public_key: &str, project_id: i64) -> anyhow::Result<String> {
    let base = base_url.trim().trim_end_matches('/');
    let (scheme, rest) = base.split_once("://").with_context(|| {
        format!("FAULTLINE_BASE_URL {base:?} must start with http:// or https://")
    })?;
    anyhow::ensure!(
        scheme == "http" || scheme == "https",
        "FAULTLINE_BASE_URL must use http or https"
    );
    anyhow::ensure!(
        !rest.is_empty() && !rest.contains('@'),
        "FAULTLINE_BASE_URL has no valid host"
    );
    Ok(format!("{scheme}://{public_key}@{rest}/{project_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_keeps_port_and_path_of_the_base_url() {
        let key = "abcdef0123456789abcdef0123456789";
        assert_eq!(
            dsn("http://localhost:8000", key, 3).unwrap(),
            format!("http://{key}@localhost:8000/3")
        );
        assert_eq!(
            dsn("https://errors.example.com/sentry/", key, 7).unwrap(),
            format!("https://{key}@errors.example.com/sentry/7")
        );
        assert!(dsn("localhost:8000", key, 1).is_err());
    }

    #[test]
    fn public_keys_are_32_hex_characters() {
        let key = new_public_key();
        assert_eq!(key.len(), 32);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
