//! Validated values ("parse, don't validate"): every request field that reaches a handler
//! as one of these has already been checked, and a failure names the field.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// A field failed validation. `field` is the request field's name, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Normalise free text: NFC, trimmed, control characters rejected.
fn clean_text(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String, ValidationError> {
    let s: String = raw.nfc().collect::<String>().trim().to_owned();
    let n = char_len(&s);
    if n < min {
        return Err(ValidationError::new(
            field,
            if min == 1 { "must not be empty".to_owned() } else { format!("must be at least {min} characters") },
        ));
    }
    if n > max {
        return Err(ValidationError::new(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(s)
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_value!(
    /// 3-25 letters, digits or `_` in any script, NFKC-normalised so look-alike
    /// compatibility forms collapse to one name. Unique case-insensitively (the database
    /// indexes `lower(username)`).
    Username
);

impl Username {
    pub const FIELD: &'static str = "username";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s: String = raw.trim().nfkc().collect();
        let n = char_len(&s);
        if !(3..=25).contains(&n) {
            return Err(ValidationError::new(Self::FIELD, "must be 3 to 25 characters"));
        }
        if !s.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(ValidationError::new(Self::FIELD, "may contain only letters, digits and underscores"));
        }
        if s.starts_with('_') {
            return Err(ValidationError::new(Self::FIELD, "must start with a letter or digit"));
        }
        Ok(Self(s))
    }

    /// The form uniqueness and login compare: NFKC, then Unicode lower case.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The comparison key for something a user typed as a username, valid or not.
    pub fn key_of(raw: &str) -> String {
        raw.trim().nfkc().collect::<String>().to_lowercase()
    }
}

string_value!(
    /// An email address: one `@`, a dotted domain, no spaces, at most 254 bytes. Stored
    /// lower-cased: we never send mail to a case-sensitive local part that differs.
    Email
);

impl Email {
    pub const FIELD: &'static str = "email";

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_lowercase();
        let bad = || ValidationError::new(Self::FIELD, "must be an email address like name@example.com");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Self(s))
    }
}

/// A password as typed. Never serialised, never printed.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// OWASP ASVS: at least 8 characters; we allow long passphrases but bound the work argon2 does.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let n = char_len(raw);
        if n < 8 {
            return Err(ValidationError::new(field, "must be at least 8 characters"));
        }
        if n > 128 || raw.len() > 512 {
            return Err(ValidationError::new(field, "must be at most 128 characters"));
        }
        if raw.trim().is_empty() {
            return Err(ValidationError::new(field, "must not be only whitespace"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

string_value!(
    /// A display name: 1-40 characters of any script, trimmed.
    DisplayName
);

impl DisplayName {
    pub const FIELD: &'static str = "display_name";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = clean_text(Self::FIELD, raw, 1, 40)?;
        if s.contains('\n') {
            return Err(ValidationError::new(Self::FIELD, "must be a single line"));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// A profile bio: up to 500 characters, may be empty, may span lines.
    Bio
);

impl Bio {
    pub const FIELD: &'static str = "bio";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        clean_text(Self::FIELD, raw, 0, 500).map(Self)
    }
}

string_value!(
    /// An avatar image URL: absolute http(s), at most 2048 bytes. Empty clears the avatar.
    AvatarUrl
);

impl AvatarUrl {
    pub const FIELD: &'static str = "avatar_url";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        if s.len() > 2048 {
            return Err(ValidationError::new(Self::FIELD, "must be at most 2048 bytes"));
        }
        let url = url::Url::parse(s).map_err(|_| ValidationError::new(Self::FIELD, "must be an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ValidationError::new(Self::FIELD, "must be an http or https URL"));
        }
        Ok(Self(url.to_string()))
    }
}

string_value!(
    /// A stream title: 1-140 characters, one line.
    StreamTitle
);

impl StreamTitle {
    pub const FIELD: &'static str = "title";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = clean_text(Self::FIELD, raw, 1, 140)?;
        if s.contains('\n') {
            return Err(ValidationError::new(Self::FIELD, "must be a single line"));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// A category slug (`just-chatting`, `games`); the categories table says which exist.
    Category
);

impl Category {
    pub const FIELD: &'static str = "category";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_ascii_lowercase();
        if s.is_empty() || s.len() > 40 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ValidationError::new(Self::FIELD, "must be a category slug (a-z, 0-9, -)"));
        }
        Ok(Self(s))
    }
}

string_value!(
    /// A tag: 1-25 letters, digits, `-` or `_`, lower-cased.
    Tag
);

impl Tag {
    pub const FIELD: &'static str = "tags";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        let n = char_len(&s);
        if !(1..=25).contains(&n) || !s.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            return Err(ValidationError::new(Self::FIELD, "each tag must be 1 to 25 letters, digits, - or _"));
        }
        Ok(Self(s))
    }
}

/// At most 10 distinct tags, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub const MAX: usize = 10;

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ValidationError> {
        if raw.len() > Self::MAX {
            return Err(ValidationError::new(Tag::FIELD, format!("at most {} tags", Self::MAX)));
        }
        let mut out: Vec<Tag> = Vec::with_capacity(raw.len());
        for r in raw {
            let t = Tag::parse(r.as_ref())?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(Self(out))
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|t| t.as_str().to_owned()).collect()
    }
}

