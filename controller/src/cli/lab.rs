//! `siuctl lab`: starts the lab, and drives a running lab from another shell.
//!
//! `lab up` runs the lab in the foreground and writes its directory (endpoints, CA, secrets,
//! specs, spool). Every other subcommand finds the running lab through that directory: it reads
//! `DIR/lab.json`, trusts only `DIR/ca.pem` and authenticates to the control API with the bearer
//! token in `DIR/control.token`. `--dir` defaults to `SIU_LAB_DIR`, which `. DIR/lab.env` sets.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use serde::Serialize;
use serde::de::DeserializeOwned;
use siu_lab::control::{
    DeliverOriginalResponse, FolderListing, ManagementRequest, ManagementResponse, SendRequest,
};
use siu_lab::external::{ExternalClient, ExternalDirectory};
use siu_lab::transport::{HeldOriginal, SendReport};
use siu_lab::{FaultRule, Fixture, Lab, LabConfig, LabInfo};
use url::Url;

/// The `siuctl lab` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Start the lab in the foreground and serve until interrupted (Ctrl-C or SIGTERM).
    Up(UpArgs),
    /// Run Exchange management cmdlets, read from standard input, against a running lab.
    ExchangeShell(ExchangeShellArgs),
    /// Send a message through the lab's transport simulator: the original goes to Sent Items,
    /// the processed copy to the spool.
    Send(SendArgs),
    /// Store an original that `siuctl lab send --hold` held back.
    DeliverOriginal(DeliverOriginalArgs),
    /// List the Sent Items of a mailbox with each item's flags, properties and text.
    SentItems(SentItemsArgs),
    /// List, add or clear the fault rules of a running lab.
    Faults(FaultsArgs),
    /// Print the request counters of a running lab, per service and operation.
    Counters(CountersArgs),
    /// Write a lab's users and groups into an external Active Directory, such as Samba AD,
    /// below OU=siu-lab. A second run changes nothing.
    SeedDirectory(SeedDirectoryArgs),
}

/// The lab directory option that every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArg {
    /// The lab directory.
    #[arg(long, value_name = "DIR", env = "SIU_LAB_DIR")]
    pub dir: PathBuf,
}

/// Format of a command's result on standard output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// Arguments of `siuctl lab up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// Organization fixture (YAML); the built-in lab.example organization by default.
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<PathBuf>,

    /// Listen on seven consecutive ports from N: token, Graph, EWS, Exchange Online EWS, LDAP,
    /// LDAPS, control API. Free ports are picked when absent.
    #[arg(long, value_name = "N")]
    pub port_base: Option<u16>,

    /// Serve the HTTP endpoints without TLS, for tools that cannot trust a CA.
    #[arg(long)]
    pub plain_http: bool,

    /// How long a new Entra application or service principal returns 404, such as `20s`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub replication_delay: Duration,

    /// A fault rule in YAML, such as `{service: ews, operation: FindItem, kind: serverBusy,
    /// backOffMs: 500}`, or `@FILE` for a file with one rule or a list. Repeatable.
    #[arg(long = "fault", value_name = "RULE-YAML")]
    pub faults: Vec<String>,

    /// Write every EWS request and response body into this directory.
    #[arg(long, value_name = "DIR")]
    pub capture_dir: Option<PathBuf>,

    /// Keep accounts in an external Active Directory described by this file of `SIU_AD_*`
    /// variables, as `scripts/samba-ad.sh start` writes it. The lab seeds its users and
    /// groups there, checks EWS Basic passwords with LDAP binds against it (NTLM is then
    /// unavailable), and writes specs/onprem-external.yaml.
    #[arg(long, value_name = "FILE")]
    pub external_directory_env: Option<PathBuf>,

    /// With --external-directory-env, do not seed the directory at start.
    #[arg(long, requires = "external_directory_env")]
    pub no_seed: bool,
}

