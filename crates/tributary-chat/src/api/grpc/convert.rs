//! Every conversion between the domain types and `tributary.chat.v1`, in
//! one place. Requests that cannot be converted are
//! `INVALID_ARGUMENT` naming the field.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tonic::Status;

use crate::domain::backup_schema::DATE_FORMAT;
use crate::domain::{
    chat_key, created_of, user_of, AuditFilter, MessageFilter, SearchRequest, Sort, SortField,
};
use crate::proto::v1 as pb;
use crate::service::{
    BackupFormat, BackupProgress, BackupReport, BackupTarget, ImportProgress, ImportReport,
    ReportedError, RestoreSource,
};
use crate::store::{AuditRecord, UserCount};
use crate::{Message, MessageDate, MessageKind};

/// A time as a protobuf timestamp.
pub(crate) fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf timestamp as a time; `field` names it in the error.
fn instant(
    field: &str,
    t: Option<prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, Status> {
    let Some(t) = t else { return Ok(None) };
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .map(Some)
        .ok_or_else(|| Status::invalid_argument(format!("{field} is not a valid timestamp")))
}

/// The request's filter; an absent filter selects everything.
pub(crate) fn filter(f: Option<pb::MessageFilter>) -> Result<MessageFilter, Status> {
    let f = f.unwrap_or_default();
    Ok(MessageFilter {
        id: f.id,
        min_created: instant("filter.min_created", f.min_created)?,
        max_created: instant("filter.max_created", f.max_created)?,
        text: f.text,
        query: f.query,
        user_ids: f.user_ids,
        chat_ids: f.chat_ids,
        chat_names: f.chat_names,
    })
}

fn sort(s: &pb::Sort) -> Result<Sort, Status> {
    let field = match pb::SortField::try_from(s.field) {
        Ok(pb::SortField::Created) => SortField::Created,
        Ok(pb::SortField::Id) => SortField::Id,
        Ok(pb::SortField::Chat) => SortField::Chat,
        Ok(pb::SortField::User) => SortField::User,
        Ok(pb::SortField::Unspecified) | Err(_) => {
            return Err(Status::invalid_argument(format!(
                "sorts: field {} is not a sortable field",
                s.field
            )))
        }
    };
    Ok(Sort {
        field,
        desc: s.desc,
    })
}

/// A search request.
pub(crate) fn search(r: pb::SearchRequest) -> Result<SearchRequest, Status> {
    Ok(SearchRequest {
        filter: filter(r.filter)?,
        sorts: r.sorts.iter().map(sort).collect::<Result<_, _>>()?,
        take: r.take,
        skip: r.skip,
    })
}

/// An audit query.
pub(crate) fn audit_filter(r: pb::QueryRequest) -> Result<AuditFilter, Status> {
    Ok(AuditFilter {
        service: r.service,
        level: r.level,
        from: instant("from", r.from)?,
        to: instant("to", r.to)?,
        take: r.take,
        skip: r.skip,
    })
}

/// Where an export goes.
pub(crate) fn backup_target(t: Option<pb::export_request::Target>) -> Result<BackupTarget, Status> {
    match t {
        Some(pb::export_request::Target::Dir(d)) if !d.is_empty() => {
            Ok(BackupTarget::Dir(PathBuf::from(d)))
        }
        Some(pb::export_request::Target::Dir(_)) => {
            Err(Status::invalid_argument("target.dir is empty"))
        }
        Some(pb::export_request::Target::Objects(_)) => Ok(BackupTarget::Objects),
        None => Err(Status::invalid_argument(
            "target is required: a directory or the object store",
        )),
    }
}

/// The backup format; unspecified is the domain default (CSV).
pub(crate) fn backup_format(f: i32) -> Result<BackupFormat, Status> {
    match pb::BackupFormat::try_from(f) {
        Ok(pb::BackupFormat::Unspecified) => Ok(BackupFormat::default()),
        Ok(pb::BackupFormat::Csv) => Ok(BackupFormat::Csv),
        Ok(pb::BackupFormat::Parquet) => Ok(BackupFormat::Parquet),
        Err(_) => Err(Status::invalid_argument(format!(
            "format {f} is not a backup format"
        ))),
    }
}

/// What a restore reads.
pub(crate) fn restore_source(
    s: Option<pb::restore_request::Source>,
) -> Result<RestoreSource, Status> {
    match s {
        Some(pb::restore_request::Source::Path(p)) if !p.is_empty() => {
            Ok(RestoreSource::Path(PathBuf::from(p)))
        }
        Some(pb::restore_request::Source::ObjectKey(k)) if !k.is_empty() => {
            Ok(RestoreSource::Object(k))
        }
        Some(_) => Err(Status::invalid_argument(
            "source path or object_key is empty",
        )),
        None => Err(Status::invalid_argument(
            "source is required: a path or an object key",
        )),
    }
}

fn date(d: MessageDate) -> pb::MessageDate {
    pb::MessageDate {
        local: d.local.format(DATE_FORMAT).to_string(),
        offset_seconds: d.offset_seconds,
    }
}

impl From<&Message> for pb::Message {
    fn from(m: &Message) -> Self {
        let kind = match m.kind {
            MessageKind::Message => pb::MessageKind::Message,
            MessageKind::Service => pb::MessageKind::Service,
        };
        pb::Message {
            chat: chat_key(m),
            chat_id: m.chat_id,
            chat_name: m.chat_name.clone(),
            id: m.id,
            kind: kind.into(),
            date: m.date.map(date),
            created: created_of(m).map(timestamp),
            edited: m.edited.map(date),
            from: m.from.clone(),
            from_id: m.from_id.clone(),
            user: user_of(m).map(|u| u.0),
            forwarded_from: m.forwarded_from.clone(),
            reply_to: m.reply_to,
            via_bot: m.via_bot.clone(),
            text: m.text.clone(),
            links: m
                .links
                .iter()
                .map(|l| pb::Link {
                    text: l.text.clone(),
                    href: l.href.clone(),
                })
                .collect(),
            media_type: m.media_type.clone(),
            action: m.action.clone(),
            actor: m.actor.clone(),
            actor_id: m.actor_id.clone(),
        }
    }
}

impl From<&ImportProgress> for pb::ImportProgress {
    fn from(p: &ImportProgress) -> Self {
        pb::ImportProgress {
            file: p.file.clone(),
            files_started: p.files_started,
            parsed: p.parsed,
            inserted: p.inserted,
            errors: p.errors,
        }
    }
}

impl From<ReportedError> for pb::ReportedError {
    fn from(e: ReportedError) -> Self {
        pb::ReportedError {
            file: e.file,
            position: e.position,
            reason: e.reason,
        }
    }
}

impl From<ImportReport> for pb::ImportReport {
    fn from(r: ImportReport) -> Self {
        pb::ImportReport {
            files: r.files,
            files_failed: r.files_failed,
            files_ignored: r.files_ignored,
            parsed: r.parsed,
            skipped: r.skipped,
            inserted: r.inserted,
            duplicates: r.duplicates,
            errors: r.errors.into_iter().map(Into::into).collect(),
            errors_not_listed: r.errors_not_listed,
        }
    }
}

impl From<pb::ImportProgress> for ImportProgress {
    fn from(p: pb::ImportProgress) -> Self {
        ImportProgress {
            file: p.file,
            files_started: p.files_started,
            parsed: p.parsed,
            inserted: p.inserted,
            errors: p.errors,
        }
    }
}

impl From<pb::ImportReport> for ImportReport {
    fn from(r: pb::ImportReport) -> Self {
        ImportReport {
            files: r.files,
            files_failed: r.files_failed,
            files_ignored: r.files_ignored,
            parsed: r.parsed,
            skipped: r.skipped,
            inserted: r.inserted,
            duplicates: r.duplicates,
            errors: r
                .errors
                .into_iter()
                .map(|e| ReportedError {
                    file: e.file,
                    position: e.position,
                    reason: e.reason,
                })
                .collect(),
            errors_not_listed: r.errors_not_listed,
        }
    }
}

/// Largest `data` message of an upload, bytes.
pub const MAX_UPLOAD_CHUNK: usize = 1 << 20;

/// The messages of an upload after `start` as the byte stream
/// [`crate::ChatService::import_upload`] spools: each `data` message one
/// chunk; a second `start`, an empty message, a chunk over
/// [`MAX_UPLOAD_CHUNK`] or a broken stream is an error item (which ends the
/// upload unimported). Error texts name sizes and codes, never content.
pub(crate) fn upload_data(
    messages: tonic::Streaming<pb::UploadRequest>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, String>> + Send {
    use futures::StreamExt as _;
    use pb::upload_request::Part;
    messages.map(|m| match m.map(|m| m.part) {
        Ok(Some(Part::Data(d))) if d.len() <= MAX_UPLOAD_CHUNK => Ok(d),
        Ok(Some(Part::Data(d))) => Err(format!(
            "a data message of {} bytes, over the {MAX_UPLOAD_CHUNK} allowed",
            d.len()
        )),
        Ok(Some(Part::Start(_))) => Err("a second start message".to_owned()),
        Ok(None) => Err("a message without start or data".to_owned()),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    })
}

/// An import or restore progress update as a stream message.
pub(crate) fn import_progress(p: &ImportProgress) -> pb::ImportEvent {
    pb::ImportEvent {
        event: Some(pb::import_event::Event::Progress(p.into())),
    }
}

/// An import or restore report as a stream message.
pub(crate) fn import_report(r: ImportReport) -> pb::ImportEvent {
    pb::ImportEvent {
        event: Some(pb::import_event::Event::Report(r.into())),
    }
}

/// An export progress update as a stream message.
pub(crate) fn backup_progress(p: &BackupProgress) -> pb::ExportEvent {
    pb::ExportEvent {
        event: Some(pb::export_event::Event::Progress(pb::BackupProgress {
            messages: p.messages,
            bytes: p.bytes,
        })),
    }
}

/// An export report as a stream message.
pub(crate) fn backup_report(r: BackupReport) -> pb::ExportEvent {
    pb::ExportEvent {
        event: Some(pb::export_event::Event::Report(pb::BackupReport {
            location: r.location,
            messages: r.messages,
            bytes: r.bytes,
        })),
    }
}

impl From<UserCount> for pb::UserCount {
    fn from(u: UserCount) -> Self {
        pb::UserCount {
            id: u.id,
            name: u.name,
            count: u.count,
        }
    }
}

impl From<AuditRecord> for pb::AuditRecord {
    fn from(r: AuditRecord) -> Self {
        pb::AuditRecord {
            id: r.id,
            service: r.service,
            level: r.level,
            message: r.message,
            target: r.target,
            fields: r.fields,
            created: Some(timestamp(r.created)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a filter round-trips its fields and a bad timestamp is an
    // INVALID_ARGUMENT naming the field.
    #[test]
    fn filter_fields_and_bad_timestamp() {
        let t = DateTime::from_timestamp(1_600_000_000, 5).expect("valid");
        let f = filter(Some(pb::MessageFilter {
            id: Some(3),
            max_created: Some(timestamp(t)),
            user_ids: vec!["user1".into()],
            chat_ids: vec![7],
            ..Default::default()
        }))
        .expect("valid filter");
        assert_eq!(f.id, Some(3));
        assert_eq!(f.min_created, None);
        assert_eq!(f.max_created, Some(t));
        assert_eq!(f.user_ids, ["user1"]);
        assert_eq!(f.chat_ids, [7]);
        let bad = filter(Some(pb::MessageFilter {
            min_created: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..Default::default()
        }))
        .expect_err("negative nanos");
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(bad.message().contains("filter.min_created"), "{bad:?}");
    }

    // Proves an unspecified or unknown sort field is refused.
    #[test]
    fn sort_field_must_be_known() {
        for field in [0, 99] {
            let r = search(pb::SearchRequest {
                sorts: vec![pb::Sort { field, desc: true }],
                ..Default::default()
            });
            let e = r.map(|_| ()).expect_err("refused");
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
        let r = search(pb::SearchRequest {
            sorts: vec![pb::Sort {
                field: pb::SortField::User.into(),
                desc: true,
            }],
            take: Some(5),
            skip: 2,
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            r.sorts,
            [Sort {
                field: SortField::User,
                desc: true
            }]
        );
        assert_eq!((r.take, r.skip), (Some(5), 2));
    }
}