string_value!(
    /// An ISO 639-1 language code with an optional region: `en`, `pt-br`.
    Language
);

impl Language {
    pub const FIELD: &'static str = "language";
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_ascii_lowercase();
        let ok = match s.split_once('-') {
            None => s.len() == 2 && s.chars().all(|c| c.is_ascii_lowercase()),
            Some((l, r)) => {
                l.len() == 2
                    && r.len() == 2
                    && l.chars().all(|c| c.is_ascii_lowercase())
                    && r.chars().all(|c| c.is_ascii_lowercase())
            }
        };
        if !ok {
            return Err(ValidationError::new(Self::FIELD, "must be a language code like en or pt-br"));
        }
        Ok(Self(s))
    }
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            /// Parse the database/wire form.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What a user may do. Streamers are viewers who have a stream key.
    Role { Viewer => "viewer", Streamer => "streamer", Admin => "admin" }
);

string_enum!(
    /// Account tier: partners get ingest priority and the full ladder (see the autoscaling issue).
    Tier { Free => "free", Partner => "partner" }
);

string_enum!(
    /// Which renditions of a broadcast are recorded: the whole ladder, or (a channel's choice,
    /// about 70% of the bytes for a 720p/480p/360p ladder) only its top and its lowest.
    RecordRenditions { All => "all", TopAndLowest => "top_and_lowest" }
);

string_enum!(
    /// Who may play a channel's broadcasts. `public`: plain URLs anyone may share, one cached
    /// copy at every edge. `signed`: anyone may watch, through expiring per-viewer URLs (a leaked
    /// URL stops playing when it expires). `followers`: signed URLs handed only to signed-in
    /// followers and the streamer (a private stream).
    PlaybackAccess { Public => "public", Signed => "signed", Followers => "followers" }
);

string_enum!(
    /// Where a broadcast is in its life. `starting`: asked for, waiting for the publisher;
    /// `live`: media is flowing; `ending`: stop asked, media finishing; `ended`/`failed`: over.
    StreamStatus { Starting => "starting", Live => "live", Ending => "ending", Ended => "ended", Failed => "failed" }
);

impl StreamStatus {
    /// Whether the broadcast still holds its owner's one live slot.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Starting | Self::Live | Self::Ending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["bob", "Bob_42", "Émilie", "ユーザー名", "ab_c", "x".repeat(25).as_str()] {
            assert!(Username::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "ab",
            "",
            "  ",
            "_bob",
            "bob!",
            "bob smith",
            "x".repeat(26).as_str(),
            "robert'); DROP TABLE users;--",
            "a\u{0000}b",
        ] {
            let e = Username::parse(bad).unwrap_err();
            assert_eq!(e.field, "username", "{bad}");
        }
        // Compatibility forms collapse: fullwidth letters are the same name.
        assert_eq!(Username::parse("ｂｏｂ").unwrap().as_str(), "bob");
        assert_eq!(Username::parse("ÉMILIE_名前").unwrap().key(), Username::parse("émilie_名前").unwrap().key());
        assert_eq!(Username::key_of(" ＢＯＢ "), "bob");
    }

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Bob@Example.COM ").unwrap().as_str(), "bob@example.com");
        for bad in ["bob", "bob@", "@example.com", "bob@example", "bo b@example.com", "a@b@c.com", "a@.com", "a@b..com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_are_bounded_and_hidden() {
        assert!(Password::parse("password", "short").is_err());
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        assert!(Password::parse("password", "        ").is_err());
        let p = Password::parse("password", "correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn titles_tags_categories_languages() {
        assert_eq!(StreamTitle::parse("  Speedrun  ").unwrap().as_str(), "Speedrun");
        assert!(StreamTitle::parse("").is_err());
        assert!(StreamTitle::parse("a\nb").is_err());
        assert!(StreamTitle::parse(&"x".repeat(141)).is_err());
        let tags = Tags::parse(&["Rust", "rust", "speed-run"]).unwrap();
        assert_eq!(tags.to_strings(), vec!["rust", "speed-run"]);
        assert!(Tags::parse(&["a b"]).is_err());
        assert!(Tags::parse(&["t"; 11]).is_err());
        assert_eq!(Category::parse("Games").unwrap().as_str(), "games");
        assert!(Category::parse("games; --").is_err());
        assert!(Language::parse("pt-BR").is_ok());
        assert!(Language::parse("english").is_err());
    }

    #[test]
    fn avatar_urls() {
        assert!(AvatarUrl::parse("https://cdn.example.com/a.png").is_ok());
        assert!(AvatarUrl::parse("javascript:alert(1)").is_err());
        assert!(AvatarUrl::parse("/relative.png").is_err());
    }

    #[test]
    fn enums_round_trip() {
        for s in StreamStatus::ALL {
            assert_eq!(StreamStatus::parse(s.as_str()), Some(*s));
        }
        assert!(StreamStatus::Ending.is_active());
        assert!(!StreamStatus::Ended.is_active());
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }
}
