//! Reader of our own CSV backups (layout in
//! [`crate::domain::backup_schema`]).

use std::io::Read;

use super::Sink;
use crate::domain::backup_schema::{from_record, COLUMNS};
use crate::error::{Error, Position, Result};

/// Parses one CSV backup into `sink`. A record that does not fit the layout
/// is skipped and reported with its record and line number; a wrong header
/// or an I/O error stops the file.
pub(crate) fn parse_csv<R: Read>(reader: R, sink: &mut Sink<'_>) -> Result<()> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let header = rdr.headers().map_err(|e| csv_error(&e, 0))?;
    let got: Vec<&str> = header
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}'))
        .collect();
    if got != COLUMNS {
        return Err(Error::Csv {
            position: Position::Record { record: 0, line: 1 },
            reason: format!("header is not the backup layout: {got:?}"),
        });
    }
    let mut record = csv::StringRecord::new();
    let mut n: u64 = 0;
    loop {
        n += 1;
        match rdr.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let cells: Vec<&str> = record.iter().collect();
                match from_record(&cells) {
                    Ok(m) => sink.message(m),
                    Err(reason) => sink.skip(Position::Record { record: n, line }, reason),
                }
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(_) => return Err(csv_error(&e, n)),
                _ => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    sink.skip(Position::Record { record: n, line }, e.to_string());
                }
            },
        }
    }
}

fn csv_error(e: &csv::Error, record: u64) -> Error {
    Error::Csv {
        position: Position::Record {
            record,
            line: e.position().map(|p| p.line()).unwrap_or(0),
        },
        reason: e.to_string(),
    }
}
