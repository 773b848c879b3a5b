//! Go's `path.Clean`, as `net/http`'s `ServeMux` applies it before routing.

/// Go's `path.Clean` plus `net/http`'s rule of keeping a trailing slash.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let rooted = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut stack: Vec<&str> = Vec::new();
    for seg in rooted.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    let mut np = format!("/{}", stack.join("/"));
    if rooted.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_as_serve_mux() {
        assert_eq!(clean_path("/v1/kv/a//b"), "/v1/kv/a/b");
        assert_eq!(clean_path("/v1/kv/a/../b/"), "/v1/kv/b/");
        assert_eq!(clean_path("/v1/kv/x/"), "/v1/kv/x/");
        assert_eq!(clean_path(""), "/");
    }
}
