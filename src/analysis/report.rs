//! Reports: the regression of gain on proximity and the paper's tables.
//!
//! `regress`: ordinary least squares y = a + b·x ([`crate::analysis::stats::Fit`], with standard
//! errors), Pearson r with a two-sided p-value (t = r√(n−2)/√(1−r²),
//! Student t with n − 2 degrees of freedom), Spearman ρ (Pearson on average ranks), R², and a
//! percentile bootstrap interval for r over resampled pairs. `ttest`: Student's two-sample
//! t-test with equal variances, two-sided, as the paper compares seeds of base and midtrained
//! models.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::analysis::plot::{Scatter, ScatterPoint};
use crate::analysis::stats::Table;
use crate::util::numfmt::{num, sig};
use crate::util::rng::{mix64, Rng};

/// One regression of y on x.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Regression {
    /// Points.
    pub n: usize,
    /// OLS slope.
    pub slope: f64,
    /// Its standard error.
    pub slope_se: f64,
    /// OLS intercept.
    pub intercept: f64,
    /// Its standard error.
    pub intercept_se: f64,
    /// Pearson correlation.
    pub r: f64,
    /// Two-sided p-value of r (equivalently of the slope).
    pub p_value: f64,
    /// Spearman rank correlation.
    pub spearman: f64,
    /// Coefficient of determination.
    pub r2: f64,
    /// 95% percentile bootstrap interval of r.
    pub r_ci: (f64, f64),
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    sxy / (sxx.sqrt() * syy.sqrt())
}

/// Average ranks (1-based), ties sharing the mean of their positions.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            out[idx[k]] = avg;
        }
        i = j + 1;
    }
    out
}

fn t_two_sided(t: f64, df: f64) -> f64 {
    let d = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    (2.0 * (1.0 - d.cdf(t.abs()))).clamp(0.0, 1.0)
}

/// Regresses y on x; needs at least 3 points and variance in both.
pub fn regress(x: &[f64], y: &[f64], bootstrap: usize, seed: u64) -> Result<Regression> {
    let n = x.len();
    if n != y.len() {
        bail!("x and y have different lengths ({n} and {})", y.len());
    }
    if n < 3 {
        bail!("a regression needs at least 3 points, got {n}");
    }
    crate::analysis::stats::check_bootstrap(bootstrap, "--bootstrap")?;
    let var = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|a| (a - m).powi(2)).sum::<f64>()
    };
    if var(x) == 0.0 {
        bail!("x has zero variance (all {n} values are {})", x[0]);
    }
    if var(y) == 0.0 {
        bail!("y has zero variance (all {n} values are {})", y[0]);
    }
    let fit = crate::analysis::stats::Fit::ols(x, y)?;
    let r = pearson(x, y);
    let t = r * ((n - 2) as f64).sqrt() / (1.0 - r * r).max(0.0).sqrt();
    let p_value = if t.is_finite() {
        t_two_sided(t, (n - 2) as f64)
    } else {
        0.0
    };
    let mut rs = Vec::with_capacity(bootstrap);
    for k in 0..bootstrap {
        let mut rng = Rng::new(mix64(seed ^ mix64(k as u64)));
        let pick: Vec<usize> = (0..n).map(|_| rng.below(n as u64) as usize).collect();
        let bx: Vec<f64> = pick.iter().map(|&i| x[i]).collect();
        let by: Vec<f64> = pick.iter().map(|&i| y[i]).collect();
        if var(&bx) > 0.0 && var(&by) > 0.0 {
            rs.push(pearson(&bx, &by));
        }
    }
    rs.sort_by(|a, b| a.total_cmp(b));
    let r_ci = if rs.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (
            crate::analysis::stats::percentile(&rs, 0.025),
            crate::analysis::stats::percentile(&rs, 0.975),
        )
    };
    Ok(Regression {
        n,
        slope: fit.slope,
        slope_se: fit.slope_se,
        intercept: fit.intercept,
        intercept_se: fit.intercept_se,
        r,
        p_value,
        spearman: pearson(&ranks(x), &ranks(y)),
        r2: r * r,
        r_ci,
    })
}

