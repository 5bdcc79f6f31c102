//! `tributary chat ...`: a client of the chat REST API (it talks to a
//! running `tributary up` / `tributary serve chat`), with progress bars for
//! import, backup and restore; `import --grpc ADDR` uploads over the gRPC
//! API's client stream instead.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tributary_runtime::client::{check, file_body, file_chunks, grpc_auth, Api};

use crate::api::rest::{
    BackupBody, CountResponse, DeleteBody, DeleteResponse, ImportBody, JobLine, RestoreBody,
    SearchResponse,
};
use crate::domain::{MessageFilter, SearchRequest, Sort, SortField};
use crate::proto::v1 as pb;
use crate::proto::v1::chat_service_client::ChatServiceClient;
use crate::service::{
    BackupFormat, BackupProgress, BackupReport, BackupTarget, ImportProgress, ImportReport,
    RestoreSource,
};
use crate::store::{AuditRecord, UserCount};

/// `tributary chat`: the chat archive's client.
#[derive(Debug, Args)]
pub struct Command {
    /// Base URL of the chat API (default: `chat.server` from the settings).
    #[arg(long, env = "TRIBUTARY_CHAT_SERVER", global = true)]
    pub server: Option<String>,
    #[command(subcommand)]
    pub action: Action,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Import a Telegram export (file, directory or zip) or a backup. The
    /// export is uploaded (a directory as a zip made on the fly), so the
    /// server may run anywhere; `--server-path` names a path on the server
    /// instead (only under its `chat.import_roots`).
    Import {
        path: PathBuf,
        /// PATH is on the server, under `chat.import_roots`.
        #[arg(long, conflicts_with = "grpc")]
        server_path: bool,
        /// Upload over the chat gRPC API at ADDR (`host:port` or
        /// `http://host:port`, the server's `chat.grpc_listen`) instead of
        /// REST; the same import, progress and report.
        #[arg(long, value_name = "ADDR")]
        grpc: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print matching messages.
    Search {
        #[command(flatten)]
        filter: FilterArgs,
        /// Sort keys `FIELD[:desc]`, FIELD one of created, id, chat, user.
        #[arg(long = "sort", value_parser = parse_sort)]
        sorts: Vec<Sort>,
        #[arg(long)]
        take: Option<u32>,
        #[arg(long, default_value_t = 0)]
        skip: u64,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Count matching messages.
    Count {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete matching messages.
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
        /// Required when no filter is given: delete everything.
        #[arg(long)]
        all: bool,
    },
    /// Per-user message counts (top users, or one user).
    Users {
        /// One user key (`user123`, `name:Alice`).
        user: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Query the audit log.
    Audit {
        #[arg(long)]
        service: Option<String>,
        /// Minimum level: error, warn, info, debug, trace.
        #[arg(long)]
        level: Option<String>,
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
        #[arg(long)]
        take: Option<u32>,
    },
    /// Back up matching messages to one CSV or Parquet file.
    Backup {
        #[command(flatten)]
        filter: FilterArgs,
        /// File format: csv (RFC 4180, header row) or parquet (one row
        /// group per page).
        #[arg(long, default_value = "csv")]
        format: BackupFormat,
        /// Directory on the server, relative to its `chat.backup_dir`.
        #[arg(long, conflicts_with = "objects", required_unless_present = "objects")]
        dir: Option<PathBuf>,
        /// To the object store instead.
        #[arg(long)]
        objects: bool,
    },
    /// Restore a backup: a local file or directory (uploaded), a path on
    /// the server (`--server-path`), or an object key (`--object`).
    Restore {
        #[arg(required_unless_present = "object", conflicts_with = "object")]
        path: Option<PathBuf>,
        /// PATH is on the server, under `chat.import_roots` or `chat.backup_dir`.
        #[arg(long)]
        server_path: bool,
        #[arg(long)]
        object: Option<String>,
    },
}

/// Message filter flags (every one optional; all given must hold).
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Telegram message id.
    #[arg(long)]
    pub id: Option<i64>,
    /// Sent at or after (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_time)]
    pub min_created: Option<DateTime<Utc>>,
    /// Sent at or before (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_time)]
    pub max_created: Option<DateTime<Utc>>,
    /// Case-sensitive substring of the text.
    #[arg(long)]
    pub text: Option<String>,
    /// Full-text query (every word).
    #[arg(long)]
    pub query: Option<String>,
    /// Sender key (repeatable).
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// Telegram chat id (repeatable).
    #[arg(long = "chat-id")]
    pub chat_ids: Vec<i64>,
    /// Chat name (repeatable).
    #[arg(long = "chat")]
    pub chats: Vec<String>,
}

impl From<FilterArgs> for MessageFilter {
    fn from(a: FilterArgs) -> Self {
        MessageFilter {
            id: a.id,
            min_created: a.min_created,
            max_created: a.max_created,
            text: a.text,
            query: a.query,
            user_ids: a.users,
            chat_ids: a.chat_ids,
            chat_names: a.chats,
        }
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))
}

fn parse_sort(s: &str) -> Result<Sort, String> {
    let (field, dir) = s.split_once(':').unwrap_or((s, "asc"));
    let field = match field {
        "created" => SortField::Created,
        "id" => SortField::Id,
        "chat" => SortField::Chat,
        "user" => SortField::User,
        other => return Err(format!("unknown sort field {other:?}")),
    };
    let desc = match dir {
        "asc" => false,
        "desc" => true,
        other => return Err(format!("sort direction must be asc or desc, got {other:?}")),
    };
    Ok(Sort { field, desc })
}

/// The chat API and the commands' calls to it.
struct Client {
    api: Api,
    /// The API's client (it sends the token), to build requests with.
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.api.post(path, body).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.api.get(path, query).await
    }

