//! The work both clients get: a message set sent through the lab's transport simulator, the
//! configuration of each client, and the check that every message was replaced.
//!
//! Every message of a set has the same size and comes from one of N on-premises senders in
//! turn, so two sets with the same parameters are the same work for the server. The transport
//! simulator stores each original in its sender's Sent Items and writes the processed copy
//! (with the organization's signature) into a spool directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use siu_lab::control::SendRequest;
use siu_lab::fixture::MailboxLocation;
use siuctl::reconcile::applied::{APPLIED_FORMAT, AppliedConfig, Discovered};

use crate::lab::LabProcess;

/// Concurrent transport requests while a set is delivered. The simulator syncs every spool
/// file to disk, so a few requests in flight hide that wait.
const DELIVERY_CONCURRENCY: usize = 8;

/// EWS authentication of both clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Auth {
    /// A Basic `Authorization` header on every request.
    Basic,
    /// NTLM, authenticating each connection once.
    Ntlm,
}

impl Auth {
    fn spec_value(self) -> &'static str {
        match self {
            Auth::Basic => "basic",
            Auth::Ntlm => "ntlm",
        }
    }
}

/// The parameters of a message set.
#[derive(Debug, Clone)]
pub struct MessageSet {
    /// Sender addresses, used in turn.
    pub senders: Vec<String>,
    /// Number of messages.
    pub count: usize,
    /// Size of each submitted message in bytes, before the signature.
    pub size: usize,
}

/// One message of a delivered set.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The original's Message-ID, angle brackets included.
    pub message_id: String,
    /// The mailbox whose Sent Items contains the original.
    pub mailbox: String,
    /// The processed copy in the spool.
    pub spool_file: PathBuf,
}

/// Returns `count` senders with on-premises mailboxes: the odd-numbered bulk users of the
/// default organization (`staff0001`, `staff0003`, ...), each checked with the lab.
pub async fn on_premises_senders(lab: &LabProcess, count: usize) -> anyhow::Result<Vec<String>> {
    let domain = &lab.info().domain;
    let candidates: Vec<String> = (0..count)
        .map(|index| format!("staff{:04}@{domain}", 2 * index + 1))
        .collect();
    for address in &candidates {
        let listing = lab.sent_items(address).await.with_context(|| {
            format!("the organization has no sender {address}; use fewer --senders")
        })?;
        if listing.location != MailboxLocation::OnPremises {
            bail!("{address} has no on-premises mailbox; use fewer --senders");
        }
    }
    Ok(candidates)
}

/// Builds the submitted message number `index` of a set labelled `label`: text of `size`
/// bytes in total, so that every message of a set has the same size.
fn submitted_message(label: &str, index: usize, size: usize) -> Vec<u8> {
    let header = format!(
        "From: Sender <sender@lab.example>\r\n\
         To: Partner <partner@example.net>\r\n\
         Subject: Benchmark {label} message {index:07}\r\n\
         Date: Fri, 04 Dec 2026 09:30:00 +0000\r\n\
         Message-ID: <bench-{label}-{index:07}@lab.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n"
    );
    let mut message = header.into_bytes();
    let line = b"The quarterly figures are attached to the report in the usual place.\r\n";
    while message.len() + line.len() <= size {
        message.extend_from_slice(line);
    }
    message.resize(size.max(message.len()), b'.');
    message.extend_from_slice(b"\r\n");
    message
}

/// Sends a set through the transport simulator into `spool` and returns its messages in
/// order. `label` keeps the Message-IDs of different sets apart.
pub async fn deliver(
    lab: &LabProcess,
    spool: &Path,
    set: &MessageSet,
    label: &str,
) -> anyhow::Result<Vec<Delivered>> {
    anyhow::ensure!(
        !set.senders.is_empty(),
        "a message set needs at least one sender"
    );
    futures::stream::iter(0..set.count)
        .map(|index| {
            let request = SendRequest {
                eml_base64: Some(STANDARD.encode(submitted_message(label, index, set.size))),
                from: Some(set.senders[index % set.senders.len()].clone()),
                spool_dir: Some(spool.to_path_buf()),
                ..SendRequest::default()
            };
            async move {
                let report = lab.send(&request).await?;
                let mailbox = report
                    .mailbox
                    .with_context(|| format!("{} got no mailbox", report.message_id))?;
                let spool_file = report
                    .spool_files
                    .into_iter()
                    .next()
                    .with_context(|| format!("{} got no spool file", report.message_id))?;
                Ok::<_, anyhow::Error>(Delivered {
                    message_id: report.message_id,
                    mailbox,
                    spool_file,
                })
            }
        })
        .buffered(DELIVERY_CONCURRENCY)
        .try_collect()
        .await
}

