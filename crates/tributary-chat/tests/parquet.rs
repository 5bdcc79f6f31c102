//! Parquet backups through the parser: exact round trips (every field,
//! several row groups), detection on disk, in directories and zips, and
//! bad input (foreign schema, bad values, truncation) reported as file
//! errors naming the file and column, never a panic.

mod common;

use std::io::Write as _;
use std::sync::Arc;

use chrono::NaiveDateTime;
use common::{collect, collect_reader};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use tributary_chat::parse::parquet::{encode_file, ParquetBackupEncoder, READ_CHUNK, SCHEMA};
use tributary_chat::{FileKind, Link, Message, MessageDate, MessageKind, ParseEvent, Position};

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").expect("valid literal")
}

/// Messages that exercise every field and the edge cases CSV cannot
/// carry (empty vs absent strings, offsets with seconds).
fn edge_messages() -> Vec<Message> {
    let mut full = Message::new("Chat, \"quoted\" ünï", 5, MessageKind::Message);
    full.chat_id = Some(-1_001_234_567_890);
    full.date = MessageDate::with_offset(at("2021-01-11T14:22:33"), -(3 * 3600 + 30 * 60));
    full.edited = MessageDate::with_offset(at("2021-01-11T15:00:00"), 5 * 3600 + 45 * 60 + 7);
    full.from = Some("Alice".into());
    full.from_id = Some("user1".into());
    full.forwarded_from = Some("Bob 😀".into());
    full.reply_to = Some(4);
    full.via_bot = Some("@gif".into());
    full.text = "line1\nline2, \"x\" <&>".into();
    full.links = vec![
        Link {
            text: "t".into(),
            href: "https://e.x/?a=1&b=2".into(),
        },
        Link {
            text: String::new(),
            href: "mailto:a@b.c".into(),
        },
    ];
    full.media_type = Some("photo".into());

    let mut service = Message::new("", 6, MessageKind::Service);
    service.date = Some(MessageDate::naive(at("1999-12-31T23:59:59")));
    service.action = Some("pin_message".into());
    service.actor = Some(String::new());
    service.actor_id = Some("channel9".into());

    let bare = Message::new("Empty", i64::MIN, MessageKind::Message);
    let mut max = Message::new("Max", i64::MAX, MessageKind::Message);
    max.reply_to = Some(i64::MIN);
    max.chat_id = Some(0);
    max.from = Some(String::new());
    vec![full, service, bare, max]
}

fn many(n: i64, chat: &str) -> Vec<Message> {
    (1..=n)
        .map(|i| {
            let mut m = Message::new(chat, i, MessageKind::Message);
            m.text = format!("message {i}");
            if i % 3 == 0 {
                m.links.push(Link {
                    text: format!("l{i}"),
                    href: format!("https://x/{i}"),
                });
            }
            m
        })
        .collect()
}

// Proves every field of every edge-case message survives the Parquet
// backup exactly, including what CSV normalizes (empty strings, offset
// seconds, extreme ids).
#[test]
fn every_field_round_trips_exactly() {
    let msgs = edge_messages();
    let bytes = encode_file(&msgs).expect("encode");
    let c = collect_reader("backup.parquet", &bytes);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.messages, msgs);
    assert_eq!((c.summary.files, c.summary.messages), (1, 4));
}

// Proves the streaming encoder makes one row group per batch and the
// reader returns every row in order across row groups, including one
// larger than the reader's chunk.
#[test]
fn row_groups_are_batches_and_read_in_order() {
    let all = many(READ_CHUNK as i64 * 2 + 10, "Big");
    let batches = [&all[..3], &all[3..4], &all[4..]];
    let mut enc = ParquetBackupEncoder::new().expect("encoder");
    let mut bytes = Vec::new();
    for b in batches {
        bytes.extend(enc.row_group(b).expect("row group"));
    }
    bytes.extend(enc.row_group(&[]).expect("empty batch writes nothing"));
    bytes.extend(enc.finish().expect("finish"));
    let reader =
        SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).expect("valid Parquet");
    assert_eq!(reader.num_row_groups(), 3);
    let c = collect_reader("b.parquet", &bytes);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.messages, all);
}