/// Arguments of `siuctl lab seed-directory`: the lab whose world is seeded, and the
/// directory, from an environment file or from separate options.
#[derive(Debug, clap::Args)]
pub struct SeedDirectoryArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// A file of `SIU_AD_*` variables, as `scripts/samba-ad.sh start` writes it. Replaces
    /// the options below.
    #[arg(long, value_name = "FILE", required_unless_present = "ldap_url", conflicts_with_all = ["ldap_url", "bind_user", "bind_password_file", "ca_file", "base_dn"])]
    pub external_directory_env: Option<PathBuf>,

    /// The directory's URL, `ldaps://HOST:PORT`, or `ldap://HOST:PORT`, which is upgraded
    /// with StartTLS.
    #[arg(long, value_name = "URL", requires_all = ["bind_user", "bind_password_file", "ca_file"])]
    pub ldap_url: Option<String>,

    /// The account to bind as, such as `Administrator@siu.test`. It needs the right to create
    /// organizational units, users and groups, and to set passwords.
    #[arg(long, value_name = "UPN")]
    pub bind_user: Option<String>,

    /// A file whose first line is the bind password.
    #[arg(long, value_name = "FILE")]
    pub bind_password_file: Option<PathBuf>,

    /// A PEM file with the CA that issued the directory's TLS certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// The domain's base DN, such as `DC=siu,DC=test`. Read from the directory when absent.
    #[arg(long, value_name = "DN")]
    pub base_dn: Option<String>,
}

/// Arguments of `siuctl lab exchange-shell`.
#[derive(Debug, clap::Args)]
pub struct ExchangeShellArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// Run the cmdlets against Exchange Online instead of the on-premises server.
    #[arg(long)]
    pub online: bool,
}

/// Arguments of `siuctl lab send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// The message to send, an RFC 5322 file (`-` reads standard input). Without it, the lab
    /// generates a message with text and HTML parts.
    #[arg(long, value_name = "FILE")]
    pub eml: Option<PathBuf>,

    /// Sender address; it replaces the address in From and keeps the display name.
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,

    /// The delegate of a Send on Behalf message, written to the Sender field.
    #[arg(long, value_name = "ADDRESS")]
    pub sender: Option<String>,

    /// Recipient address; replaces the message's To. Repeatable or comma-separated.
    #[arg(long, value_name = "ADDRESS", value_delimiter = ',')]
    pub to: Vec<String>,

    /// Subject of a generated message.
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,

    /// Put an inline image into a generated message.
    #[arg(long)]
    pub inline_image: bool,

    /// Write one processed copy per recipient, as a rules engine that splits messages does.
    #[arg(long)]
    pub split: bool,

    /// The mailbox that submitted a Send As message; its Sent Items gets the original.
    #[arg(long, value_name = "ADDRESS")]
    pub submitter: Option<String>,

    /// Hold the original back, as Outlook in cached mode uploads it later, and write a handle
    /// for `siuctl lab deliver-original` under DIR/held/.
    #[arg(long)]
    pub hold: bool,

    /// Format of the report.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `siuctl lab deliver-original`.
#[derive(Debug, clap::Args)]
pub struct DeliverOriginalArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// The handle file that `siuctl lab send --hold` wrote; it is removed once delivered.
    #[arg(value_name = "HANDLE")]
    pub handle: PathBuf,
}

/// Arguments of `siuctl lab sent-items`.
#[derive(Debug, clap::Args)]
pub struct SentItemsArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// The mailbox: a UPN or an SMTP address.
    #[arg(long, value_name = "UPN")]
    pub mailbox: String,

    /// Format of the listing.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `siuctl lab faults`.
#[derive(Debug, clap::Args)]
pub struct FaultsArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// The action; `list` when absent.
    #[command(subcommand)]
    pub action: Option<FaultsAction>,
}

/// Actions of `siuctl lab faults`.
#[derive(Debug, clap::Subcommand)]
pub enum FaultsAction {
    /// Print every rule, one YAML flow mapping per line.
    List,
    /// Add rules: YAML such as `{service: graph, kind: tooManyRequests, retryAfterSecs: 2}`,
    /// or `@FILE` for a file with one rule or a list.
    Add {
        /// The rule.
        #[arg(value_name = "RULE-YAML")]
        rule: String,
    },
    /// Remove every rule.
    Clear,
}

