//! Tenant tokens: 32 random bytes shown once, kept only as their SHA-256. A request's token is
//! hashed and compared with every tenant's hash in constant time, so neither the answer's
//! timing nor the registry's content reveals a token.

use sha2::{Digest, Sha256};

/// A fresh token: 32 random bytes, hex (64 characters), prefixed so that a leaked one is
/// recognisable in logs and scanners.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("tst_{}", crate::hex::encode(&bytes))
}

/// What the registry keeps of a token.
pub fn hash(token: &str) -> String {
    crate::hex::encode(&Sha256::digest(token.as_bytes()))
}

/// Whether two hashes are equal, in time that does not depend on where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_compare() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert!(same_hash(&hash(&a), &hash(&a)));
        assert!(!same_hash(&hash(&a), &hash(&b)));
        assert!(!same_hash(&hash(&a), ""));
    }
}
