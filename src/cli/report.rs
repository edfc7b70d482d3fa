//! `mtkit report regress | table`: gain against proximity, and the paper's tables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use mtkit::report::{regress, ttest};
use mtkit::stats::Table;

use mtkit::cli_support::output::{num, sig, table};

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Regress one column on another (default: relative improvement `ri` on proximity
    /// advantage `pa`): OLS slope and intercept with standard errors, Pearson r with a
    /// two-sided p-value, Spearman ρ, R², n, and a bootstrap 95% interval for r. Any CSV with
    /// the two columns works.
    Regress(RegressArgs),
    /// The paper's table shape from a runs table: per target and mix, mean target (SFT) loss,
    /// mean general loss, mean relative improvement, and Student's t-test p-value of the
    /// target loss over seeds against the base runs. Needs columns target, mix, kind, seed,
    /// target_loss, general_loss (ri optional); rows of kind `base` are the baseline.
    Table(TableArgs),
}

#[derive(Args, Debug)]
pub struct RegressArgs {
    /// CSV file.
    runs: PathBuf,
    /// Column of x.
    #[arg(long, default_value = "pa")]
    x: String,
    /// Column of y.
    #[arg(long, default_value = "ri")]
    y: String,
    /// One regression per value of this column (and one over all rows).
    #[arg(long, value_name = "COLUMN")]
    by: Option<String>,
    /// Write the results as CSV.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Bootstrap resamples for the interval of r.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Draw x against y with the fitted line as SVG; colour by `target`, marker by `mix`
    /// when those columns exist.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TableArgs {
    /// Runs table (CSV).
    runs: PathBuf,
    /// Write the table as CSV.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write the table as LaTeX (booktabs).
    #[arg(long, value_name = "FILE.tex")]
    latex: Option<PathBuf>,
}

pub fn run(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Regress(a) => run_regress(a),
        ReportCommand::Table(a) => run_table(a),
    }
}