/// Arguments of `siuctl lab counters`.
#[derive(Debug, clap::Args)]
pub struct CountersArgs {
    #[command(flatten)]
    pub dir: DirArg,

    /// Format of the counters.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Runs one `siuctl lab` subcommand on a new Tokio runtime, for the synchronous command line.
pub fn run_blocking(command: LabCommand) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?
        .block_on(run(command))
}

/// Runs one `siuctl lab` subcommand and returns the process exit code.
pub async fn run(command: LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Up(args) => up(args).await,
        LabCommand::ExchangeShell(args) => exchange_shell(args).await,
        LabCommand::Send(args) => send(args).await,
        LabCommand::DeliverOriginal(args) => deliver_original(args).await,
        LabCommand::SentItems(args) => sent_items(args).await,
        LabCommand::Faults(args) => faults(args).await,
        LabCommand::Counters(args) => counters(args).await,
        LabCommand::SeedDirectory(args) => seed_directory(args).await,
    }
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let dir = absolute(&args.dir.dir)?;
    reject_second_lab(&dir).await?;

    // 1. The configuration.
    let fixture = match &args.fixture {
        Some(path) => Fixture::load(path)?,
        None => Fixture::default_org(),
    };
    let mut config = LabConfig::new(fixture);
    config.dir = Some(dir.clone());
    config.plain_http = args.plain_http;
    config.replication_delay = args.replication_delay;
    config.capture_dir = args.capture_dir.clone();
    config.siuctl = std::env::current_exe().ok();
    if let Some(base) = args.port_base {
        config.ports = ports_from(base)?;
    }
    for text in &args.faults {
        config.faults.extend(parse_fault_rules(text)?);
    }
    if let Some(path) = &args.external_directory_env {
        let directory = ExternalDirectory::from_env_file(path)?;
        if !args.no_seed {
            print(&format!(
                "seeding {} below {} before serving\n",
                directory.url,
                directory.seed_root()
            ))?;
        }
        config.external_directory = Some(directory);
        config.seed_external_directory = !args.no_seed;
    }

    // 2. Start it, and put the JSON Schema next to the generated specs, whose `$schema`
    //    comment names it for editors.
    let lab = Lab::start(config)
        .await
        .with_context(|| format!("failed to start the lab in `{}`", dir.display()))?;
    let schema = dir.join("specs").join("siu-v1.schema.json");
    crate::fsutil::write_atomic(&schema, siu_specs::schema_json().as_bytes(), false)
        .with_context(|| format!("failed to write the spec schema `{}`", schema.display()))?;

    // 3. Serve until a signal arrives, then save the world.
    print(&startup_summary(&lab, &dir))?;
    let signal = shutdown_signal().await?;
    tracing::info!(signal, "stopping the lab");
    lab.stop()
        .await
        .with_context(|| format!("failed to save the lab state in `{}`", dir.display()))?;
    print(&format!(
        "lab stopped ({signal}); state saved to {}\n",
        dir.join("state.json").display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Fails when a lab already serves `dir`, because two labs would overwrite each other's state.
async fn reject_second_lab(dir: &Path) -> anyhow::Result<()> {
    let Ok(control) = ControlClient::connect(dir) else {
        return Ok(());
    };
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        control.get::<serde_json::Value>("v1/info"),
    )
    .await;
    if let Ok(Ok(_)) = answered {
        bail!(
            "a lab is already running in `{}` (pid {}): stop it, or pick another --dir",
            dir.display(),
            control.info.pid
        );
    }
    Ok(())
}

/// Ports for `--port-base N`, in the order the help text lists them.
fn ports_from(base: u16) -> anyhow::Result<siu_lab::Ports> {
    let port = |offset: u16| {
        base.checked_add(offset)
            .filter(|_| base != 0)
            .with_context(|| {
                format!("invalid --port-base {base}: the lab needs ports {base} to {base}+6, between 1 and 65535")
            })
    };
    Ok(siu_lab::Ports {
        token: port(0)?,
        graph: port(1)?,
        exchange: port(2)?,
        exchange_online: port(3)?,
        ldap: port(4)?,
        ldaps: port(5)?,
        control: port(6)?,
    })
}

/// Parses `--fault` or `faults add`: one rule or a list, inline or from `@FILE`.
fn parse_fault_rules(text: &str) -> anyhow::Result<Vec<FaultRule>> {
    let (yaml, origin) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("failed to read the fault rule file `{path}`"))?,
            path.to_string(),
        ),
        None => (text.to_string(), format!("`{text}`")),
    };
    let example = "write a rule such as `{service: ews, operation: FindItem, kind: serverBusy, \
                   backOffMs: 500}`";
    let trimmed = yaml.trim_start();
    if trimmed.starts_with('-') || trimmed.starts_with('[') {
        serde_saphyr::from_str::<Vec<FaultRule>>(&yaml).map_err(|error| {
            anyhow::anyhow!("invalid fault rule list {origin}: {error} ({example})")
        })
    } else {
        serde_saphyr::from_str::<FaultRule>(&yaml)
            .map(|rule| vec![rule])
            .map_err(|error| anyhow::anyhow!("invalid fault rule {origin}: {error} ({example})"))
    }
}

