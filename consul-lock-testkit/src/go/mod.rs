//! Go's dialect, in one place: everything the test server does the way Go's standard library
//! (or a Go library Consul uses) does it, so that its texts and answers match Consul's byte
//! for byte. Each file holds one job; nothing outside this module re-implements any of it.
//!
//! - `duration`: `time.ParseDuration` and `Duration.String`
//! - `quote`: `strconv.Quote` and the JSON scanner's `quoteChar`
//! - `json`: `json.MarshalIndent` output (4-space indent, HTML-safe escapes)
//! - `json_syntax`: the JSON decoder's syntax errors
//! - `json_decode`: the JSON decoder's field matching, duplicates and type errors
//! - `json_doc`: a body in document order, and the decoder's first-error bookkeeping
//! - `url`: `net/url` decoding, escaping and query parsing
//! - `path`: `path.Clean` as `ServeMux` applies it
//! - `redirect`: `http.Redirect`'s page
//! - `printable`: `unicode.IsPrint` (table in `printable_table.rs`, generated)
//! - `strconv`: `strconv.ParseUint` with its errors
//! - `base64`: `encoding/base64` with its errors
//! - `uuid`: go-memdb's UUID check with its errors

pub(crate) mod base64;
pub(crate) mod duration;
pub(crate) mod json;
pub(crate) mod json_decode;
pub(crate) mod json_doc;
pub(crate) mod json_syntax;
pub(crate) mod path;
pub(crate) mod printable;
mod printable_table;
pub(crate) mod quote;
pub(crate) mod redirect;
pub(crate) mod strconv;
pub(crate) mod url;
pub(crate) mod uuid;
