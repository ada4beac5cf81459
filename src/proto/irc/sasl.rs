//! SASL PLAIN over `AUTHENTICATE` (IRCv3 sasl-3.1): putting the client's 400-byte chunks back
//! together and decoding `authzid \0 authcid \0 password`.
//!
//! A PLAIN response can exceed one chunk here: a 32-character name and a 64-character password
//! in non-ASCII UTF-8 take up to 514 bytes, 688 in base64. The exchange, for the glue:
//! `AUTHENTICATE PLAIN` → `AUTHENTICATE +`; then chunks into [`Response::push`] until it gives
//! the whole response; then [`decode_plain`]; then 900 + 903, or 904.

/// The size of a full chunk: a chunk of exactly this length means more follows.
pub const CHUNK: usize = 400;

/// The longest base64 response accepted, a few chunks (a PLAIN response here needs two).
pub const MAX_RESPONSE: usize = 4 * CHUNK;

/// Why an `AUTHENTICATE` exchange fails.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum SaslError {
    /// A chunk over 400 bytes, or a response over [`MAX_RESPONSE`] (numeric 905).
    #[error("the SASL message is too long")]
    TooLong,
    /// The response is not base64 (numeric 904).
    #[error("the SASL response is not valid base64")]
    BadBase64,
    /// The decoded response is not `authzid \0 authcid \0 password` in UTF-8, the authcid is
    /// empty, or the authzid names someone else (numeric 904).
    #[error("the SASL response is not a PLAIN message for one account")]
    BadPlain,
}

/// What one `AUTHENTICATE` chunk did.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// A full chunk: more follows.
    More,
    /// The response is complete: its base64 text (empty for `AUTHENTICATE +` alone).
    Done(String),
    /// `AUTHENTICATE *`: the client aborts (numeric 906).
    Aborted,
}

/// The client's response, chunk by chunk.
#[derive(Debug, Default)]
pub struct Response {
    base64: String,
}

impl Response {
    /// An empty response, after `AUTHENTICATE PLAIN` was answered with `AUTHENTICATE +`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the parameter of one `AUTHENTICATE` line. After `Done`, `Aborted` or an error
    /// the response starts again empty.
    pub fn push(&mut self, param: &str) -> Result<Chunk, SaslError> {
        if param == "*" {
            self.base64.clear();
            return Ok(Chunk::Aborted);
        }
        if param == "+" {
            return Ok(Chunk::Done(std::mem::take(&mut self.base64)));
        }
        if param.len() > CHUNK || self.base64.len() + param.len() > MAX_RESPONSE {
            self.base64.clear();
            return Err(SaslError::TooLong);
        }
        self.base64.push_str(param);
        if param.len() == CHUNK {
            Ok(Chunk::More)
        } else {
            Ok(Chunk::Done(std::mem::take(&mut self.base64)))
        }
    }
}

/// Credentials from a PLAIN response.
#[derive(Debug, PartialEq, Eq)]
pub struct Plain {
    /// The account (authentication identity): the chat name.
    pub account: String,
    /// The password as sent.
    pub password: String,
}

/// Decodes a complete PLAIN response. The authorization identity must be empty or the same as
/// the account (irssi and WeeChat repeat the account; the Python `irc` library leaves it empty).
pub fn decode_plain(base64: &str) -> Result<Plain, SaslError> {
    let bytes = decode_base64(base64).ok_or(SaslError::BadBase64)?;
    let text = String::from_utf8(bytes).map_err(|_| SaslError::BadPlain)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::BadPlain);
    };
    if authcid.is_empty() || !(authzid.is_empty() || authzid == authcid) {
        return Err(SaslError::BadPlain);
    }
    Ok(Plain {
        account: authcid.to_owned(),
        password: password.to_owned(),
    })
}

