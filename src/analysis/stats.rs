//! Ordinary least squares of y on x, the one fit of mtkit: coefficients and their standard
//! errors σ²(XᵀX)⁻¹ (through ndarray-linalg), and prediction intervals for a new observation
//! (Student t from statrs). `report regress` and `suggest-mix --fit` both use it. Also the
//! percentiles of bootstrap intervals.

use anyhow::{bail, Context, Result};
use ndarray::{Array1, Array2};
use ndarray_linalg::{Inverse, LeastSquaresSvd};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A fitted line y = intercept + slope·x.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fit {
    /// Points.
    pub n: usize,
    /// Slope.
    pub slope: f64,
    /// Its standard error.
    pub slope_se: f64,
    /// Intercept.
    pub intercept: f64,
    /// Its standard error.
    pub intercept_se: f64,
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
        if n != y.len() {
            bail!("x and y have different lengths ({n} and {})", y.len());
        }
        if n < 3 {
            bail!("a regression needs at least 3 points, got {n}");
        }
        let x_mean = x.iter().sum::<f64>() / n as f64;
        let sxx: f64 = x.iter().map(|v| (v - x_mean).powi(2)).sum();
        if sxx == 0.0 {
            bail!("a regression needs x values that vary (all {n} are {x_mean})");
        }
        let design = Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { 1.0 } else { x[i] });
        let fit = design.least_squares(&Array1::from(y.to_vec()))?;
        let (intercept, slope) = (fit.solution[0], fit.solution[1]);
        let sse: f64 = x
            .iter()
            .zip(y)
            .map(|(a, b)| (b - intercept - slope * a).powi(2))
            .sum();
        let sigma2 = sse / (n - 2) as f64;
        let cov = design.t().dot(&design).inv()? * sigma2;
        Ok(Fit {
            n,
            slope,
            slope_se: cov[[1, 1]].sqrt(),
            intercept,
            intercept_se: cov[[0, 0]].sqrt(),
            sigma: sigma2.sqrt(),
            x_mean,
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

/// A CSV table with a header, such as the runs.csv that `mtkit verify` writes: the one reader
/// of such tables (`report regress`, `report table`, `suggest-mix --fit`). Cells are read as
/// numbers on demand, with errors naming the file, row (as a spreadsheet counts: the header is
/// row 1) and column.
#[derive(Clone, Debug)]
pub struct Table {
    /// Where it was read from.
    pub path: std::path::PathBuf,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads a CSV file with a header row.
    pub fn read(path: &std::path::Path) -> Result<Table> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        Table::from_reader(path, file)
    }

    /// Reads CSV text with a header row; messages call it `path` (a DataFrame's name, say).
    pub fn from_reader(path: &std::path::Path, input: impl std::io::Read) -> Result<Table> {
        let mut r = csv::Reader::from_reader(input);
        let header: Vec<String> = r
            .headers()
            .with_context(|| format!("{}: no header row", path.display()))?
            .iter()
            .map(String::from)
            .collect();
        // Two columns of one name: which one a lookup means would be a guess.
        for (i, h) in header.iter().enumerate() {
            if let Some(j) = header[i + 1..].iter().position(|g| g == h) {
                bail!(
                    "{}: the header names column `{h}` twice (columns {} and {}); rename one",
                    path.display(),
                    i + 1,
                    i + j + 2
                );
            }
        }
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
            rows.push(rec.iter().map(String::from).collect());
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// The index of a column, if present.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The index of a column, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.find(name).with_context(|| {
            format!(
                "{}: no column `{name}` (columns: {})",
                self.path.display(),
                self.header.join(", ")
            )
        })
    }

    /// The text of a cell, trimmed (empty when the row is short).
    pub fn text(&self, row: usize, col: usize) -> &str {
        self.rows[row].get(col).map(|s| s.trim()).unwrap_or("")
    }

    /// A cell as a finite number; `None` when it is empty. Text that is not a number, `inf`
    /// and `NaN` are errors: no mean or regression means anything with them.
    pub fn number(&self, row: usize, col: usize) -> Result<Option<f64>> {
        let s = self.text(row, col);
        if s.is_empty() {
            return Ok(None);
        }
        let name = &self.header[col];
        let x = s.parse::<f64>().map_err(|_| {
            anyhow::anyhow!(
                "{}: row {}, column `{name}`: {s:?} is not a number",
                self.path.display(),
                row + 2
            )
        })?;
        if !x.is_finite() {
            bail!(
                "{}: row {}, column `{name}`: {s:?} is not a finite number",
                self.path.display(),
                row + 2
            );
        }
        Ok(Some(x))
    }

    /// A cell that must hold a finite number.
    pub fn required(&self, row: usize, col: usize) -> Result<f64> {
        self.number(row, col)?.with_context(|| {
            format!(
                "{}: row {}, column `{}` is empty",
                self.path.display(),
                row + 2,
                self.header[col]
            )
        })
    }

    /// Two named columns as (x, y) pairs, for the rows where both cells hold numbers; also
    /// how many rows were left out for an empty cell.
    pub fn xy(&self, x: &str, y: &str) -> Result<(Vec<f64>, Vec<f64>, usize)> {
        let (ix, iy) = (self.column(x)?, self.column(y)?);
        let (mut xs, mut ys, mut left_out) = (Vec::new(), Vec::new(), 0);
        for row in 0..self.rows.len() {
            match (self.number(row, ix)?, self.number(row, iy)?) {
                (Some(a), Some(b)) => {
                    xs.push(a);
                    ys.push(b);
                }
                _ => left_out += 1,
            }
        }
        Ok((xs, ys, left_out))
    }
}

/// Percentile (linear interpolation between order statistics, as NumPy's default).
/// The most bootstrap replicates mtkit draws: percentile intervals keep every replicate's
/// statistic (sorted), and 10,000 already put a 95% interval's ends within about ±0.5% of
/// their limit; more only costs time and memory.
pub const MAX_BOOTSTRAP: usize = 100_000;

/// Refuses a replicate count above [`MAX_BOOTSTRAP`], naming the option.
pub fn check_bootstrap(b: usize, option: &str) -> anyhow::Result<()> {
    if b > MAX_BOOTSTRAP {
        anyhow::bail!(
            "{option} {b}: at most {MAX_BOOTSTRAP} replicates (percentile intervals keep every replicate; 10,000 already give the interval's ends to about ±0.5%)"
        );
    }
    Ok(())
}

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