    /// Uploads `path` to `POST /api/chat/import/upload` (or, with `grpc`,
    /// to that gRPC API's `ChatService/Upload`) and follows the import: a
    /// file as it is, a directory as a zip written to a temporary file
    /// first (bounded memory on both sides), with a byte progress bar.
    async fn upload(
        &self,
        path: &std::path::Path,
        grpc: Option<&str>,
    ) -> anyhow::Result<ImportReport> {
        let meta = tokio::fs::metadata(path)
            .await
            .with_context(|| format!("read {}", path.display()))?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "export".into());
        let (file, name, _zip) = if meta.is_dir() {
            let bar = spinner("zip");
            bar.set_message(path.display().to_string());
            let dir = path.to_owned();
            let zip = tokio::task::spawn_blocking(move || zip_dir(&dir))
                .await
                .context("zip task")??;
            bar.finish_and_clear();
            (zip.path().to_owned(), format!("{base}.zip"), Some(zip))
        } else if meta.is_file() {
            (path.to_owned(), base, None)
        } else {
            bail!("{}: neither a file nor a directory", path.display());
        };
        let len = tokio::fs::metadata(&file).await?.len();
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} upload [{elapsed_precise}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let reader = tokio::fs::File::open(&file)
            .await
            .with_context(|| format!("open {}", file.display()))?;
        let counter = bar.clone();
        let on_read = move |n| counter.inc(n);
        let on_progress = import_progress(&bar);
        let report = match grpc {
            Some(addr) => grpc_upload(addr, &name, len, reader, on_read, &on_progress)
                .await
                .with_context(|| format!("upload {}", file.display())),
            None => {
                let url = format!("{}/api/chat/import/upload", self.base);
                let request = self
                    .http
                    .post(&url)
                    .query(&[("name", name.as_str())])
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(file_body(reader, on_read));
                self.follow(request, &url, |p: &ImportProgress| on_progress(p))
                    .await
            }
        };
        bar.finish_and_clear();
        report
    }

    /// Posts a long job and follows its NDJSON lines, calling `on_progress`.
    async fn job<B: Serialize, P: DeserializeOwned, D: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        on_progress: impl Fn(&P),
    ) -> anyhow::Result<D> {
        let url = format!("{}{path}", self.base);
        let request = self.http.post(&url).json(body);
        self.follow(request, &url, on_progress).await
    }

    /// Sends `request` and follows the NDJSON lines of its answer.
    async fn follow<P: DeserializeOwned, D: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        on_progress: impl Fn(&P),
    ) -> anyhow::Result<D> {
        let resp = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let mut stream = check(resp).await?.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk.with_context(|| format!("read the answer of {url}"))?);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                match serde_json::from_slice::<JobLine<P, D>>(&line)
                    .with_context(|| format!("unexpected line from {url}"))?
                {
                    JobLine::Progress(p) => on_progress(&p),
                    JobLine::Done(d) => return Ok(d),
                    JobLine::Error(e) => bail!("{e}"),
                }
            }
        }
        bail!("{url} ended without a result")
    }
}

