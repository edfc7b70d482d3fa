//! Regression of gain on proximity: ordinary least squares with standard errors and
//! prediction intervals (Student t from statrs).

use anyhow::{bail, Context, Result};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A fitted line y = intercept + slope·x.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fit {
    /// Points.
    pub n: usize,
    /// Slope.
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
    /// Residual standard deviation (n − 2 degrees of freedom).
    pub sigma: f64,
    /// Mean of x.
    pub x_mean: f64,
    /// Σ(x − x̄)².
    pub sxx: f64,
}

impl Fit {
    /// Least squares over (x, y) pairs; needs at least 3 points and some spread in x.
    pub fn ols(x: &[f64], y: &[f64]) -> Result<Fit> {
        let n = x.len();
        if n < 3 {
            bail!("a regression needs at least 3 points, got {n}");
        }
        let xm = x.iter().sum::<f64>() / n as f64;
        let ym = y.iter().sum::<f64>() / n as f64;
        let sxx: f64 = x.iter().map(|v| (v - xm).powi(2)).sum();
        if sxx == 0.0 {
            bail!("a regression needs x values that vary (all {n} are {xm})");
        }
        let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - xm) * (b - ym)).sum();
        let slope = sxy / sxx;
        let intercept = ym - slope * xm;
        let sse: f64 = x
            .iter()
            .zip(y)
            .map(|(a, b)| (b - intercept - slope * a).powi(2))
            .sum();
        Ok(Fit {
            n,
            slope,
            intercept,
            sigma: (sse / (n - 2) as f64).sqrt(),
            x_mean: xm,
            sxx,
        })
    }

    /// Prediction at x0 with its two-sided `level` prediction interval for a new observation.
    pub fn predict(&self, x0: f64, level: f64) -> (f64, f64, f64) {
        let y = self.intercept + self.slope * x0;
        let t = StudentsT::new(0.0, 1.0, (self.n - 2) as f64)
            .expect("df > 0")
            .inverse_cdf(0.5 + level / 2.0);
        let se =
            self.sigma * (1.0 + 1.0 / self.n as f64 + (x0 - self.x_mean).powi(2) / self.sxx).sqrt();
        (y, y - t * se, y + t * se)
    }
}

/// Reads two named numeric columns of a CSV file (rows with an empty cell in either skipped).
pub fn read_xy(path: &std::path::Path, x: &str, y: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let h = r.headers()?.clone();
    let col = |name: &str| {
        h.iter().position(|c| c == name).with_context(|| {
            format!(
                "{}: no column `{name}` (columns: {})",
                path.display(),
                h.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let (ix, iy) = (col(x)?, col(y)?);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let (a, b) = (
            rec.get(ix).unwrap_or("").trim(),
            rec.get(iy).unwrap_or("").trim(),
        );
        if a.is_empty() || b.is_empty() {
            continue;
        }
        let parse = |s: &str, c: &str| {
            s.parse::<f64>().with_context(|| {
                format!(
                    "{}: row {}, column `{c}`: {s:?} is not a number",
                    path.display(),
                    i + 2
                )
            })
        };
        xs.push(parse(a, x)?);
        ys.push(parse(b, y)?);
    }
    Ok((xs, ys))
}

/// Percentile (linear interpolation between order statistics, as NumPy's default).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anscombe_first_set() {
        // Anscombe (1973), set I: slope 0.500, intercept 3.00.
        let x = [10.0, 8.0, 13.0, 9.0, 11.0, 14.0, 6.0, 4.0, 12.0, 7.0, 5.0];
        let y = [
            8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68,
        ];
        let f = Fit::ols(&x, &y).unwrap();
        assert!(
            (f.slope - 0.5001).abs() < 1e-4 && (f.intercept - 3.0001).abs() < 1e-4,
            "{f:?}"
        );
        // Prediction interval at x̄ = 9 by hand: se = σ·√(1 + 1/11), t(9, 0.975) = 2.262157.
        let (y9, lo, _) = f.predict(9.0, 0.95);
        let want = 2.262157 * f.sigma * (1.0 + 1.0 / 11.0f64).sqrt();
        assert!((y9 - lo - want).abs() < 1e-5, "{}", y9 - lo);
        assert!(Fit::ols(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(Fit::ols(&[1.0, 2.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn percentile_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert_eq!(percentile(&v, 0.025), 1.075);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }
}