/// Student's two-sample t-test with equal variances: (t, two-sided p).
pub fn ttest(a: &[f64], b: &[f64]) -> Result<(f64, f64)> {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.len() < 2 || b.len() < 2 {
        bail!(
            "a t-test needs at least 2 values per group (got {} and {})",
            a.len(),
            b.len()
        );
    }
    let (m1, m2) = (a.iter().sum::<f64>() / n1, b.iter().sum::<f64>() / n2);
    let s1 = a.iter().map(|v| (v - m1).powi(2)).sum::<f64>() / (n1 - 1.0);
    let s2 = b.iter().map(|v| (v - m2).powi(2)).sum::<f64>() / (n2 - 1.0);
    let df = n1 + n2 - 2.0;
    let sp = (((n1 - 1.0) * s1 + (n2 - 1.0) * s2) / df).sqrt();
    if sp == 0.0 {
        bail!("a t-test needs some spread within the groups");
    }
    let t = (m1 - m2) / (sp * (1.0 / n1 + 1.0 / n2).sqrt());
    Ok((t, t_two_sided(t, df)))
}

/// Pairs (x, y) of a runs table's two numeric columns, grouped: `all`, and with `by`, one group
/// per value of that column (`by=VALUE`). Rows where either column is empty are left out and
/// counted (base runs have no PA).
pub struct Groups {
    /// Group name → (x values, y values), in name order.
    pub pairs: BTreeMap<String, (Vec<f64>, Vec<f64>)>,
    /// Rows left out for an empty x or y.
    pub left_out: usize,
}

impl Groups {
    /// Reads columns `x` and `y` of `runs`, grouped by column `by` if given.
    pub fn of(runs: &Table, x: &str, y: &str, by: Option<&str>) -> Result<Groups> {
        let (ix, iy) = (runs.column(x)?, runs.column(y)?);
        let ib = by.map(|b| runs.column(b)).transpose()?;
        let mut pairs: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        let mut left_out = 0;
        for i in 0..runs.rows.len() {
            let (Some(xv), Some(yv)) = (runs.number(i, ix)?, runs.number(i, iy)?) else {
                left_out += 1;
                continue;
            };
            let mut add = |g: String| {
                let e = pairs.entry(g).or_default();
                e.0.push(xv);
                e.1.push(yv);
            };
            add("all".into());
            if let (Some(b), Some(name)) = (ib, by) {
                add(format!("{name}={}", runs.rows[i][b]));
            }
        }
        Ok(Groups { pairs, left_out })
    }

    /// The regression of every group, in name order.
    pub fn regress(&self, bootstrap: usize, seed: u64) -> Result<Vec<(String, Regression)>> {
        self.pairs
            .iter()
            .map(|(g, (x, y))| {
                let r = regress(x, y, bootstrap, seed).with_context(|| format!("group {g}"))?;
                Ok((g.clone(), r))
            })
            .collect()
    }
}

/// The regressions as CSV: group, x, y, n, slope, slope_se, intercept, intercept_se, r,
/// p_value, spearman, r2, r_lo, r_hi (15 significant digits).
pub fn regressions_csv(rows: &[(String, Regression)], x: &str, y: &str) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "group",
        "x",
        "y",
        "n",
        "slope",
        "slope_se",
        "intercept",
        "intercept_se",
        "r",
        "p_value",
        "spearman",
        "r2",
        "r_lo",
        "r_hi",
    ])?;
    for (g, r) in rows {
        w.write_record([
            g.clone(),
            x.to_string(),
            y.to_string(),
            r.n.to_string(),
            num(r.slope),
            num(r.slope_se),
            num(r.intercept),
            num(r.intercept_se),
            num(r.r),
            num(r.p_value),
            num(r.spearman),
            num(r.r2),
            num(r.r_ci.0),
            num(r.r_ci.1),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The regressions as a DataFrame with [`regressions_csv`]'s columns, numbers as the exact
/// f64s: what the Python package returns.
pub fn regressions_frame(
    rows: &[(String, Regression)],
    x: &str,
    y: &str,
) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let f =
        |g: &dyn Fn(&Regression) -> f64| -> Vec<f64> { rows.iter().map(|(_, r)| g(r)).collect() };
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "group".into(),
            rows.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>(),
        ),
        Column::new("x".into(), vec![x.to_string(); rows.len()]),
        Column::new("y".into(), vec![y.to_string(); rows.len()]),
        Column::new(
            "n".into(),
            rows.iter().map(|(_, r)| r.n as u64).collect::<Vec<u64>>(),
        ),
        Column::new("slope".into(), f(&|r| r.slope)),
        Column::new("slope_se".into(), f(&|r| r.slope_se)),
        Column::new("intercept".into(), f(&|r| r.intercept)),
        Column::new("intercept_se".into(), f(&|r| r.intercept_se)),
        Column::new("r".into(), f(&|r| r.r)),
        Column::new("p_value".into(), f(&|r| r.p_value)),
        Column::new("spearman".into(), f(&|r| r.spearman)),
        Column::new("r2".into(), f(&|r| r.r2)),
        Column::new("r_lo".into(), f(&|r| r.r_ci.0)),
        Column::new("r_hi".into(), f(&|r| r.r_ci.1)),
    ])?)
}