/// The value of one base64 character (RFC 4648 standard alphabet).
fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes padded base64 (RFC 4648 section 4), as SASL requires; `None` if it is not.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (i, quad) in bytes.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let triple = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits that padding drops must be zero, so that each text has one decoding.
        if (pad == 1 && triple[2] != 0) || (pad == 2 && triple[1] != 0) {
            return None;
        }
        out.extend_from_slice(&triple[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Padded base64, for the tests.
    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn rfc4648_vectors() {
        for (plain, b64) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(decode_base64(b64).as_deref(), Some(plain.as_bytes()));
            assert_eq!(encode(plain.as_bytes()), b64);
        }
        for bad in [
            "Zg",
            "Zg=",
            "Z===",
            "Zm9v=",
            "Zg==Zg==",
            "Zh==",
            "Zm9=",
            "Zm 9",
            "Zm9\u{e9}",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decodes_what_irssi_weechat_and_python_irc_send() {
        // irssi and WeeChat: authzid = authcid; the Python irc library: empty authzid.
        assert_eq!(
            decode_plain("a2F5AGtheQBzZXNhbWUxMjM="),
            Ok(Plain {
                account: "kay".into(),
                password: "sesame123".into()
            })
        );
        assert_eq!(
            decode_plain(&encode(b"\0kay\0pass word 8")),
            Ok(Plain {
                account: "kay".into(),
                password: "pass word 8".into()
            })
        );
        for bad in [
            &b"kay\0kay"[..],
            b"bob\0kay\0pw",
            b"kay\0\0pw",
            b"a\0b\0c\0d",
            b"\xff\0\xff\0pw",
        ] {
            assert_eq!(decode_plain(&encode(bad)), Err(SaslError::BadPlain));
        }
        assert_eq!(decode_plain("not base64!"), Err(SaslError::BadBase64));
    }

    #[test]
    fn chunks_of_400_bytes_continue_and_plus_ends_them() {
        let long = format!(
            "{name}\0{name}\0{pw}",
            name = "💬".repeat(32),
            pw = "𝄞".repeat(64)
        );
        let b64 = encode(long.as_bytes());
        assert!(b64.len() > CHUNK);
        let mut response = Response::new();
        assert_eq!(response.push(&b64[..CHUNK]), Ok(Chunk::More));
        assert_eq!(response.push(&b64[CHUNK..]), Ok(Chunk::Done(b64.clone())));
        assert_eq!(decode_plain(&b64).unwrap().account, "💬".repeat(32));
        assert_eq!((long.len(), b64.len()), (514, 688));
        // Exactly 400 bytes: a `+` ends it.
        let exact = "A".repeat(CHUNK);
        assert_eq!(response.push(&exact), Ok(Chunk::More));
        assert_eq!(response.push("+"), Ok(Chunk::Done(exact)));
        assert_eq!(response.push("+"), Ok(Chunk::Done(String::new())));
        assert_eq!(response.push("abc"), Ok(Chunk::Done("abc".into())));
    }

    #[test]
    fn aborts_and_limits() {
        let mut response = Response::new();
        assert_eq!(response.push(&"A".repeat(CHUNK)), Ok(Chunk::More));
        assert_eq!(response.push("*"), Ok(Chunk::Aborted));
        assert_eq!(response.push("QQ=="), Ok(Chunk::Done("QQ==".into())));
        assert_eq!(
            response.push(&"A".repeat(CHUNK + 1)),
            Err(SaslError::TooLong)
        );
        for _ in 0..MAX_RESPONSE / CHUNK {
            assert_eq!(response.push(&"A".repeat(CHUNK)), Ok(Chunk::More));
        }
        assert_eq!(response.push("AAAA"), Err(SaslError::TooLong));
        assert_eq!(response.push("AAAA"), Ok(Chunk::Done("AAAA".into())));
    }

    #[test]
    fn random_base64_round_trips_and_random_text_never_panics() {
        let mut rng = SmallRng::seed_from_u64(4648);
        for _ in 0..2000 {
            let len = rng.random_range(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            assert_eq!(decode_base64(&encode(&bytes)), Some(bytes.clone()));
            let text = String::from_utf8_lossy(&bytes);
            let _ = decode_base64(&text);
            let _ = decode_plain(&text);
        }
    }
}