// Proves a backup on disk is detected by its magic even without the
// extension, read in place, and that an empty backup is a valid file.
#[test]
fn detected_on_disk_by_magic_and_empty_backup_is_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("backup.bin"),
        encode_file(&edge_messages()).expect("encode"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("empty.parquet"),
        encode_file(&[]).expect("encode"),
    )
    .expect("write");
    let mut kinds = Vec::new();
    let summary = tributary_chat::parse_path(dir.path(), &mut |e| {
        if let ParseEvent::FileStart { kind, .. } = e {
            kinds.push(kind);
        }
    })
    .expect("walk");
    assert_eq!(kinds, [FileKind::ParquetBackup, FileKind::ParquetBackup]);
    assert_eq!((summary.files, summary.messages), (2, 4));
    let c = collect(dir.path());
    assert_eq!(c.messages, edge_messages());
}

// Proves Parquet backups inside a directory and inside a `.zip` (spilled
// to a temporary file) import alongside other inputs.
#[test]
fn directories_and_zips_hold_parquet_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = many(20, "In dir");
    let b = many(7, "In zip");
    std::fs::write(
        dir.path().join("a.parquet"),
        encode_file(&a).expect("encode"),
    )
    .expect("write");
    let zip_file = std::fs::File::create(dir.path().join("b.zip")).expect("create zip");
    let mut zip = zip::ZipWriter::new(zip_file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("backups/b.parquet", opts).expect("entry");
    zip.write_all(&encode_file(&b).expect("encode"))
        .expect("write entry");
    zip.finish().expect("finish zip");
    let c = collect(dir.path());
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.messages, [a, b].concat());
    assert!(
        c.files
            .iter()
            .any(|f| f.ends_with("b.zip!backups/b.parquet")),
        "{:?}",
        c.files
    );
}

