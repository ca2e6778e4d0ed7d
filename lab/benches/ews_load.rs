//! Load benchmark of the lab's on-premises EWS: 100 concurrent clients, each with its own
//! connection and Basic auth, impersonate a mailbox each and run FindItem, GetItem,
//! CreateItem and DeleteItem cycles for a fixed time.
//!
//! The lab runs in a child process (this program started with `--serve`), so that its CPU
//! time is measured alone. The parent reads the child's user and system time from
//! `/proc/<pid>/stat` before and after the load, so the lab's start-up is left out.
//!
//! ```text
//! cargo bench -p siu-lab --bench ews_load                  # 120 seconds
//! cargo bench -p siu-lab --bench ews_load -- --seconds 10  # or SIU_BENCH_SECONDS=10
//! ```
//!
//! Without the `--bench` flag that `cargo bench` passes, as under `cargo test`, or with
//! `SIU_BENCH_SMOKE=1`, it runs for [`SMOKE_SECONDS`] only, so that the test suite keeps it
//! building and running without spending minutes on it.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Concurrent clients.
const CLIENTS: usize = 100;
/// Length of a run without `--seconds`.
const DEFAULT_SECONDS: u64 = 120;
/// Length of a run in smoke mode.
const SMOKE_SECONDS: u64 = 2;
/// Clock ticks per second of `/proc/<pid>/stat`: Linux fixes USER_HZ at 100 for user space.
const USER_HZ: f64 = 100.0;

/// The first output line of the serving child: where the lab listens and whom to sign in as.
#[derive(Serialize, Deserialize)]
struct Ready {
    ews: String,
    ca_pem: String,
    user: String,
    password: String,
    mailboxes: Vec<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        serve();
        return;
    }
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| std::env::var("SIU_BENCH_SECONDS").ok())
        .map(|s| {
            s.parse::<u64>()
                .expect("--seconds takes a whole number of seconds")
        })
        .unwrap_or_else(|| {
            let smoke = !args.iter().any(|a| a == "--bench")
                || std::env::var("SIU_BENCH_SMOKE").as_deref() == Ok("1");
            if smoke {
                SMOKE_SECONDS
            } else {
                DEFAULT_SECONDS
            }
        });
    drive(Duration::from_secs(seconds));
}

/// Serves a lab with the default organization until standard input closes.
fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let lab = siu_lab::Lab::start(siu_lab::LabConfig::new(siu_lab::Fixture::default_org()))
            .await
            .expect("lab starts");
        let mailboxes = {
            let mut world = lab.state().write();
            let svc = world.directory.by_sam("svc-siu").expect("svc-siu");
            world
                .exchange
                .role_assignments
                .push(siu_lab::world::exchange::RoleAssignment {
                    id: uuid::Uuid::new_v4(),
                    name: "ApplicationImpersonation-bench".into(),
                    role: siu_lab::world::exchange::IMPERSONATION_ROLE.into(),
                    assignee: svc,
                    recipient_scope: None,
                    enabled: true,
                    created: chrono::Utc::now(),
                });
            let mut on_premises: Vec<String> = world
                .exchange
                .mailboxes
                .values()
                .filter(|m| m.location == siu_lab::fixture::MailboxLocation::OnPremises)
                .filter_map(|m| world.directory.users.get(&m.owner))
                .filter_map(|u| u.mail.clone())
                .collect();
            on_premises.sort();
            on_premises.truncate(CLIENTS);
            on_premises
        };
        let ready = Ready {
            ews: lab.endpoints().ews.to_string(),
            ca_pem: lab.ca_pem().to_string(),
            user: "LAB\\svc-siu".into(),
            password: lab
                .secrets()
                .get("svc-siu.password")
                .expect("password")
                .to_string(),
            mailboxes,
        };
        let mut stdout = std::io::stdout();
        serde_json::to_writer(&mut stdout, &ready).expect("ready line");
        stdout
            .write_all(b"\n")
            .and_then(|()| stdout.flush())
            .expect("ready line");
        // Serve until the parent closes standard input.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
            }
        })
        .await
        .expect("stdin watcher");
        drop(lab);
    });
}

/// CPU seconds (user and system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat reads");
    // The command name in field 2 may contain spaces, so fields are counted from its closing
    // parenthesis: utime (field 14) and stime (field 15) are the 12th and 13th after it.
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / USER_HZ
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
}