/// Streams `file` (`len` bytes, named `name`) to `ChatService/Upload` at
/// `addr`: a start message, then one data message per 256 KiB read, and
/// follows the answer's progress to the report. A local read error ends
/// the stream short of the declared size, so the server refuses it
/// unimported; the read error is what is reported.
async fn grpc_upload(
    addr: &str,
    name: &str,
    len: u64,
    file: tokio::fs::File,
    on_read: impl Fn(u64) + Clone + Send + Sync + 'static,
    on_progress: &impl Fn(&ImportProgress),
) -> anyhow::Result<ImportReport> {
    use pb::upload_request::Part;
    let channel = tributary_runtime::client::grpc_channel(addr, "the chat gRPC API").await?;
    let mut client = ChatServiceClient::with_interceptor(channel, grpc_auth()?);
    let read_error = std::sync::Arc::new(std::sync::Mutex::new(None::<std::io::Error>));
    let slot = read_error.clone();
    let start = pb::UploadRequest {
        part: Some(Part::Start(pb::UploadStart {
            name: name.to_owned(),
            size: Some(len),
        })),
    };
    let data = file_chunks(file, on_read).scan((), move |(), chunk| {
        futures::future::ready(match chunk {
            Ok(d) => Some(pb::UploadRequest {
                part: Some(Part::Data(d)),
            }),
            Err(e) => {
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(e);
                }
                None
            }
        })
    });
    let status = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    let outcome = async {
        let mut events = client
            .upload(futures::stream::iter([start]).chain(data))
            .await
            .map_err(status)?
            .into_inner();
        while let Some(event) = events.message().await.map_err(status)? {
            match event.event {
                Some(pb::import_event::Event::Progress(p)) => on_progress(&p.into()),
                Some(pb::import_event::Event::Report(r)) => return Ok(r.into()),
                None => {}
            }
        }
        bail!("the chat gRPC API ended the upload without a report")
    }
    .await;
    if let Some(e) = read_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(anyhow::Error::new(e).context("read the file"));
    }
    outcome
}

