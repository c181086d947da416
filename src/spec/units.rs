//! Units of the spec: durations (`250ms`, `30s`, `5m`, `1h`, bare integer = seconds)
//! and sizes (`512MiB`, `2GiB`, `8gb`, `10m`; every k/m/g/t is 1024-based, as Docker,
//! nginx and Redis read them).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Regex (JSON-schema dialect) a duration string must match.
pub const DURATION_PATTERN: &str = r"^[0-9]+(ms|s|m|h)?$";
/// Regex (JSON-schema dialect) a size string must match.
pub const SIZE_PATTERN: &str = r"^[0-9]+([kKmMgGtT]([iI]?[bB])?|[bB])?$";

/// A span of time, held in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: u64,
}

impl Duration {
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }
    pub const fn from_secs(secs: u64) -> Self {
        Self { millis: secs.saturating_mul(1000) }
    }
    pub const fn as_millis(self) -> u64 {
        self.millis
    }
    pub fn as_secs_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }
    /// Whole seconds, rounded up: config files that only take seconds must never
    /// shorten a timeout.
    pub const fn as_secs_ceil(self) -> u64 {
        self.millis.div_ceil(1000)
    }

    /// Parses `250ms`, `30s`, `5m`, `1h` or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("`{text}` is not a duration: expected a number followed by ms, s, m or h (e.g. `250ms`, `30s`)"));
        }
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is too large for a duration"))?;
        let factor = match unit {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => {
                return Err(format!("unknown duration unit `{other}` in `{text}`: use ms, s, m or h"));
            }
        };
        number
            .checked_mul(factor)
            .map(Self::from_millis)
            .ok_or_else(|| format!("`{text}` is too large for a duration"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis;
        if ms == 0 {
            write!(f, "0s")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms >= 60_000 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// A size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize {
    bytes: u64,
}

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

impl ByteSize {
    pub const fn from_bytes(bytes: u64) -> Self {
        Self { bytes }
    }
    pub const fn from_mib(mib: u64) -> Self {
        Self { bytes: mib.saturating_mul(MIB) }
    }
    pub const fn bytes(self) -> u64 {
        self.bytes
    }
    pub const fn mib(self) -> u64 {
        self.bytes / MIB
    }

    /// Parses `512MiB`, `2GiB`, `8gb`, `512mb`, `10m`, `64k` or a bare byte count.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("`{text}` is not a size: expected a number followed by k, m, g or t (e.g. `512MiB`, `2GiB`, `8gb`)"));
        }
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is too large for a size"))?;
        let lower = unit.to_ascii_lowercase();
        let scale = match lower.as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => KIB,
            "m" | "mb" | "mib" => MIB,
            "g" | "gb" | "gib" => GIB,
            "t" | "tb" | "tib" => GIB * 1024,
            _ => return Err(format!("unknown size unit `{unit}` in `{text}`: use k, m, g or t (1024-based), e.g. `512MiB`")),
        };
        number
            .checked_mul(scale)
            .map(Self::from_bytes)
            .ok_or_else(|| format!("`{text}` is too large for a size"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes;
        for (scale, suffix) in [(GIB * 1024, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if b >= scale && b.is_multiple_of(scale) {
                return write!(f, "{}{suffix}", b / scale);
            }
        }
        write!(f, "{b}B")
    }
}

macro_rules! unit_serde {
    ($ty:ident, $what:literal, $pattern:ident, $example:literal, $int_meaning:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct UnitVisitor;
                impl Visitor<'_> for UnitVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} such as `{}`", $what, $example)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        $ty::parse(&v.to_string()).map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        if v < 0 {
                            return Err(E::custom(format!("a {} cannot be negative", $what)));
                        }
                        self.visit_u64(v as u64)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::parse(v).map_err(E::custom)
                    }
                }
                deserializer.deserialize_any(UnitVisitor)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": concat!("A ", $what, ", e.g. `", $example, "`; ", $int_meaning),
                    "anyOf": [
                        { "type": "integer", "minimum": 0 },
                        { "type": "string", "pattern": $pattern }
                    ]
                })
            }
        }
    };
}

unit_serde!(Duration, "duration", DURATION_PATTERN, "250ms", "units ms, s, m, h; a bare integer is seconds.");
unit_serde!(ByteSize, "size", SIZE_PATTERN, "512MiB", "units k, m, g, t with optional b/ib, all 1024-based; a bare integer is bytes.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_every_documented_unit() {
        assert_eq!(Duration::parse("250ms").unwrap().as_millis(), 250);
        assert_eq!(Duration::parse("30s").unwrap().as_millis(), 30_000);
        assert_eq!(Duration::parse("5m").unwrap().as_millis(), 300_000);
        assert_eq!(Duration::parse("1h").unwrap().as_millis(), 3_600_000);
        assert_eq!(Duration::parse("600").unwrap().as_millis(), 600_000);
    }

    #[test]
    fn durations_reject_unknown_units_and_overflow() {
        assert!(Duration::parse("10d").unwrap_err().contains("unknown duration unit"));
        assert!(Duration::parse("ms").is_err());
        assert!(Duration::parse("99999999999999999999h").unwrap_err().contains("too large"));
        assert!(Duration::parse("18446744073709551615h").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_are_binary_whatever_the_spelling() {
        for text in ["8gb", "8GiB", "8g", "8G", "8GB"] {
            assert_eq!(ByteSize::parse(text).unwrap().bytes(), 8 * GIB, "{text}");
        }
        assert_eq!(ByteSize::parse("512MiB").unwrap().mib(), 512);
        assert_eq!(ByteSize::parse("10m").unwrap().bytes(), 10 * MIB);
        assert_eq!(ByteSize::parse("64k").unwrap().bytes(), 64 * KIB);
        assert_eq!(ByteSize::parse("100").unwrap().bytes(), 100);
    }

    #[test]
    fn sizes_reject_garbage() {
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("2 GiBs").is_err());
        assert!(ByteSize::parse("99999999999t").unwrap_err().contains("too large"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["250ms", "30s", "5m", "1h", "1500ms"] {
            assert_eq!(Duration::parse(text).unwrap().to_string(), text);
        }
        for text in ["512MiB", "2GiB", "64KiB", "100B"] {
            assert_eq!(ByteSize::parse(text).unwrap().to_string(), text);
        }
    }
}