fn startup_summary(lab: &Lab, dir: &Path) -> String {
    let endpoints = lab.endpoints();
    let rows = [
        ("Entra token endpoint", endpoints.authority_host.to_string()),
        ("Microsoft Graph", endpoints.graph.to_string()),
        ("EWS, on-premises", endpoints.ews.to_string()),
        (
            "EWS, Exchange Online",
            endpoints.exchange_online_ews.to_string(),
        ),
        ("LDAP", endpoints.ldap.to_string()),
        ("LDAPS", endpoints.ldaps.to_string()),
        ("control API", endpoints.control.to_string()),
    ];
    let dir_text = dir.display();
    let mut text = format!("lab running (pid {}) in {dir_text}\n\n", std::process::id());
    for (name, url) in rows {
        text.push_str(&format!("  {name:<22} {url}\n"));
    }
    if let Some(external) = &lab.state().external {
        text.push_str(&format!(
            "  {:<22} {} (accounts live there; EWS takes Basic only)\n",
            "directory",
            external.directory().url
        ));
    }
    if let Some(report) = lab.seed_report() {
        text.push_str(&format!("  {:<22} {report}\n", "seeded"));
    }
    let spec = if lab.state().external.is_some() {
        "onprem-external"
    } else {
        "hybrid"
    };
    text.push_str(&format!(
        "\n  CA certificate         {dir_text}/ca.pem\n\
         \x20 secrets                {dir_text}/secrets/\n\
         \x20 spool                  {dir_text}/spool/\n\n\
         Next, in another shell:\n\
         \x20 . {lab_env}\n\
         \x20 siuctl plan -f {spec_path}\n\
         \x20 siuctl lab send --dir {dir_word}\n\n\
         Stop the lab with Ctrl-C; it saves its state to {dir_text}/state.json.\n",
        lab_env = shell_word(&dir.join("lab.env")),
        spec_path = shell_word(&dir.join("specs").join(format!("{spec}.yaml"))),
        dir_word = shell_word(dir),
    ));
    text
}

/// Returns a path as one shell word, in single quotes unless it contains only characters that
/// no POSIX shell treats specially, so that a printed command can be pasted as it is.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(unix)]
pub(crate) async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            result.context("failed to listen for Ctrl-C")?;
            Ok("SIGINT")
        }
        _ = terminate.recv() => Ok("SIGTERM"),
    }
}

#[cfg(not(unix))]
pub(crate) async fn shutdown_signal() -> anyhow::Result<&'static str> {
    tokio::signal::ctrl_c()
        .await
        .context("failed to listen for Ctrl-C")?;
    Ok("Ctrl-C")
}