/// The scatter of `y` against `x` for every row with both, coloured by `target` and shaped by
/// `mix` where those columns exist, with the line `fit` = (intercept, slope).
pub fn scatter(runs: &Table, x: &str, y: &str, fit: (f64, f64)) -> Result<Scatter> {
    let (ix, iy) = (runs.column(x)?, runs.column(y)?);
    let label = |i: usize, n: &str| {
        runs.find(n)
            .map(|c| runs.text(i, c).to_string())
            .unwrap_or_default()
    };
    let mut points = Vec::new();
    for i in 0..runs.rows.len() {
        if let (Some(xv), Some(yv)) = (runs.number(i, ix)?, runs.number(i, iy)?) {
            points.push(ScatterPoint {
                x: xv,
                y: yv,
                colour_group: label(i, "target"),
                marker_group: label(i, "mix"),
            });
        }
    }
    Ok(Scatter {
        title: format!("{y} against {x}"),
        x_label: x.to_string(),
        y_label: y.to_string(),
        points,
        fit: Some(fit),
        colour_title: "target".into(),
        marker_title: "mix".into(),
    })
}

/// One row of the paper's table: a (target, mix, kind) cell averaged over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperRow {
    pub target: String,
    pub mix: String,
    pub kind: String,
    /// Seeds (runs) in the cell.
    pub n: usize,
    /// Mean target (SFT) loss.
    pub target_loss: f64,
    /// Mean general loss.
    pub general_loss: f64,
    /// Mean relative improvement (0 for base rows; NaN when no run has one).
    pub ri: f64,
    /// Student's t-test p of the target losses against the base runs of the same target.
    pub p_value: Option<f64>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The paper's table from a runs table with columns target, mix, kind, seed, target_loss,
/// general_loss (ri optional), in (target, mix, kind) order.
pub fn paper_table(runs: &Table) -> Result<Vec<PaperRow>> {
    let need = [
        "target",
        "mix",
        "kind",
        "seed",
        "target_loss",
        "general_loss",
    ];
    let idx: Vec<usize> = need.iter().map(|c| runs.column(c)).collect::<Result<_>>()?;
    let iri = runs.find("ri");
    // (target, mix, kind) → (target losses, general losses, ri)
    type Cell = (Vec<f64>, Vec<f64>, Vec<f64>);
    let mut cells: BTreeMap<(String, String, String), Cell> = BTreeMap::new();
    for i in 0..runs.rows.len() {
        let key = |k: usize| runs.text(i, idx[k]).to_string();
        let e = cells.entry((key(0), key(1), key(2))).or_default();
        e.0.push(runs.required(i, idx[4])?);
        e.1.push(runs.required(i, idx[5])?);
        if let Some(ri) = iri.map(|c| runs.number(i, c)).transpose()?.flatten() {
            e.2.push(ri);
        }
    }
    let base_of = |target: &str| {
        cells
            .iter()
            .find(|((t, _, k), _)| t == target && k == "base")
            .map(|(_, v)| &v.0)
    };
    Ok(cells
        .iter()
        .map(|((target, mix, kind), (tl, gl, ri))| {
            let p_value = match base_of(target) {
                Some(b) if kind != "base" => ttest(tl, b).map(|x| x.1).ok(),
                _ => None,
            };
            PaperRow {
                target: target.clone(),
                mix: mix.clone(),
                kind: kind.clone(),
                n: tl.len(),
                target_loss: mean(tl),
                general_loss: mean(gl),
                ri: if kind == "base" { 0.0 } else { mean(ri) },
                p_value,
            }
        })
        .collect())
}