/// A Parquet file of `schema` with zero row groups.
fn empty_file_of(schema: &str) -> Vec<u8> {
    let schema = Arc::new(parse_message_type(schema).expect("test schema"));
    let w = SerializedFileWriter::new(
        Vec::new(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .expect("writer");
    w.into_inner().expect("file")
}

// Proves a Parquet file that is not our schema is one file error naming
// the file and the column: missing column, wrong physical type, wrong
// repetition; and a `.parquet` that is not Parquet at all is one too.
#[test]
fn foreign_schema_is_a_file_error_naming_the_column() {
    let missing = SCHEMA.replace("REQUIRED BYTE_ARRAY kind (UTF8);", "");
    let wrong_type = SCHEMA.replace(
        "OPTIONAL INT64 date (TIMESTAMP(MICROS,false));",
        "OPTIONAL BYTE_ARRAY date (UTF8);",
    );
    let wrong_rep = SCHEMA.replace("REQUIRED INT64 message_id;", "OPTIONAL INT64 message_id;");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("missing.parquet", empty_file_of(&missing), "column kind"),
        ("type.parquet", empty_file_of(&wrong_type), "column date"),
        (
            "rep.parquet",
            empty_file_of(&wrong_rep),
            "column message_id",
        ),
        (
            "fake.parquet",
            b"not parquet at all".to_vec(),
            "not a readable Parquet file",
        ),
    ];
    for (name, bytes, want) in cases {
        let c = collect_reader(name, &bytes);
        assert_eq!(c.summary.files_failed, 1, "{name}");
        assert_eq!(c.errors.len(), 1, "{name}: {:?}", c.errors);
        let e = &c.errors[0];
        assert_eq!(e.file, name);
        assert!(e.reason.contains(want), "{name}: {}", e.reason);
        assert!(c.messages.is_empty());
    }
}

/// A file of our schema written column by column, row `bad_row` holding
/// `kind = "bogus"`.
fn file_with_bad_kind(rows: usize, bad_row: usize) -> Vec<u8> {
    let schema = Arc::new(parse_message_type(SCHEMA).expect("schema"));
    let mut w = SerializedFileWriter::new(
        Vec::new(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .expect("writer");
    let mut rg = w.next_row_group().expect("row group");
    let mut leaf = 0;
    while let Some(mut col) = rg.next_column().expect("column") {
        let descr = col.untyped();
        let nulls = vec![0i16; rows];
        match descr {
            ColumnWriter::Int64ColumnWriter(c) if leaf == 2 => {
                let ids: Vec<i64> = (1..=rows as i64).collect();
                c.write_batch(&ids, None, None).expect("ids");
            }
            ColumnWriter::Int64ColumnWriter(c) => {
                c.write_batch(&[], Some(&nulls), None).expect("nulls");
            }
            ColumnWriter::Int32ColumnWriter(c) => {
                c.write_batch(&[], Some(&nulls), None).expect("nulls");
            }
            ColumnWriter::ByteArrayColumnWriter(c) => match leaf {
                // chat_name, text: required
                1 | 13 => {
                    let v = vec![ByteArray::from("x"); rows];
                    c.write_batch(&v, None, None).expect("strings");
                }
                3 => {
                    let v: Vec<ByteArray> = (0..rows)
                        .map(|i| ByteArray::from(if i == bad_row { "bogus" } else { "message" }))
                        .collect();
                    c.write_batch(&v, None, None).expect("kinds");
                }
                14 | 15 => {
                    c.write_batch(&[], Some(&nulls), Some(&nulls))
                        .expect("no links");
                }
                _ => {
                    c.write_batch(&[], Some(&nulls), None).expect("nulls");
                }
            },
            _ => panic!("unexpected column type at leaf {leaf}"),
        }
        col.close().expect("close column");
        leaf += 1;
    }
    rg.close().expect("close row group");
    w.into_inner().expect("file")
}

// Proves a row with an unusable value (a kind that is neither message nor
// service) is skipped and reported with its index, id and column, and the
// other rows are delivered.
#[test]
fn bad_value_skips_one_row_naming_the_column() {
    let bytes = file_with_bad_kind(5, 2);
    let c = collect_reader("odd.parquet", &bytes);
    assert_eq!(
        c.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    let e = &c.errors[0];
    assert_eq!(e.file, "odd.parquet");
    assert_eq!(
        e.position,
        Position::Message {
            index: 2,
            id: Some(3)
        }
    );
    assert!(e.reason.contains("column kind"), "{}", e.reason);
    assert_eq!((c.summary.files, c.summary.messages_skipped), (1, 1));
}

// Proves a real backup cut at many offsets (every byte of the footer end,
// spread offsets elsewhere) is one file error naming the file, never a
// panic, and never yields a message that was not in the backup.
#[test]
fn truncated_backup_is_a_file_error_never_a_panic() {
    let msgs = many(300, "Cut");
    let mut enc = ParquetBackupEncoder::new().expect("encoder");
    let mut full = Vec::new();
    for b in msgs.chunks(100) {
        full.extend(enc.row_group(b).expect("row group"));
    }
    full.extend(enc.finish().expect("finish"));
    let len = full.len();
    let mut cuts: Vec<usize> = (0..len).step_by((len / 97).max(1)).collect();
    cuts.extend(len.saturating_sub(64)..len);
    let dir = tempfile::tempdir().expect("tempdir");
    for cut in cuts {
        // Through a stream (spilled) and from disk (read in place).
        let c = collect_reader("cut.parquet", &full[..cut]);
        assert_eq!(c.summary.files_failed, 1, "cut at {cut}");
        assert!(
            c.errors.iter().any(|e| e.file == "cut.parquet"),
            "cut at {cut}: {:?}",
            c.errors
        );
        for m in &c.messages {
            assert!(msgs.contains(m), "cut at {cut}: unknown {m:?}");
        }
        let path = dir.path().join("cut.parquet");
        std::fs::write(&path, &full[..cut]).expect("write");
        let d = collect(&path);
        assert_eq!(d.summary.files_failed, 1, "cut at {cut} on disk");
        assert!(d.errors[0].file.ends_with("cut.parquet"));
    }
    assert_eq!(collect_reader("whole.parquet", &full).messages, msgs);
}

// Proves byte flips anywhere in a real backup (footer, page headers, data)
// never panic out of the parser and never break its accounting: each
// damaged file is either read or one failed file. (The `parquet` decoder
// does panic on some of these inputs; the reader turns that into a file
// error.)
#[test]
fn damaged_backup_never_panics() {
    let msgs = many(300, "Flip");
    let mut enc = ParquetBackupEncoder::new().expect("encoder");
    let mut full = Vec::new();
    for b in msgs.chunks(100) {
        full.extend(enc.row_group(b).expect("row group"));
    }
    full.extend(enc.finish().expect("finish"));
    // xorshift: deterministic, no extra dependency.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..1000 {
        let mut data = full.clone();
        for _ in 0..=next() % 3 {
            let at = (next() % data.len() as u64) as usize;
            data[at] = next() as u8;
        }
        let c = collect_reader("flipped.parquet", &data);
        assert_eq!(c.messages.len() as u64, c.summary.messages, "round {round}");
        assert_eq!(c.summary.files + c.summary.files_failed, 1, "round {round}");
        if c.summary.files_failed == 1 {
            assert!(
                c.errors.iter().all(|e| e.file == "flipped.parquet"),
                "round {round}: {:?}",
                c.errors
            );
        }
    }
}