async fn seed_directory(args: SeedDirectoryArgs) -> anyhow::Result<ExitCode> {
    let dir = absolute(&args.dir.dir)?;

    // 1. The directory, from the environment file or the options.
    let directory = match (&args.external_directory_env, &args.ldap_url) {
        (Some(path), _) => ExternalDirectory::from_env_file(path)?,
        (None, Some(url)) => {
            let read = |path: &Path, what: &str| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read the {what} `{}`", path.display()))
            };
            let password_file = args
                .bind_password_file
                .as_deref()
                .context("missing --bind-password-file")?;
            let password = read(password_file, "bind password file")?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let ca_file = args.ca_file.as_deref().context("missing --ca-file")?;
            let mut directory = ExternalDirectory::new(
                url.clone(),
                args.bind_user.clone().context("missing --bind-user")?,
                password,
                read(ca_file, "CA file")?,
                args.base_dn.clone().unwrap_or_default(),
            );
            if directory.base_dn.is_empty() {
                directory.base_dn = ExternalClient::new(directory.clone())?
                    .read_default_naming_context()
                    .await?;
            }
            directory
        }
        (None, None) => bail!("give --external-directory-env FILE or --ldap-url URL"),
    };

    // 2. The lab's world: a running lab saves it first, a stopped one left it in state.json.
    if let Ok(control) = ControlClient::connect(&dir)
        && control.get::<serde_json::Value>("v1/info").await.is_ok()
    {
        control
            .post_no_content("v1/save", &serde_json::json!({}))
            .await
            .context("failed to make the running lab save its world")?;
    }
    let world = siu_lab::load_world(&dir).with_context(|| {
        format!(
            "failed to read the lab's world in `{}` (start the lab once with `siuctl lab up \
             --dir {}`)",
            dir.display(),
            dir.display()
        )
    })?;

    // 3. Seed.
    let client = ExternalClient::new(directory)?;
    let report = siu_lab::external::seed(&client, &world)
        .await
        .with_context(|| format!("failed to seed {}", client.directory().url))?;
    let mut text = format!(
        "seeded {} below {}: {report}\n",
        client.directory().url,
        client.directory().seed_root()
    );
    for skipped in &report.skipped {
        text.push_str(&format!("  skipped {skipped}\n"));
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

async fn exchange_shell(args: ExchangeShellArgs) -> anyhow::Result<ExitCode> {
    let control = ControlClient::connect(&args.dir.dir)?;
    let mut script = String::new();
    std::io::stdin()
        .read_to_string(&mut script)
        .context("failed to read the cmdlets from standard input")?;
    let response: ManagementResponse = control
        .post(
            "v1/management",
            &ManagementRequest {
                online: args.online,
                script,
            },
        )
        .await?;
    print(&response.stdout)?;
    eprint!("{}", response.stderr);
    Ok(ExitCode::from(
        u8::try_from(response.exit_code.clamp(0, 255)).unwrap_or(1),
    ))
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let control = ControlClient::connect(&args.dir.dir)?;
    let eml = match &args.eml {
        Some(path) if path.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("failed to read the message from standard input")?;
            Some(bytes)
        }
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("failed to read the message `{}`", path.display()))?,
        ),
        None => None,
    };
    let request = SendRequest {
        eml_base64: eml.map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
        from: args.from,
        sender: args.sender,
        to: args.to,
        subject: args.subject,
        inline_image: args.inline_image,
        split: args.split,
        submitter: args.submitter,
        hold_original: args.hold,
        spool_dir: None,
    };
    let report: SendReport = control.post("v1/transport/send", &request).await?;

    let handle = match &report.held {
        Some(held) => Some(write_handle(&args.dir.dir, &report.message_id, held)?),
        None => None,
    };
    match args.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print(&send_summary(&report, handle.as_deref(), &args.dir.dir))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a held original to `DIR/held/<message-id>.json` and returns the path.
fn write_handle(dir: &Path, message_id: &str, held: &HeldOriginal) -> anyhow::Result<PathBuf> {
    let held_dir = dir.join("held");
    std::fs::create_dir_all(&held_dir)
        .with_context(|| format!("failed to create `{}`", held_dir.display()))?;
    let stem: String = message_id
        .trim_matches(|c| c == '<' || c == '>')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = held_dir.join(format!("{stem}.json"));
    let json = serde_json::to_vec_pretty(held).context("failed to encode the held original")?;
    crate::fsutil::write_atomic(&path, &json, false)
        .with_context(|| format!("failed to write the handle `{}`", path.display()))?;
    Ok(path)
}

