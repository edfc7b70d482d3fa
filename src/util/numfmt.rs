//! Numbers as text in mtkit's outputs: a fixed count of significant digits, so that every
//! number in a CSV carries the same precision.

/// `x` with `sig` significant digits, trailing zeros kept, so every number in a CSV carries the
/// same precision; empty for NaN.
pub fn sig(x: f64, sig: usize) -> String {
    if x.is_nan() {
        return String::new();
    }
    if x == 0.0 {
        return format!("{:.*}", sig - 1, 0.0);
    }
    let mag = x.abs().log10().floor() as i32;
    let decimals = sig as i32 - 1 - mag;
    if (0..=20).contains(&decimals) {
        format!("{:.*}", decimals as usize, x)
    } else {
        format!("{:.*e}", sig - 1, x)
    }
}

/// Fifteen significant digits: what CSV and JSON outputs use.
pub fn num(x: f64) -> String {
    sig(x, 15)
}
