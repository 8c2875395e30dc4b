//! Kubernetes resource quantities (`100m`, `256Mi`, `1.5`, `1e3`), parsed as
//! k8s.io/apimachinery `pkg/api/resource` does, with its error texts.

pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
pub const SUFFIX: &str = "unable to parse quantity's suffix";
const NUMERIC: &str = "unable to parse numeric part of quantity";

/// The quantity's value (as f64: enough to compare requests with limits), or the parse error.
pub fn parse(s: &str) -> Result<f64, &'static str> {
    if s.is_empty() {
        return Err(FORMAT_WRONG);
    }
    let b = s.as_bytes();
    let mut pos = 0;
    if matches!(b[0], b'+' | b'-') {
        pos = 1;
    }
    let digits = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let num_end = digits(pos);
    let mut value_end = num_end;
    if value_end < b.len() && b[value_end] == b'.' {
        value_end = digits(value_end + 1);
    }
    // The suffix: letters from the set, an optional sign, digits; anything else is malformed.
    let suffix_start = value_end;
    let mut i = suffix_start + b[suffix_start..].iter().take_while(|c| b"eEinumkKMGTP".contains(c)).count();
    if i < b.len() && matches!(b[i], b'+' | b'-') {
        i += 1;
    }
    if digits(i) != b.len() {
        return Err(FORMAT_WRONG);
    }
    let number = &s[..value_end];
    let suffix = &s[suffix_start..];
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) && e.len() > 1 => match e[1..].parse::<i32>() {
            Ok(x) => 10f64.powi(x),
            Err(_) => return Err(SUFFIX),
        },
        _ => return Err(SUFFIX),
    };
    let n: f64 = match number.trim_start_matches('+') {
        "" | "-" => 0.0,
        n => n.trim_end_matches('.').parse().map_err(|_| NUMERIC)?,
    };
    Ok(n * multiplier)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantities_parse_like_apimachinery() {
        for (s, v) in [("100m", 0.1), ("256Mi", 268_435_456.0), ("1.5", 1.5), ("1e3", 1000.0), ("2Gi", 2147483648.0)] {
            assert_eq!(super::parse(s), Ok(v), "{s}");
        }
        for s in ["abc", "1.5.5", "10MB", "", "1Z"] {
            assert_eq!(super::parse(s), Err(super::FORMAT_WRONG), "{s}");
        }
        assert_eq!(super::parse("10Mk"), Err(super::SUFFIX));
    }
}
