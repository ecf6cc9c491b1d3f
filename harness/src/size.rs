//! Sizes as people write and read them: `256KiB`, `1.5 MiB`.

/// A byte count as people read it: `4096 bytes`, `64 KiB`, `1.5 MiB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            let whole = bytes / unit;
            let tenths = (bytes % unit) * 10 / unit;
            return if tenths == 0 {
                format!("{whole} {name}")
            } else {
                format!("{whole}.{tenths} {name}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// Parses a size: bytes, or a number with KiB/MiB/GiB (or K/M/G), with
/// decimals where a unit makes them whole bytes (`1.5MiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let not_a_size = || format!("`{text}` is not a size (hint: e.g. 262144, 256KiB, 1.5MiB)");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') {
        return Err(not_a_size());
    }
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (hint: KiB, MiB or GiB)"
            ))
        }
    };
    let too_large = || {
        format!(
            "`{text}` is too large (hint: sizes are at most {} bytes)",
            u64::MAX
        )
    };
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_mul(scale).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // The fraction's digits, as bytes: exact or refused.
        let digits = u32::try_from(fraction.len()).map_err(|_| not_a_size())?;
        let denominator = 10u128.checked_pow(digits).ok_or_else(not_a_size)?;
        let numerator =
            u128::from(fraction.parse::<u64>().map_err(|_| not_a_size())?) * u128::from(scale);
        if numerator % denominator != 0 {
            return Err(format!(
                "`{text}` is not a whole number of bytes (hint: e.g. 1.5MiB, 262144)"
            ));
        }
        let extra = u64::try_from(numerator / denominator).map_err(|_| too_large())?;
        bytes = bytes.checked_add(extra).ok_or_else(too_large)?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(512), "512 bytes");
        assert_eq!(size_text(64 * 1024), "64 KiB");
        assert_eq!(size_text(1536 * 1024), "1.5 MiB");
    }

    #[test]
    fn sizes_parse_with_units_and_decimals_and_never_overflow() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("256KiB"), Ok(256 << 10));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("2 G"), Ok(2 << 30));
        for (text, says) in [
            ("17179869184GiB", "too large"),
            ("99999999999999999999", "too large"),
            ("1.3B", "not a whole number of bytes"),
            ("1.2.3K", "not a size"),
            (".5K", "not a size"),
            ("12 parsecs", "unknown size unit"),
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
