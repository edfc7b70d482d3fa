//! `mtkit report regress | table`: gain against proximity, and the paper's tables.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use mtkit::analysis::report::{
    paper_table, paper_table_csv, paper_table_latex, regressions_csv, scatter, shown_p, Groups,
    Regression,
};
use mtkit::analysis::stats::Table;

use mtkit::cli_support::output::{sig, table};

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
    /// Draw y against x with the fitted line of all rows, SVG or PNG by the file's extension
    /// (repeat the flag for both); colour by `target`, marker by `mix` when those columns
    /// exist.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Vec<PathBuf>,
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
    mtkit::analysis::stats::check_bootstrap(a.bootstrap, "--bootstrap")?;
    for path in &a.plot {
        mtkit::analysis::plot::ImageFormat::of(path)?;
    }
    let runs = Table::read(&a.runs)?;
    let groups = Groups::of(&runs, &a.x, &a.y, a.by.as_deref())?;
    if groups.pairs.is_empty() {
        bail!(
            "{}: no rows with both `{}` and `{}`",
            a.runs.display(),
            a.x,
            a.y
        );
    }
    if groups.left_out > 0 {
        eprintln!(
            "{}: {} rows with an empty `{}` or `{}` were left out (base runs have no PA)",
            a.runs.display(),
            groups.left_out,
            a.x,
            a.y
        );
    }
    let fits = groups.regress(a.bootstrap, a.seed)?;
    println!(
        "regression of `{}` on `{}` ({})",
        a.y,
        a.x,
        a.runs.display()
    );
    print!("{}", regression_table(&fits));
    if let Some(o) = &a.output {
        let csv = regressions_csv(&fits, &a.x, &a.y)?;
        mtkit::util::paths::write_atomic_bytes(o, csv.as_bytes())?;
    }
    if !a.plot.is_empty() {
        let all = &fits
            .iter()
            .find(|(g, _)| g == "all")
            .expect("every row is in `all`")
            .1;
        let figure = scatter(&runs, &a.x, &a.y, (all.intercept, all.slope))?;
        for path in &a.plot {
            mtkit::analysis::plot::save(&figure, path)?;
        }
    }
    Ok(())
}

fn regression_table(fits: &[(String, Regression)]) -> String {
    let rows: Vec<Vec<String>> = fits
        .iter()
        .map(|(g, r)| {
            vec![
                g.clone(),
                r.n.to_string(),
                format!("{} ± {}", sig(r.slope, 4), sig(r.slope_se, 2)),
                format!("{} ± {}", sig(r.intercept, 4), sig(r.intercept_se, 2)),
                sig(r.r, 4),
                sig(r.p_value, 3),
                sig(r.spearman, 4),
                sig(r.r2, 4),
                format!("[{}, {}]", sig(r.r_ci.0, 3), sig(r.r_ci.1, 3)),
            ]
        })
        .collect();
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
            "r 95% CI",
        ],
        &rows,
    )
}

fn run_table(a: TableArgs) -> Result<()> {
    let runs = Table::read(&a.runs)?;
    let rows = paper_table(&runs)?;
    let shown: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.mix.clone(),
                r.kind.clone(),
                r.n.to_string(),
                format!("{:.4}", r.target_loss),
                format!("{:.4}", r.general_loss),
                format!("{:+.2}%", 100.0 * r.ri),
                shown_p(r.p_value),
            ]
        })
        .collect();
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
        mtkit::util::paths::write_atomic_bytes(o, &paper_table_csv(&rows)?)?;
    }
    if let Some(o) = &a.latex {
        mtkit::util::paths::write_atomic_bytes(o, paper_table_latex(&rows).as_bytes())?;
    }
    Ok(())
}
