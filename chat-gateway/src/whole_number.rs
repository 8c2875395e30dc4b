//! Integer fields that also take whole-number floats (`600.0`). JSON Schema counts `600.0` as an
//! integer, so a document that says `"type": "integer"` promises the server takes it; serde's
//! integer types alone refuse it. Fractions (`600.5`) and values out of the type's range are
//! still refused.
//!
//! Use with `#[serde(deserialize_with = "crate::whole_number::deserialize")]`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// Deserialize an integer `T` from a JSON integer or a whole-number float.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    // `any`: inside an internally tagged enum the value arrives buffered, as whatever JSON said.
    deserializer.deserialize_any(WholeNumber(PhantomData))
}

struct WholeNumber<T>(PhantomData<T>);

impl<T: TryFrom<i64> + TryFrom<u64>> Visitor<'_> for WholeNumber<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an integer in the range of {}", std::any::type_name::<T>())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // -2^63 and 2^63 are exact in f64; within them a whole float converts to i64 exactly.
        const BOUND: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() == 0.0 && (-BOUND..BOUND).contains(&v) {
            self.visit_i64(v as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    /// Shaped like the moderation actions: internally tagged, so values come buffered.
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(tag = "action", rename_all = "snake_case")]
    enum Action {
        Wait {
            #[serde(deserialize_with = "super::deserialize")]
            seconds: u32,
        },
        Long {
            #[serde(deserialize_with = "super::deserialize")]
            seconds: i64,
        },
    }

    fn parse(json: &str) -> Result<Action, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integers_and_whole_floats_are_taken() {
        assert_eq!(parse(r#"{"action":"wait","seconds":600}"#).unwrap(), Action::Wait { seconds: 600 });
        assert_eq!(parse(r#"{"action":"wait","seconds":24318.0}"#).unwrap(), Action::Wait { seconds: 24318 });
        assert_eq!(parse(r#"{"action":"wait","seconds":6e2}"#).unwrap(), Action::Wait { seconds: 600 });
        assert_eq!(parse(r#"{"action":"wait","seconds":-0.0}"#).unwrap(), Action::Wait { seconds: 0 });
        assert_eq!(parse(r#"{"action":"long","seconds":-5.0}"#).unwrap(), Action::Long { seconds: -5 });
    }

    #[test]
    fn fractions_ranges_and_other_types_are_refused() {
        for bad in [
            r#"{"action":"wait","seconds":600.5}"#,
            r#"{"action":"wait","seconds":-1}"#,
            r#"{"action":"wait","seconds":-1.0}"#,
            r#"{"action":"wait","seconds":4294967296}"#,
            r#"{"action":"wait","seconds":1e300}"#,
            r#"{"action":"wait","seconds":"600"}"#,
            r#"{"action":"wait","seconds":null}"#,
            r#"{"action":"long","seconds":9223372036854775808.0}"#,
            r#"{"action":"long","seconds":18446744073709551615}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
