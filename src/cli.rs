//! The `faultline` command line: every command and environment variable is in `--help`.

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{DatabaseSettings, LogFormat, PublicSettings, RetentionSettings, Settings};
use crate::domain::credentials::{
    check_password, hash_password, normalize_email, random_token, token_hash,
};
use crate::domain::keys::{dsn, new_public_key};
use crate::domain::project_name::parse_project_name;
use crate::startup::Application;
use crate::store::{self, projects, users};

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
    /// Remove expired events now (the server also does it hourly), printing each step.
    Cleanup {
        #[command(flatten)]
        database: DatabaseSettings,
        #[command(flatten)]
        retention: RetentionSettings,
    },
    /// Manage the operators who may log in to the dashboard.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens (for sentry-cli and other tools).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage alert channels: where new issues and regressions are announced.
    Alert {
        #[command(subcommand)]
        command: Box<crate::alerts::commands::AlertCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an operator. The password comes from FAULTLINE_PASSWORD, else from standard input
    /// (one line; typed at a prompt when it is a terminal).
    Create {
        email: String,
        /// The operator may manage projects and keys.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// List operators.
    List {
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Change an operator's password (from FAULTLINE_PASSWORD or standard input); ends their sessions.
    SetPassword {
        email: String,
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Delete an operator, their sessions and tokens.
    Delete {
        email: String,
        #[command(flatten)]
        database: DatabaseSettings,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for an operator; the token is the last line printed (shown once).
    Create {
        email: String,
        /// What the token is for, e.g. sentry-cli.
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// List API tokens (never the tokens themselves).
    List {
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Revoke an API token by its id (from `token list`).
    Revoke {
        id: i64,
        #[command(flatten)]
        database: DatabaseSettings,
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
        Command::User { command } => run_user(command).await?,
        Command::Cleanup {
            database,
            retention,
        } => {
            let pool = open(&database).await?;
            let days = retention.retention_days;
            println!("removing events received more than {days} days ago");
            match crate::cleanup::run_once(&pool, days, |line| println!("{line}")).await? {
                Some(report) => {
                    let events: i64 = report.partitions_dropped.iter().map(|p| p.1).sum();
                    println!(
                        "done: {events} events removed in {} partitions",
                        report.partitions_dropped.len()
                    );
                }
                None => {
                    println!("another Faultline instance is cleaning up right now; nothing done")
                }
            }
        }
        Command::Token { command } => run_token(command).await?,
        Command::Alert { command } => crate::alerts::commands::run(*command).await?,
    }
    Ok(())
}

async fn open(database: &DatabaseSettings) -> anyhow::Result<sqlx::PgPool> {
    let pool = store::connect(database).await?;
    store::migrate(&pool).await?;
    Ok(pool)
}

async fn run_user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            email,
            admin,
            database,
        } => {
            let email = normalize_email(&email)?;
            let hash = hash_password(&read_password()?)?;
            let pool = open(&database).await?;
            users::create(&pool, &email, &hash, admin).await?;
            println!(
                "Created {} {email}",
                if admin { "admin" } else { "operator" }
            );
        }
        UserCommand::List { database } => {
            for user in users::list(&open(&database).await?).await? {
                let role = if user.is_admin { "admin" } else { "operator" };
                println!(
                    "{}\t{role}\t{}",
                    user.email,
                    user.created_at.format("%Y-%m-%d")
                );
            }
        }
        UserCommand::SetPassword { email, database } => {
            let email = normalize_email(&email)?;
            let hash = hash_password(&read_password()?)?;
            anyhow::ensure!(
                users::set_password(&open(&database).await?, &email, &hash).await?,
                "no user {email}"
            );
            println!("Password changed for {email}; their sessions have ended");
        }
        UserCommand::Delete { email, database } => {
            let email = normalize_email(&email)?;
            anyhow::ensure!(
                users::delete(&open(&database).await?, &email).await?,
                "no user {email}"
            );
            println!("Deleted {email}");
        }
    }
    Ok(())
}

async fn run_token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            email,
            label,
            database,
        } => {
            let email = normalize_email(&email)?;
            let pool = open(&database).await?;
            let user = users::find_by_email(&pool, &email)
                .await?
                .with_context(|| format!("no user {email}"))?;
            let token = random_token();
            let id = users::create_token(&pool, user.id, &token_hash(&token), &label).await?;
            println!("Created API token {id} for {email}. It is shown only once:");
            println!("{token}");
        }
        TokenCommand::List { database } => {
            for token in users::list_tokens(&open(&database).await?).await? {
                let state = if token.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{}\t{}\t{state}\t{}", token.id, token.email, token.label);
            }
        }
        TokenCommand::Revoke { id, database } => {
            anyhow::ensure!(
                users::revoke_token(&open(&database).await?, id).await?,
                "no active token {id}"
            );
            println!("Revoked API token {id}");
        }
    }
    Ok(())
}

/// FAULTLINE_PASSWORD, else one line of standard input (prompted when it is a terminal).
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let password = match std::env::var("FAULTLINE_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let typed = std::io::stdin().is_terminal();
            let mut line = String::new();
            {
                // Not shown as it is typed (nor left in the terminal's scrollback); off before
                // the prompt, so nothing typed after it is echoed.
                let _quiet = typed.then(EchoOff::new);
                if typed {
                    eprint!("Password: ");
                    std::io::stderr().flush()?;
                }
                std::io::stdin().lock().read_line(&mut line)?;
            }
            if typed {
                eprintln!();
            }
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    check_password(&password)?;
    Ok(password)
}

/// The terminal's echo, off until dropped (then as it was). Does nothing where standard input
/// is no terminal.
#[cfg(unix)]
struct EchoOff(Option<libc::termios>);

#[cfg(unix)]
#[allow(unsafe_code)]
impl EchoOff {
    fn new() -> Self {
        let fd = libc::STDIN_FILENO;
        let mut settings = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: `tcgetattr` writes a whole `termios` for a valid descriptor and returns 0;
        // the value is read only then.
        if unsafe { libc::tcgetattr(fd, settings.as_mut_ptr()) } != 0 {
            return EchoOff(None);
        }
        // SAFETY: initialised by the successful `tcgetattr` above.
        let saved = unsafe { settings.assume_init() };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a valid descriptor and a `termios` read from it, with one flag cleared.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return EchoOff(None);
        }
        EchoOff(Some(saved))
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings `tcgetattr` gave for the same descriptor.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}

/// Elsewhere the password is read as typed.
#[cfg(not(unix))]
struct EchoOff;

#[cfg(not(unix))]
impl EchoOff {
    fn new() -> Self {
        EchoOff
    }
}

async fn run_project(command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create {
            name,
            database,
            public,
        } => {
            let name = parse_project_name(&name)?;
            let key = new_public_key();
            // The base URL is checked before anything is stored: a bad one used to fail after
            // the project was created, and the name was then taken.
            dsn(&public.base_url, &key, 0)?;
            let pool = store::connect(&database).await?;
            store::migrate(&pool).await?;
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