fn send_summary(report: &SendReport, handle: Option<&Path>, dir: &Path) -> String {
    let mut text = format!("sent {}\n", report.message_id);
    match (&report.mailbox, report.original_item, handle) {
        (Some(mailbox), _, Some(handle)) => text.push_str(&format!(
            "  original: held for the Sent Items of {mailbox}; store it with\n    \
             siuctl lab deliver-original --dir {} {}\n",
            shell_word(dir),
            shell_word(handle)
        )),
        (Some(mailbox), Some(item), None) => text.push_str(&format!(
            "  original: in the Sent Items of {mailbox} (item {item})\n"
        )),
        _ => text.push_str("  original: not stored (see the notes)\n"),
    }
    for path in &report.spool_files {
        text.push_str(&format!("  spool file: {}\n", path.display()));
    }
    text.push_str(&format!("  signed parts: {}\n", report.signed_parts));
    for note in &report.notes {
        text.push_str(&format!("  note: {note}\n"));
    }
    text
}

async fn deliver_original(args: DeliverOriginalArgs) -> anyhow::Result<ExitCode> {
    let control = ControlClient::connect(&args.dir.dir)?;
    let text = std::fs::read_to_string(&args.handle)
        .with_context(|| format!("failed to read the handle `{}`", args.handle.display()))?;
    let held: HeldOriginal = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a handle that `siuctl lab send --hold` wrote",
            args.handle.display()
        )
    })?;
    let mailbox = held.mailbox.clone();
    let response: DeliverOriginalResponse =
        control.post("v1/transport/deliver-original", &held).await?;
    std::fs::remove_file(&args.handle).with_context(|| {
        format!(
            "stored the original, but failed to remove the handle `{}`; remove it so that it is \
             not delivered twice",
            args.handle.display()
        )
    })?;
    print(&format!(
        "stored the original in the Sent Items of {mailbox} (item {})\n",
        response.item
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// One Sent Items entry as `siuctl lab sent-items` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SentItemView {
    id: u64,
    subject: String,
    internet_message_id: Option<String>,
    sent: Option<chrono::DateTime<chrono::Utc>>,
    draft: bool,
    /// Whether a named property whose name starts with `siuctl` marks the item as rewritten.
    rewritten: bool,
    named_properties: Vec<NamedPropertyView>,
    /// The first text body, decoded, with the signature when the item has one.
    text: Option<String>,
}

/// A named extended property of an item.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NamedPropertyView {
    set_id: Option<String>,
    name: String,
    value: String,
    /// Whether the name starts with `siuctl`, the prefix of the controller's markers.
    siuctl: bool,
}

async fn sent_items(args: SentItemsArgs) -> anyhow::Result<ExitCode> {
    let control = ControlClient::connect(&args.dir.dir)?;
    let mut url = control.base.clone();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the control URL `{}` cannot have a path", control.base))?
        .pop_if_empty()
        .extend(["v1", "mailboxes", args.mailbox.as_str(), "sentitems"]);
    let listing: FolderListing = control.request(control.http.get(url)).await?;

    let items: Vec<SentItemView> = listing.items.iter().map(sent_item_view).collect();
    match args.output {
        OutputFormat::Json => print_json(&items)?,
        OutputFormat::Text => print(&sent_items_text(&listing, &items))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn sent_item_view(item: &siu_lab::control::ItemSummary) -> SentItemView {
    let named_properties: Vec<NamedPropertyView> = item
        .extended
        .iter()
        .filter_map(|p| {
            let name = p.name.clone()?;
            Some(NamedPropertyView {
                siuctl: name.to_ascii_lowercase().starts_with("siuctl"),
                set_id: p.set_id.clone(),
                name,
                value: p.value.clone(),
            })
        })
        .collect();
    let mime = base64::engine::general_purpose::STANDARD
        .decode(&item.mime_base64)
        .unwrap_or_default();
    let text = mail_parser::MessageParser::default()
        .parse(&mime)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()));
    SentItemView {
        id: item.id,
        subject: item.subject.clone(),
        internet_message_id: item.internet_message_id.clone(),
        sent: item.sent,
        draft: item.draft,
        rewritten: named_properties.iter().any(|p| p.siuctl),
        named_properties,
        text,
    }
}

