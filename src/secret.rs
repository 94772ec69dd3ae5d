//! A secret setting (an account key) that `Debug`, `Display` and logs cannot print.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_never_formatted() {
        let secret = Secret::new("C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM");
        assert!(!format!("{secret:?} {secret} {:?}", Some(&secret)).contains("C2y6"));
        assert_eq!(secret.expose(), "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM");
    }
}
