//! How the `CONSUL_*` boolean variables read: as Go's `strconv.ParseBool` reads them, which is
//! what the Consul CLI uses.

/// `Some(value)` for Go's `strconv.ParseBool` spellings (`1 t T TRUE true True`,
/// `0 f F FALSE false False`), `None` for anything else (`yes`, `on`, `""`).
///
/// ```
/// use consul_lock_syntax::parse_go_bool;
/// assert_eq!(parse_go_bool("T"), Some(true));
/// assert_eq!(parse_go_bool("False"), Some(false));
/// assert_eq!(parse_go_bool("yes"), None);
/// ```
#[must_use]
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The spellings [`parse_go_bool`] accepts, for error messages.
pub const GO_BOOL_SPELLINGS: &str = "1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False";