fn sent_items_text(listing: &FolderListing, items: &[SentItemView]) -> String {
    let yes_no = |flag: bool| if flag { "yes" } else { "no" };
    let noun = if items.len() == 1 { "item" } else { "items" };
    let mut text = format!(
        "Sent Items of {} (\"{}\", {} {noun})\n",
        listing.owner,
        listing.display_name,
        items.len()
    );
    for item in items {
        text.push_str(&format!("\n[{}] {}\n", item.id, item.subject));
        let sent = item
            .sent
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "-".into());
        text.push_str(&format!("    sent:        {sent}\n"));
        text.push_str(&format!("    draft:       {}\n", yes_no(item.draft)));
        text.push_str(&format!("    rewritten:   {}\n", yes_no(item.rewritten)));
        text.push_str(&format!(
            "    message-id:  {}\n",
            item.internet_message_id.as_deref().unwrap_or("-")
        ));
        if item.named_properties.is_empty() {
            text.push_str("    named properties: none\n");
        } else {
            text.push_str("    named properties:\n");
        }
        for property in &item.named_properties {
            let marker = if property.siuctl {
                "  (siuctl marker)"
            } else {
                ""
            };
            text.push_str(&format!(
                "      {}:{} = {}{marker}\n",
                property.set_id.as_deref().unwrap_or("-"),
                property.name,
                property.value
            ));
        }
        match &item.text {
            Some(body) => {
                text.push_str("    text:\n");
                for line in body.lines() {
                    text.push_str(&format!("      {line}\n"));
                }
            }
            None => text.push_str("    text: none\n"),
        }
    }
    text
}