fn drive(duration: Duration) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("lab child starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("child stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let ready: Ready = serde_json::from_str(&line).expect("ready line parses");
    assert_eq!(
        ready.mailboxes.len(),
        CLIENTS,
        "the fixture has enough on-premises mailboxes"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let cpu_before = cpu_seconds(child.id());
    let started = Instant::now();
    runtime.block_on(async {
        let ready = Arc::new(ready);
        let mut tasks = Vec::new();
        for client_index in 0..CLIENTS {
            let ready = ready.clone();
            let counters = counters.clone();
            let latencies = latencies.clone();
            tasks.push(tokio::spawn(async move {
                client_loop(
                    &ready,
                    client_index,
                    started + duration,
                    &counters,
                    &latencies,
                )
                .await;
            }));
        }
        for task in tasks {
            task.await.expect("client task");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(child.id()) - cpu_before;
    drop(child.stdin.take());
    let _ = child.wait();

    let requests = counters.requests.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let mut latencies = latencies.lock().expect("latencies").clone();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!("ews_load: {CLIENTS} clients for {elapsed:.1} s");
    println!("requests:            {requests}");
    println!("errors:              {errors}");
    println!("requests per second: {:.0}", requests as f64 / elapsed);
    println!(
        "latency p50 / p99:   {:.1} ms / {:.1} ms",
        f64::from(percentile(0.5)) / 1000.0,
        f64::from(percentile(0.99)) / 1000.0
    );
    println!(
        "lab CPU:             {cpu:.2} s, {:.3} ms per request (lab in a child process)",
        cpu * 1000.0 / requests.max(1) as f64
    );
}

fn envelope(mailbox: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header><t:RequestServerVersion Version="Exchange2016"/><t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{mailbox}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

/// Returns the `Id` of the first `ItemId` in a response.
fn item_id(text: &str) -> Option<String> {
    let start = text.find("<t:ItemId Id=\"")? + 14;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}

async fn client_loop(
    ready: &Ready,
    index: usize,
    deadline: Instant,
    counters: &Counters,
    latencies: &std::sync::Mutex<Vec<u32>>,
) {
    let ca = reqwest::Certificate::from_pem(ready.ca_pem.as_bytes()).expect("CA parses");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client builds");
    let mailbox = &ready.mailboxes[index];
    let mut cycle = 0u64;
    let send = |body: String| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let result = client
                .post(&ready.ews)
                .basic_auth(&ready.user, Some(&ready.password))
                .header("Content-Type", "text/xml; charset=utf-8")
                .body(body)
                .send()
                .await;
            let outcome = match result {
                Ok(response) if response.status() == 200 => response
                    .text()
                    .await
                    .ok()
                    .filter(|t| !t.contains("ResponseClass=\"Error\"")),
                _ => None,
            };
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if outcome.is_none() {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            latencies.lock().expect("latencies").push(micros);
            outcome
        }
    };
    while Instant::now() < deadline {
        cycle += 1;
        let message_id = format!("<bench-{index}-{cycle}@lab.example>");
        let mime = format!(
            "From: {mailbox}\r\nTo: partner@example.net\r\nSubject: Load {cycle}\r\nMessage-ID: {message_id}\r\nDate: Tue, 01 Dec 2026 09:30:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody of message {cycle}.\r\n"
        );
        let create = format!(
            r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="sentitems"/></m:SavedItemFolderId><m:Items><t:Message><t:MimeContent>{}</t:MimeContent><t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"/><t:Value>1</t:Value></t:ExtendedProperty></t:Message></m:Items></m:CreateItem>"#,
            STANDARD.encode(&mime)
        );
        if send(envelope(mailbox, &create)).await.is_none() {
            continue;
        }
        let find = format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/><m:Restriction><t:IsEqualTo><t:ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/><t:FieldURIOrConstant><t:Constant Value="{}"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="sentitems"/></m:ParentFolderIds></m:FindItem>"#,
            message_id.replace('<', "&lt;").replace('>', "&gt;")
        );
        let Some(found) = send(envelope(mailbox, &find)).await else {
            continue;
        };
        let Some(id) = item_id(&found) else {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let get = format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        );
        send(envelope(mailbox, &get)).await;
        let delete = format!(
            r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:DeleteItem>"#
        );
        send(envelope(mailbox, &delete)).await;
    }
}