/// Writes what `siuctl run` needs into `dir`: the CA, the secrets, a spec that reads
/// `spool`, and the applied configuration that `siuctl apply` would have left in its state
/// directory. Returns the spec's path.
pub fn write_siuctl_config(
    lab: &LabProcess,
    dir: &Path,
    spool: &Path,
    concurrency: usize,
    auth: Auth,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("secrets"))
        .with_context(|| format!("failed to create {}", dir.display()))?;
    std::fs::copy(&lab.info().ca_file, dir.join("ca.pem")).context("failed to copy the lab CA")?;
    for name in ["svc-siu.password", "Administrator.password"] {
        std::fs::write(dir.join("secrets").join(name), lab.secret(name)?)
            .with_context(|| format!("failed to write {name}"))?;
    }
    let endpoints = &lab.info().endpoints;
    let spec_text = format!(
        "apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: bench
environment: onPremises
onPremises:
  exchange:
    connection: manual
    server: 127.0.0.1
    ewsUrl: {ews}
    auth: {auth}
    caFile: ca.pem
    managementShell:
      command: [/bin/false]
  directory:
    url: {ldaps}
    baseDn: DC=lab,DC=example
    bindUser: Administrator@lab.example
    bindPassword: {{ fromFile: secrets/Administrator.password }}
    caFile: ca.pem
account:
  upn: svc-siu@lab.example
  create: false
  password: {{ fromFile: secrets/svc-siu.password }}
  impersonation: grant
scope:
  mode: all
options:
  enabled: true
  keepOriginal: false
  updateAllSplitCopies: false
  delay: 0s
  originalWaitTimeout: 30s
reconcile:
  interval: 10m
updateLoop:
  spoolDir: {spool}
  stateDir: state
  concurrency: {concurrency}
  perMailboxConcurrency: 1
",
        ews = endpoints.ews,
        auth = auth.spec_value(),
        ldaps = endpoints.ldaps,
        spool = spool.display(),
    );
    let spec = dir.join("spec.yaml");
    std::fs::write(&spec, spec_text).context("failed to write the spec")?;
    let desired = siu_specs::load(&spec).context("the benchmark spec is invalid")?;
    AppliedConfig {
        format: APPLIED_FORMAT,
        applied_at: Utc::now(),
        desired_fingerprint: "written by siu-bench".into(),
        desired,
        discovered: Discovered {
            ews_url: endpoints.ews.clone(),
            client_id: None,
            cloud_mail_path: None,
        },
    }
    .save()
    .context("failed to write the applied configuration")?;
    Ok(spec)
}

/// Returns the environment of `bench/exchangelib_update.py` for this lab.
pub fn exchangelib_environment(lab: &LabProcess) -> anyhow::Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("SIU_LAB_CA", lab.info().ca_file.display().to_string()),
        ("SIU_LAB_EWS_URL", lab.info().endpoints.ews.to_string()),
        ("SIU_LAB_USER", "LAB\\svc-siu".to_owned()),
        ("SIU_LAB_PASSWORD", lab.secret("svc-siu.password")?),
    ])
}

/// The state of a delivered set in Sent Items.
#[derive(Debug, Clone, Default)]
pub struct Replaced {
    /// Creation time of each message's replacement, by Message-ID.
    pub created: HashMap<String, DateTime<Utc>>,
    /// Messages with no replacement, or with more than one.
    pub wrong: Vec<String>,
    /// Originals still in Sent Items.
    pub originals_left: usize,
}

impl Replaced {
    /// Returns the replacements per second between the first and the last one created, or
    /// `None` with fewer than two.
    pub fn steady_throughput(&self) -> Option<f64> {
        let first = self.created.values().min()?;
        let last = self.created.values().max()?;
        let seconds = (*last - *first).as_seconds_f64();
        (self.created.len() >= 2 && seconds > 0.0)
            .then(|| (self.created.len() - 1) as f64 / seconds)
    }

    /// Fails with the first problems when a message was not replaced exactly once.
    pub fn ensure_complete(&self, client: &str) -> anyhow::Result<()> {
        if self.wrong.is_empty() && self.originals_left == 0 {
            return Ok(());
        }
        bail!(
            "{client} left {} messages without exactly one replacement and {} originals in \
             Sent Items; first ones: {:?}",
            self.wrong.len(),
            self.originals_left,
            &self.wrong[..self.wrong.len().min(5)]
        )
    }
}

/// Reads the Sent Items of every sender of `delivered` and checks that each message has
/// exactly one replacement (an item with siuctl's marker) and no original left.
pub async fn check_replaced(lab: &LabProcess, delivered: &[Delivered]) -> anyhow::Result<Replaced> {
    let mut by_mailbox: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for message in delivered {
        by_mailbox
            .entry(&message.mailbox)
            .or_default()
            .push(&message.message_id);
    }
    let marker_set = siuctl_marker_set();
    let mut replaced = Replaced::default();
    for (mailbox, message_ids) in by_mailbox {
        let listing = lab.sent_items(mailbox).await?;
        let mut replacements: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
        let mut originals: HashMap<&str, usize> = HashMap::new();
        for item in &listing.items {
            let Some(message_id) = item.internet_message_id.as_deref() else {
                continue;
            };
            let marked = item.extended.iter().any(|property| {
                property
                    .set_id
                    .as_deref()
                    .is_some_and(|set| set.eq_ignore_ascii_case(&marker_set))
                    && property.name.as_deref() == Some("siuctl-source")
            });
            if marked {
                replacements
                    .entry(message_id)
                    .or_default()
                    .push(item.created);
            } else {
                *originals.entry(message_id).or_default() += 1;
            }
        }
        for message_id in message_ids {
            match replacements.get(message_id).map(Vec::as_slice) {
                Some([created]) => {
                    replaced.created.insert(message_id.to_owned(), *created);
                }
                _ => replaced.wrong.push(format!("{message_id} in {mailbox}")),
            }
            replaced.originals_left += originals.get(message_id).copied().unwrap_or(0);
        }
    }
    Ok(replaced)
}

/// Returns the property set of siuctl's marker properties, lowercase.
fn siuctl_marker_set() -> String {
    siuctl_marker_uuid().to_string()
}

fn siuctl_marker_uuid() -> uuid::Uuid {
    // The same GUID as the update loop's MARKER_PROPERTY_SET (docs/update-loop.md).
    uuid::uuid!("2f388e93-d37f-42f9-b720-43205acd0c39")
}

/// Counts the files in a spool folder.
pub fn files_in(spool: &Path, folder: &str) -> usize {
    std::fs::read_dir(spool.join(folder)).map_or(0, |entries| entries.count())
}