async fn faults(args: FaultsArgs) -> anyhow::Result<ExitCode> {
    let control = ControlClient::connect(&args.dir.dir)?;
    match args.action.unwrap_or(FaultsAction::List) {
        FaultsAction::List => {
            let rules: Vec<FaultRule> = control.get("v1/faults").await?;
            let mut text = String::new();
            for rule in &rules {
                let json = serde_json::to_string(rule).context("failed to encode a fault rule")?;
                text.push_str(&format!("- {json}\n"));
            }
            if rules.is_empty() {
                text.push_str("no fault rules\n");
            }
            print(&text)?;
        }
        FaultsAction::Add { rule } => {
            let rules = parse_fault_rules(&rule)?;
            for rule in &rules {
                control.post_no_content("v1/faults", rule).await?;
            }
            print(&format!("added {} fault rule(s)\n", rules.len()))?;
        }
        FaultsAction::Clear => {
            control
                .put_no_content("v1/faults", &Vec::<FaultRule>::new())
                .await?;
            print("removed every fault rule\n")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn counters(args: CountersArgs) -> anyhow::Result<ExitCode> {
    let control = ControlClient::connect(&args.dir.dir)?;
    let counters: BTreeMap<String, u64> = control.get("v1/counters").await?;
    match args.output {
        OutputFormat::Json => print_json(&counters)?,
        OutputFormat::Text => {
            let width = counters.keys().map(String::len).max().unwrap_or(0);
            let mut text = String::new();
            for (operation, count) in &counters {
                text.push_str(&format!("{operation:<width$}  {count:>8}\n"));
            }
            if counters.is_empty() {
                text.push_str("no requests yet\n");
            }
            print(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A client of a running lab's control API.
struct ControlClient {
    http: reqwest::Client,
    base: Url,
    token: String,
    dir: PathBuf,
    info: LabInfo,
}

impl ControlClient {
    /// Finds the lab that serves `dir`: its endpoints, CA and control token.
    fn connect(dir: &Path) -> anyhow::Result<Self> {
        let info = LabInfo::load(dir)?;
        let ca = std::fs::read(&info.ca_file).with_context(|| {
            format!(
                "no running lab in `{}`: cannot read its CA `{}` (start one with `siuctl lab up \
                 --dir {}`)",
                dir.display(),
                info.ca_file.display(),
                dir.display()
            )
        })?;
        let token = std::fs::read_to_string(&info.control_token_file).with_context(|| {
            format!(
                "cannot read the control token `{}` of the lab in `{}`",
                info.control_token_file.display(),
                dir.display()
            )
        })?;
        let certificate = reqwest::Certificate::from_pem(&ca)
            .with_context(|| format!("the lab CA `{}` is not PEM", info.ca_file.display()))?;
        let http = reqwest::Client::builder()
            .tls_certs_only([certificate])
            .timeout(Duration::from_secs(120))
            .build()
            .context("failed to build the control API client")?;
        Ok(Self {
            http,
            base: info.endpoints.control.clone(),
            token: token.trim().to_string(),
            dir: dir.to_path_buf(),
            info,
        })
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("invalid control API path `{path}`"))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = self.url(path)?;
        self.request(self.http.get(url)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let url = self.url(path)?;
        self.request(self.http.post(url).json(body)).await
    }

    async fn post_no_content<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        let url = self.url(path)?;
        self.send(self.http.post(url).json(body)).await.map(drop)
    }

    async fn put_no_content<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        let url = self.url(path)?;
        self.send(self.http.put(url).json(body)).await.map(drop)
    }

    async fn request<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        let url = response.url().clone();
        response
            .json()
            .await
            .with_context(|| format!("the lab's answer to `{url}` is not the expected JSON"))
    }

    /// Sends a request with the control token. A refused connection or an error status becomes
    /// an error that names the next step.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|error| {
                if error.is_connect() {
                    anyhow::anyhow!(
                        "no running lab in `{dir}`: its control API at {base} does not accept \
                         connections (start one with `siuctl lab up --dir {dir}`)",
                        dir = self.dir.display(),
                        base = self.base
                    )
                } else {
                    anyhow::Error::new(error).context(format!(
                        "failed to reach the lab's control API at {}",
                        self.base
                    ))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let url = response.url().path().to_string();
        let message = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| status.to_string());
        bail!("the lab rejected `{url}` ({status}): {message}")
    }
}

/// Makes `path` absolute, so that the lab's files and specs name it from any directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid lab directory `{}`", path.display()))
}

fn print(text: &str) -> anyhow::Result<()> {
    super::output::print(text).context("failed to write to standard output")
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut json = serde_json::to_string_pretty(value).context("failed to encode the output")?;
    json.push('\n');
    print(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_rules_parse_inline_and_as_lists() {
        let one = parse_fault_rules(
            "{service: ews, operation: FindItem, kind: serverBusy, backOffMs: 500}",
        )
        .expect("one rule parses");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].operation.as_deref(), Some("FindItem"));

        let list = parse_fault_rules("- {service: graph, kind: tooManyRequests, retryAfterSecs: 2}\n- {service: ldap, kind: drop}")
            .expect("a list parses");
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn invalid_fault_rule_shows_an_example() {
        let error = parse_fault_rules("{service: nowhere}").expect_err("unknown service");
        let message = format!("{error:#}");
        assert!(
            message.contains("invalid fault rule `{service: nowhere}`"),
            "{message}"
        );
        assert!(message.contains("kind: serverBusy"), "{message}");
    }

    #[test]
    fn printed_paths_paste_as_one_word() {
        assert_eq!(shell_word(Path::new("/tmp/lab-1")), "/tmp/lab-1");
        assert_eq!(shell_word(Path::new("/tmp/my lab")), "'/tmp/my lab'");
        assert_eq!(
            shell_word(Path::new("/tmp/$(touch x)")),
            "'/tmp/$(touch x)'"
        );
        assert_eq!(shell_word(Path::new("/tmp/it's")), "'/tmp/it'\\''s'");
        assert_eq!(shell_word(Path::new("/tmp/a\nb")), "'/tmp/a\nb'");
    }

    #[test]
    fn port_base_covers_seven_ports() {
        let ports = ports_from(40_000).expect("valid base");
        assert_eq!(ports.token, 40_000);
        assert_eq!(ports.control, 40_006);
        assert!(ports_from(65_530).is_err());
        assert!(ports_from(0).is_err());
    }
}
