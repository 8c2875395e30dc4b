//! How much of its ladder a stream runs: decided by the operator's autoscaler, written in the
//! LiveStream's status, and carried out by the media workers.

/// How much of its ladder a stream gets. The source is always passed through (remuxed, not
/// re-encoded), so even `Passthrough` plays.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum LadderLevel {
    /// The source only: what a stream is degraded to when capacity runs out.
    Passthrough,
    /// The source plus the lowest rendition: a small audience.
    Reduced,
    /// The whole ladder.
    Full,
}

impl LadderLevel {
    pub const ALL: [Self; 3] = [Self::Passthrough, Self::Reduced, Self::Full];

    /// Lowercase, as flags and environment variables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passthrough => "passthrough",
            Self::Reduced => "reduced",
            Self::Full => "full",
        }
    }
}

impl std::str::FromStr for LadderLevel {
    type Err = String;

    /// Any case: `full`, `Full`.
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| "one of passthrough, reduced, full".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_parse_and_serialize_by_name() {
        assert!(LadderLevel::Passthrough < LadderLevel::Reduced && LadderLevel::Reduced < LadderLevel::Full);
        for l in LadderLevel::ALL {
            assert_eq!(l.as_str().parse::<LadderLevel>(), Ok(l));
            assert_eq!(serde_json::to_value(l).unwrap(), serde_json::json!(format!("{l:?}")));
        }
        assert_eq!("FULL".parse::<LadderLevel>(), Ok(LadderLevel::Full));
        assert!("huge".parse::<LadderLevel>().is_err());
    }
}