fn spinner(prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(prefix.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn import_progress(bar: &ProgressBar) -> impl Fn(&ImportProgress) + '_ {
    move |p: &ImportProgress| {
        bar.set_message(format!(
            "{} parsed, {} new, {} problems, file {}: {}",
            p.parsed,
            p.inserted,
            p.errors,
            p.files_started,
            p.file.as_deref().unwrap_or("-")
        ));
    }
}

fn print_import(r: &ImportReport) {
    println!(
        "files: {} parsed, {} failed, {} ignored; messages: {} parsed, {} new, {} already stored, {} skipped",
        r.files, r.files_failed, r.files_ignored, r.parsed, r.inserted, r.duplicates, r.skipped
    );
    for e in &r.errors {
        println!("problem: {} at {}: {}", e.file, e.position, e.reason);
    }
    if r.errors_not_listed > 0 {
        println!("... and {} more problems", r.errors_not_listed);
    }
}

/// Runs a chat subcommand against `default_server` unless `--server` says otherwise.
///
/// # Errors
/// When the server cannot be reached or answers with an error.
pub async fn run(cmd: Command, default_server: &str) -> anyhow::Result<()> {
    let api = Api::new(
        "chat",
        &cmd.server.unwrap_or_else(|| default_server.to_owned()),
    )?;
    let client = Client {
        http: api.http().clone(),
        base: api.base().to_owned(),
        api,
    };
    match cmd.action {
        Action::Import {
            path,
            server_path,
            grpc,
            json,
        } => {
            let report = if server_path {
                let bar = spinner("import");
                let report: ImportReport = client
                    .job(
                        "/api/chat/import",
                        &ImportBody { path },
                        import_progress(&bar),
                    )
                    .await?;
                bar.finish_and_clear();
                report
            } else {
                client.upload(&path, grpc.as_deref()).await?
            };
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_import(&report);
            }
        }
        Action::Search {
            filter,
            sorts,
            take,
            skip,
            json,
        } => {
            let req = SearchRequest {
                filter: filter.into(),
                sorts,
                take,
                skip,
            };
            let resp: SearchResponse = client.post("/api/chat/messages/search", &req).await?;
            for m in resp.messages {
                if json {
                    println!("{}", serde_json::to_string(&m)?);
                } else {
                    println!(
                        "{} #{} {} {}: {}",
                        m.chat_name,
                        m.id,
                        m.date.as_deref().unwrap_or("-"),
                        m.from.as_deref().or(m.actor.as_deref()).unwrap_or("-"),
                        m.text.replace('\n', " ")
                    );
                }
            }
        }
        Action::Count { filter } => {
            let f: MessageFilter = filter.into();
            let resp: CountResponse = client.post("/api/chat/messages/count", &f).await?;
            println!("{}", resp.count);
        }
        Action::Delete { filter, all } => {
            let body = DeleteBody {
                filter: filter.into(),
                all,
            };
            let resp: DeleteResponse = client.post("/api/chat/messages/delete", &body).await?;
            println!("deleted {}", resp.deleted);
        }
        Action::Users { user: Some(u), .. } => {
            let c: UserCount = client.get(&format!("/api/chat/users/{u}"), &[]).await?;
            println!("{}\t{}\t{}", c.id, c.name.unwrap_or_default(), c.count);
        }
        Action::Users { user: None, limit } => {
            let q: Vec<(&str, String)> = limit
                .map(|l| ("limit", l.to_string()))
                .into_iter()
                .collect();
            let all: Vec<UserCount> = client.get("/api/chat/users", &q).await?;
            for c in all {
                println!("{}\t{}\t{}", c.id, c.name.unwrap_or_default(), c.count);
            }
        }
        Action::Audit {
            service,
            level,
            from,
            to,
            take,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            q.extend(service.map(|v| ("service", v)));
            q.extend(level.map(|v| ("level", v)));
            q.extend(from.map(|v| ("from", v.to_rfc3339())));
            q.extend(to.map(|v| ("to", v.to_rfc3339())));
            q.extend(take.map(|v| ("take", v.to_string())));
            let recs: Vec<AuditRecord> = client.get("/api/chat/audit", &q).await?;
            for r in recs {
                println!(
                    "{} {:5} {} {} {}",
                    r.created.to_rfc3339(),
                    r.level,
                    r.service,
                    r.message,
                    r.fields
                );
            }
        }
        Action::Backup {
            filter,
            format,
            dir,
            objects,
        } => {
            let target = match (dir, objects) {
                (Some(d), false) => BackupTarget::Dir(d),
                _ => BackupTarget::Objects,
            };
            let bar = spinner("backup");
            let body = BackupBody {
                filter: filter.into(),
                target,
                format,
            };
            let report: BackupReport = client
                .job("/api/chat/backup", &body, |p: &BackupProgress| {
                    bar.set_message(format!(
                        "{} messages, {:.1} MB",
                        p.messages,
                        p.bytes as f64 / 1e6
                    ));
                })
                .await?;
            bar.finish_and_clear();
            println!(
                "backed up {} messages ({} bytes) to {}",
                report.messages, report.bytes, report.location
            );
        }
        Action::Restore {
            path: Some(p),
            server_path: false,
            ..
        } => {
            // A local backup is uploaded: restoring is importing it.
            print_import(&client.upload(&p, None).await?);
        }
        Action::Restore { path, object, .. } => {
            let source = match (path, object) {
                (Some(p), _) => RestoreSource::Path(p),
                (None, Some(k)) => RestoreSource::Object(k),
                (None, None) => bail!("give a path or --object KEY"),
            };
            let bar = spinner("restore");
            let report: ImportReport = client
                .job(
                    "/api/chat/restore",
                    &RestoreBody { source },
                    import_progress(&bar),
                )
                .await?;
            bar.finish_and_clear();
            print_import(&report);
        }
    }
    Ok(())
}

/// Zips `dir` (every regular file under it, names relative to it, in walk
/// order; symlinks skipped like the server skips them) into a temporary
/// file, streaming each file through (memory bounded by the copy buffer).
fn zip_dir(dir: &std::path::Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let tmp = tempfile::Builder::new()
        .prefix("tributary-chat-")
        .suffix(".zip")
        .tempfile()
        .context("create a temporary zip")?;
    let mut zip = zip::ZipWriter::new(tmp.reopen().context("open the temporary zip")?);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .with_context(|| format!("read {}", d.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("read {}", d.display()))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let t = e.file_type()?;
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                let rel = p.strip_prefix(dir).unwrap_or(&p);
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                zip.start_file(name, options)?;
                let mut f =
                    std::fs::File::open(&p).with_context(|| format!("read {}", p.display()))?;
                std::io::copy(&mut f, &mut zip).with_context(|| format!("zip {}", p.display()))?;
            }
        }
    }
    zip.finish().context("finish the zip")?;
    Ok(tmp)
}