/// The paper's table as CSV: target, mix, kind, n, target_loss, general_loss, ri, p_value.
pub fn paper_table_csv(rows: &[PaperRow]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "target",
        "mix",
        "kind",
        "n",
        "target_loss",
        "general_loss",
        "ri",
        "p_value",
    ])?;
    for r in rows {
        w.write_record([
            r.target.clone(),
            r.mix.clone(),
            r.kind.clone(),
            r.n.to_string(),
            num(r.target_loss),
            num(r.general_loss),
            num(r.ri),
            r.p_value.map(num).unwrap_or_default(),
        ])?;
    }
    Ok(w.into_inner()?)
}

/// The p-value as the tables show it: 3 significant digits, `--` where there is none.
pub fn shown_p(p: Option<f64>) -> String {
    p.map(|x| sig(x, 3)).unwrap_or_else(|| "--".into())
}

/// The paper's table as a LaTeX tabular (booktabs).
pub fn paper_table_latex(rows: &[PaperRow]) -> String {
    let mut tex = String::from("\\begin{tabular}{lllrrrr}\n\\toprule\nTarget & Mix & Kind & SFT loss & General loss & RI (\\%) & $p$ \\\\\n\\midrule\n");
    for r in rows {
        tex.push_str(&format!(
            "{} & {} & {} & {:.3} & {:.3} & {:+.2} & {} \\\\\n",
            r.target.replace('_', "\\_"),
            r.mix.replace('_', "\\_"),
            r.kind,
            r.target_loss,
            r.general_loss,
            100.0 * r.ri,
            shown_p(r.p_value)
        ));
    }
    tex.push_str("\\bottomrule\n\\end{tabular}\n");
    tex
}

#[cfg(test)]
mod tests {
    use super::*;

    const AX: [f64; 11] = [10.0, 8.0, 13.0, 9.0, 11.0, 14.0, 6.0, 4.0, 12.0, 7.0, 5.0];
    const AY: [f64; 11] = [
        8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68,
    ];

    #[test]
    fn anscombe_first_set() {
        // Anscombe (1973) set I: r = 0.816, slope 0.500, intercept 3.00, R² = 0.67;
        // standard errors (textbook OLS output): slope 0.118, intercept 1.125.
        let r = regress(&AX, &AY, 200, 1).unwrap();
        assert!((r.r - 0.816).abs() < 5e-4, "{r:?}");
        assert!((r.slope - 0.500).abs() < 5e-4 && (r.intercept - 3.00).abs() < 5e-3);
        assert!((r.r2 - 0.67).abs() < 5e-3);
        assert!(
            (r.slope_se - 0.118).abs() < 5e-4 && (r.intercept_se - 1.125).abs() < 5e-4,
            "{r:?}"
        );
        assert!(
            r.p_value < 0.01 && r.p_value > 0.001,
            "p ≈ 0.00217: {}",
            r.p_value
        );
        assert!(r.r_ci.0 < r.r && r.r < r.r_ci.1);
    }

    #[test]
    fn spearman_and_ranks_by_hand() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        // A monotone but non-linear relation has ρ = 1.
        let r = regress(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0], 0, 0).unwrap();
        assert!((r.spearman - 1.0).abs() < 1e-12 && r.r < 1.0);
    }

    #[test]
    fn student_t_test_textbook_case() {
        // Two samples of six (a standard worked example of Student's t-test): t = 1.959,
        // df = 10, two-sided p = 0.07857.
        let a = [30.02, 29.99, 30.11, 29.97, 30.01, 29.99];
        let b = [29.89, 29.93, 29.72, 29.98, 30.02, 29.98];
        let (t, p) = ttest(&a, &b).unwrap();
        assert!((t - 1.959).abs() < 5e-4, "{t}");
        assert!((p - 0.07857).abs() < 5e-5, "{p}");
    }

    #[test]
    fn degenerate_inputs_fail() {
        assert!(regress(&[1.0, 2.0], &[1.0, 2.0], 0, 0)
            .unwrap_err()
            .to_string()
            .contains("at least 3"));
        assert!(regress(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], 0, 0)
            .unwrap_err()
            .to_string()
            .contains("x has zero variance"));
        assert!(regress(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0], 0, 0)
            .unwrap_err()
            .to_string()
            .contains("y has zero variance"));
    }
}