fn run_regress(a: RegressArgs) -> Result<()> {
    let runs = Table::read(&a.runs)?;
    let (ix, iy) = (runs.column(&a.x)?, runs.column(&a.y)?);
    let ib = a.by.as_ref().map(|b| runs.column(b)).transpose()?;
    let mut groups: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut left_out = 0;
    for i in 0..runs.rows.len() {
        let (Some(x), Some(y)) = (runs.number(i, ix)?, runs.number(i, iy)?) else {
            left_out += 1; // e.g. base runs have no PA
            continue;
        };
        let all = groups.entry("all".into()).or_default();
        all.0.push(x);
        all.1.push(y);
        if let Some(b) = ib {
            let g = groups
                .entry(format!("{}={}", a.by.as_ref().unwrap(), runs.rows[i][b]))
                .or_default();
            g.0.push(x);
            g.1.push(y);
        }
    }
    if groups.is_empty() {
        bail!(
            "{}: no rows with both `{}` and `{}`",
            a.runs.display(),
            a.x,
            a.y
        );
    }
    if left_out > 0 {
        eprintln!(
            "{}: {left_out} rows with an empty `{}` or `{}` were left out (base runs have no PA)",
            a.runs.display(),
            a.x,
            a.y
        );
    }
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
    let mut shown = Vec::new();
    for (g, (x, y)) in &groups {
        let r = regress(x, y, a.bootstrap, a.seed).with_context(|| format!("group {g}"))?;
        w.write_record([
            g.clone(),
            a.x.clone(),
            a.y.clone(),
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
        shown.push(vec![
            g.clone(),
            r.n.to_string(),
            format!("{} ± {}", sig(r.slope, 4), sig(r.slope_se, 2)),
            format!("{} ± {}", sig(r.intercept, 4), sig(r.intercept_se, 2)),
            sig(r.r, 4),
            sig(r.p_value, 3),
            sig(r.spearman, 4),
            sig(r.r2, 4),
            format!("[{}, {}]", sig(r.r_ci.0, 3), sig(r.r_ci.1, 3)),
        ]);
    }
    println!(
        "regression of `{}` on `{}` ({})",
        a.y,
        a.x,
        a.runs.display()
    );
    print!(
        "{}",
        table(
            &[
                "group",
                "n",
                "slope ± se",
                "intercept ± se",
                "r",
                "p",
                "spearman",
                "R²",
                "r 95% CI"
            ],
            &shown
        )
    );
    let csv = String::from_utf8(w.into_inner()?)?;
    if let Some(o) = &a.output {
        mtkit::paths::write_atomic_bytes(o, csv.as_bytes())?;
    }
    if let Some(p) = &a.plot {
        let label = |i: usize, n: &str| {
            runs.find(n)
                .map(|c| runs.text(i, c).to_string())
                .unwrap_or_default()
        };
        let mut pts: Vec<(f64, f64, String, String)> = Vec::new();
        for i in 0..runs.rows.len() {
            if let (Some(x), Some(y)) = (runs.number(i, ix)?, runs.number(i, iy)?) {
                pts.push((x, y, label(i, "target"), label(i, "mix")));
            }
        }
        let (x, y) = &groups["all"];
        let r = regress(x, y, 0, 0)?;
        mtkit::paths::write_atomic_bytes(
            p,
            scatter(&pts, r.intercept, r.slope, &a.x, &a.y).as_bytes(),
        )?;
    }
    Ok(())
}

/// An SVG scatter plot with the fitted line, coloured by target and shaped by mix.
fn scatter(pts: &[(f64, f64, String, String)], a: f64, b: f64, xl: &str, yl: &str) -> String {
    let (w, h, m) = (640.0, 440.0, 60.0);
    let fin: Vec<&(f64, f64, String, String)> = pts
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    let (x0, x1) = fin
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.0), h.max(p.0))
        });
    let (y0, y1) = fin
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.1), h.max(p.1))
        });
    let pad = |l: f64, h: f64| {
        if h > l {
            ((h - l) * 0.08, h - l)
        } else {
            (0.5, 1.0)
        }
    };
    let ((px, sx), (py, sy)) = (pad(x0, x1), pad(y0, y1));
    let (x0, x1, y0, y1) = (x0 - px, x0 + sx + px, y0 - py, y0 + sy + py);
    let tx = |x: f64| m + (x - x0) / (x1 - x0) * (w - 2.0 * m);
    let ty = |y: f64| h - m - (y - y0) / (y1 - y0) * (h - 2.0 * m);
    let colors = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let mut targets: Vec<&str> = fin.iter().map(|p| p.2.as_str()).collect();
    targets.sort();
    targets.dedup();
    let mut mixes: Vec<&str> = fin.iter().map(|p| p.3.as_str()).collect();
    mixes.sort();
    mixes.dedup();
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\n");
    s.push_str(&format!("<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/><line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"#000\"/>\n", h - m, w - m, h - m, h - m));
    for k in 0..=4 {
        let xv = x0 + (x1 - x0) * k as f64 / 4.0;
        let yv = y0 + (y1 - y0) * k as f64 / 4.0;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            tx(xv),
            h - m + 16.0,
            sig(xv, 3)
        ));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            m - 4.0,
            ty(yv) + 4.0,
            sig(yv, 3)
        ));
    }
    s.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{xl}</text>\n<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">{yl}</text>\n", w / 2.0, h - 16.0, h / 2.0));
    s.push_str(&format!("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#555\" stroke-dasharray=\"5,4\"/>\n", tx(x0), ty(a + b * x0), tx(x1), ty(a + b * x1)));
    for p in &fin {
        let c = colors[targets.iter().position(|t| *t == p.2).unwrap_or(0) % colors.len()];
        let (x, y) = (tx(p.0), ty(p.1));
        s.push_str(&marker(
            mixes.iter().position(|t| *t == p.3).unwrap_or(0),
            x,
            y,
            c,
        ));
        s.push('\n');
    }
    for (i, mix) in mixes.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
        let y = h - m - 14.0 * (mixes.len() - i) as f64;
        s.push_str(&marker(i, w - m - 100.0, y - 4.0, "#444"));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{y}\">{mix}</text>\n",
            w - m - 90.0
        ));
    }
    for (i, t) in targets.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{}\">{t}</text>\n",
            w - m - 100.0,
            m + 14.0 * i as f64,
            colors[i % colors.len()]
        ));
    }
    s.push_str("</svg>\n");
    s
}

