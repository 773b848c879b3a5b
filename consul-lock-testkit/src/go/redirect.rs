//! Go's `http.Redirect` answer to a GET or HEAD: a short HTML page linking the new location,
//! escaped with `html.EscapeString`.

/// Go's `html.EscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The body `http.Redirect` writes for a 301 to `location` (a GET or HEAD).
pub(crate) fn moved_permanently_body(location: &str) -> String {
    format!(
        "<a href=\"{}\">Moved Permanently</a>.\n\n",
        html_escape(location)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_location() {
        assert_eq!(
            moved_permanently_body("/v1/kv/a?x=1&y='<>\""),
            "<a href=\"/v1/kv/a?x=1&amp;y=&#39;&lt;&gt;&#34;\">Moved Permanently</a>.\n\n"
        );
    }
}
