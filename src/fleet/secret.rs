//! Per-VM repair credentials and the randomness for retry jitter, both from
//! `/dev/urandom` (no extra crate for a few random bytes).

use std::fmt;
use std::io::Read;

use anyhow::{Context, Result};

/// Random bytes from the kernel.
pub fn random_bytes(count: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; count];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

/// A value that must reach `az` but never a log, a state file or the screen:
/// its `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, only for building the argv (as a secret argument).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The repair VM's administrator account, new for every VM.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: Secret,
    pub password: Secret,
}

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGIT: &[u8] = b"23456789";
// No quote, backslash, `$` or space: the extension re-tokenises its own
// command strings with shlex, so these would break or leak.
const SPECIAL: &[u8] = b"#%+-.:=@^_~";

fn pick(alphabet: &[u8], byte: u8) -> char {
    alphabet[byte as usize % alphabet.len()] as char
}

impl Credentials {
    /// A username of 12 lowercase letters and digits (never a name Azure
    /// reserves, such as `admin`), and a 24-character password with all four
    /// character classes Azure asks for three of.
    pub fn generate() -> Result<Self> {
        let bytes = random_bytes(40)?;
        let mut username = String::from("rescue");
        for &b in &bytes[..6] {
            username.push(pick(LOWER, b));
        }
        let classes = [LOWER, UPPER, DIGIT, SPECIAL];
        let mut password = String::with_capacity(24);
        for (i, &b) in bytes[6..30].iter().enumerate() {
            // The first four characters guarantee one of each class.
            let alphabet = if i < 4 {
                classes[i]
            } else {
                classes[bytes[30 + i % 10] as usize % 4]
            };
            password.push(pick(alphabet, b));
        }
        Ok(Credentials {
            username: Secret(username),
            password: Secret(password),
        })
    }
}

/// A small xorshift generator for jitter, seeded from `/dev/urandom`. Not for
/// secrets.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new() -> Self {
        let seed = random_bytes(8)
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Jitter(seed | 1)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        if bound == 0 {
            0
        } else {
            x % bound
        }
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_differ_per_vm_and_meet_azure_rules() {
        let a = Credentials::generate().unwrap();
        let b = Credentials::generate().unwrap();
        assert_ne!(a.password, b.password);
        assert_ne!(a.username, b.username);
        let p = a.password.expose();
        assert_eq!(p.len(), 24);
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| SPECIAL.contains(&(c as u8))));
        assert!(a
            .username
            .expose()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::generate().unwrap();
        let shown = format!("{c:?} {}", c.password);
        assert!(!shown.contains(c.password.expose()));
        assert!(!shown.contains(c.username.expose()));
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        let mut j = Jitter::new();
        assert!((0..1000).all(|_| j.below(7) < 7));
        assert_eq!(j.below(0), 0);
    }
}
