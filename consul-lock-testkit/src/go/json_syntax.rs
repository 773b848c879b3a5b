//! Go's `encoding/json` syntax check: where a body's first JSON value ends, or the error
//! text Go's streaming decoder gives for it.

use super::quote::quote_char;

/// Checks that `input` starts with one syntactically valid JSON value, as Go's streaming
/// `json.Decoder` does (data after the first value is ignored). On success returns the
/// length of the value; on failure the error text Go would give.
pub(crate) fn go_syntax_check(input: &[u8]) -> Result<usize, String> {
    let mut p = Parser { s: input, i: 0 };
    p.ws();
    if p.i >= p.s.len() {
        return Err("EOF".into());
    }
    p.value(0)?;
    Ok(p.i)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

const EOF: &str = "unexpected EOF";

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn bad(&self, c: u8, ctx: &str) -> String {
        format!("invalid character {} {ctx}", quote_char(c))
    }
    fn value(&mut self, depth: usize) -> Result<(), String> {
        if depth > 10000 {
            return Err("exceeded max depth".into());
        }
        let c = self.peek().ok_or(EOF)?;
        match c {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek().ok_or(EOF)? == b'}' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    let c = self.peek().ok_or(EOF)?;
                    if c != b'"' {
                        return Err(self.bad(c, "looking for beginning of object key string"));
                    }
                    self.string()?;
                    self.ws();
                    let c = self.peek().ok_or(EOF)?;
                    if c != b':' {
                        return Err(self.bad(c, "after object key"));
                    }
                    self.i += 1;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    let c = self.peek().ok_or(EOF)?;
                    match c {
                        b',' => {
                            self.i += 1;
                            self.ws();
                        }
                        b'}' => {
                            self.i += 1;
                            return Ok(());
                        }
                        c => return Err(self.bad(c, "after object key:value pair")),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek().ok_or(EOF)? == b']' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    let c = self.peek().ok_or(EOF)?;
                    match c {
                        b',' => {
                            self.i += 1;
                            self.ws();
                        }
                        b']' => {
                            self.i += 1;
                            return Ok(());
                        }
                        c => return Err(self.bad(c, "after array element")),
                    }
                }
            }
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            c => Err(self.bad(c, "looking for beginning of value")),
        }
    }
    fn literal(&mut self, lit: &[u8]) -> Result<(), String> {
        let name = String::from_utf8_lossy(lit).into_owned();
        for (k, want) in lit.iter().enumerate() {
            let c = self.peek().ok_or(EOF)?;
            if c != *want {
                return Err(format!(
                    "invalid character {} in literal {name} (expecting {})",
                    quote_char(c),
                    quote_char(*want)
                ));
            }
            let _ = k;
            self.i += 1;
        }
        Ok(())
    }
    fn string(&mut self) -> Result<(), String> {
        self.i += 1; // opening quote
        loop {
            let c = self.peek().ok_or(EOF)?;
            self.i += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let e = self.peek().ok_or(EOF)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                let h = self.peek().ok_or(EOF)?;
                                if !h.is_ascii_hexdigit() {
                                    return Err(self.bad(h, "in \\u hexadecimal character escape"));
                                }
                                self.i += 1;
                            }
                        }
                        e => return Err(self.bad(e, "in string escape code")),
                    }
                }
                c if c < 0x20 => return Err(self.bad(c, "in string literal")),
                _ => {}
            }
        }
    }
    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }
    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.i += 1;
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(self.bad(c, "in numeric literal"));
            }
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(self.bad(c, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(self.bad(c, "in exponent of numeric literal"));
            }
            self.digits();
        }
        // A number at the very end of the stream is complete only for a top-level value,
        // which the decoder accepts; inside containers the caller reports the EOF.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_errors() {
        assert_eq!(
            go_syntax_check(b"not json").unwrap_err(),
            "invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(
            go_syntax_check(b"{\"TTL\": ").unwrap_err(),
            "unexpected EOF"
        );
        assert_eq!(go_syntax_check(b"").unwrap_err(), "EOF");
        assert_eq!(
            go_syntax_check(b"{x").unwrap_err(),
            "invalid character 'x' looking for beginning of object key string"
        );
        assert_eq!(go_syntax_check(b"[1,2] trailing").unwrap(), 5);
    }
}