/// Marker `i` (circle, square, triangle, diamond, repeating) centred at (x, y).
fn marker(i: usize, x: f64, y: f64, c: &str) -> String {
    match i % 4 {
        0 => format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"5\" fill=\"{c}\"/>"),
        1 => format!(
            "<rect x=\"{}\" y=\"{}\" width=\"9\" height=\"9\" fill=\"{c}\"/>",
            x - 4.5,
            y - 4.5
        ),
        2 => format!(
            "<polygon points=\"{x},{} {},{} {},{}\" fill=\"{c}\"/>",
            y - 6.0,
            x - 5.5,
            y + 4.0,
            x + 5.5,
            y + 4.0
        ),
        _ => format!(
            "<polygon points=\"{x},{} {},{y} {x},{} {},{y}\" fill=\"{c}\"/>",
            y - 6.0,
            x + 6.0,
            y + 6.0,
            x - 6.0
        ),
    }
}

fn run_table(a: TableArgs) -> Result<()> {
    let runs = Table::read(&a.runs)?;
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
    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
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
    let mut tex = String::from("\\begin{tabular}{lllrrrr}\n\\toprule\nTarget & Mix & Kind & SFT loss & General loss & RI (\\%) & $p$ \\\\\n\\midrule\n");
    let mut shown = Vec::new();
    for ((target, mix, kind), (tl, gl, ri)) in &cells {
        let base = cells
            .iter()
            .find(|((t, _, k), _)| t == target && k == "base")
            .map(|(_, v)| &v.0);
        let p = match base {
            Some(b) if kind != "base" => ttest(tl, b).map(|x| x.1).ok(),
            _ => None,
        };
        let ri_m = if kind == "base" { 0.0 } else { mean(ri) };
        w.write_record([
            target.clone(),
            mix.clone(),
            kind.clone(),
            tl.len().to_string(),
            num(mean(tl)),
            num(mean(gl)),
            num(ri_m),
            p.map(num).unwrap_or_default(),
        ])?;
        let p_s = p.map(|x| sig(x, 3)).unwrap_or_else(|| "--".into());
        tex.push_str(&format!(
            "{} & {} & {} & {:.3} & {:.3} & {:+.2} & {} \\\\\n",
            target.replace('_', "\\_"),
            mix.replace('_', "\\_"),
            kind,
            mean(tl),
            mean(gl),
            100.0 * ri_m,
            p_s
        ));
        shown.push(vec![
            target.clone(),
            mix.clone(),
            kind.clone(),
            tl.len().to_string(),
            format!("{:.4}", mean(tl)),
            format!("{:.4}", mean(gl)),
            format!("{:+.2}%", 100.0 * ri_m),
            p_s,
        ]);
    }
    tex.push_str("\\bottomrule\n\\end{tabular}\n");
    print!(
        "{}",
        table(
            &[
                "target",
                "mix",
                "kind",
                "seeds",
                "SFT loss",
                "general loss",
                "RI",
                "p (t-test vs base)"
            ],
            &shown
        )
    );
    if let Some(o) = &a.output {
        mtkit::paths::write_atomic_bytes(o, &w.into_inner()?)?;
    }
    if let Some(o) = &a.latex {
        mtkit::paths::write_atomic_bytes(o, tex.as_bytes())?;
    }
    Ok(())
}
