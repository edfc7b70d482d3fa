//! `mtkit report regress | table` through the real binary, against textbook values.

mod common;
use common::*;

const ANSCOMBE: &str = "pa,ri,target\n10,8.04,a\n8,6.95,a\n13,7.58,a\n9,8.81,a\n11,8.33,a\n14,9.96,b\n6,7.24,b\n4,4.26,b\n12,10.84,b\n7,4.82,b\n5,5.68,b\n";

#[test]
fn regress_reproduces_anscombe_and_groups() {
    let sb = Sandbox::new();
    sb.write("runs.csv", ANSCOMBE);
    let out = sb.ok(&[
        "report", "regress", "runs.csv", "--by", "target", "-o", "reg.csv", "--plot", "reg.svg",
        "--plot", "reg.png",
    ]);
    assert!(out.contains("regression of `ri` on `pa`"), "{out}");
    let (header, rows) = parse_csv(&std::fs::read_to_string(sb.path("reg.csv")).unwrap());
    assert_eq!(
        header,
        [
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
            "r_hi"
        ]
    );
    let all = rows.iter().find(|r| r[0] == "all").unwrap();
    let f = |s: &str| s.parse::<f64>().unwrap();
    // Anscombe (1973), set I: slope 0.500, intercept 3.00, r 0.816; SEs 0.118 and 1.125.
    assert_eq!(all[3], "11");
    assert!(
        (f(&all[4]) - 0.500).abs() < 5e-4
            && (f(&all[6]) - 3.00).abs() < 5e-3
            && (f(&all[8]) - 0.816).abs() < 5e-4
    );
    assert!((f(&all[5]) - 0.118).abs() < 5e-4 && (f(&all[7]) - 1.125).abs() < 5e-4);
    assert!(f(&all[12]) < f(&all[8]) && f(&all[8]) < f(&all[13]));
    assert_eq!(
        rows.iter().filter(|r| r[0].starts_with("target=")).count(),
        2
    );
    // The figure: 11 points (no `mix` column: all circles) and one legend circle per target
    // (a, b); the legend names the targets and the fitted line; the PNG has the SVG's size.
    let svg = std::fs::read_to_string(sb.path("reg.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 11 + 2);
    let texts = svg_texts(&svg);
    for t in ["a", "b", "fitted line", "pa", "ri"] {
        assert!(texts.iter().any(|x| x == t), "{t} in {texts:?}");
    }
    assert_eq!(
        png_size(&std::fs::read(sb.path("reg.png")).unwrap()),
        svg_size(&svg)
    );
    // Same input, same bytes (seeded bootstrap; the figures' font is embedded).
    sb.ok(&[
        "report", "regress", "runs.csv", "--by", "target", "-o", "reg2.csv", "--plot", "reg2.png",
    ]);
    for (a, b) in [("reg.csv", "reg2.csv"), ("reg.png", "reg2.png")] {
        assert_eq!(
            std::fs::read(sb.path(a)).unwrap(),
            std::fs::read(sb.path(b)).unwrap(),
            "{a} and {b}"
        );
    }
}

#[test]
fn regress_rejects_bad_tables() {
    let sb = Sandbox::new();
    sb.write("few.csv", "pa,ri\n1,2\n2,3\n");
    assert!(sb
        .fails(&["report", "regress", "few.csv"])
        .contains("at least 3 points"));
    sb.write("flat.csv", "pa,ri\n1,2\n1,3\n1,4\n");
    assert!(sb
        .fails(&["report", "regress", "flat.csv"])
        .contains("x has zero variance"));
    sb.write("cols.csv", "x,y\n1,2\n");
    let e = sb.fails(&["report", "regress", "cols.csv"]);
    assert!(
        e.contains("no column `pa`") && e.contains("columns: x, y"),
        "{e}"
    );
    sb.write("nan.csv", "pa,ri\n1,2\n2,x\n3,4\n");
    assert!(sb
        .fails(&["report", "regress", "nan.csv"])
        .contains("row 3, column `ri`"));
}

/// `inf` and `NaN` cells are named errors, not a blank slope or a LAPACK message; empty cells
/// are left out and counted (issue 13, bug 5).
#[test]
fn regress_refuses_non_finite_cells_and_counts_empty_ones() {
    let sb = Sandbox::new();
    for (cell, shown) in [("inf", "\"inf\""), ("NaN", "\"NaN\"")] {
        sb.write("runs.csv", format!("pa,ri\n1,2\n2,{cell}\n3,5\n"));
        let err = sb.fails(&["report", "regress", "runs.csv", "-o", "reg.csv"]);
        assert!(
            err.contains("row 3, column `ri`")
                && err.contains(&format!("{shown} is not a finite number")),
            "{err}"
        );
        assert!(!sb.path("reg.csv").exists(), "nothing written");
    }
    sb.write("runs.csv", "pa,ri\n1,2\n,9\n2,4\n3,\n4,8\n");
    let o = sb.run(&["report", "regress", "runs.csv", "-o", "reg.csv"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("2 rows with an empty `pa` or `ri` were left out"),
        "{err}"
    );
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("reg.csv")).unwrap());
    assert_eq!(rows[0][3], "3", "n = 3 rows used: {rows:?}");
}

#[test]
fn table_compares_seeds_with_a_t_test() {
    let sb = Sandbox::new();
    sb.write(
        "runs.csv",
        "target,mix,kind,seed,target_loss,general_loss,ri\n\
         code,c4,base,1,2.0,4.0,\ncode,c4,base,2,2.1,4.1,\ncode,c4,base,3,2.2,4.2,\n\
         code,starcoder,midtrain,1,1.8,4.5,0.1\ncode,starcoder,midtrain,2,1.9,4.6,0.0952\ncode,starcoder,midtrain,3,2.0,4.7,0.0909\n",
    );
    let out = sb.ok(&[
        "report", "table", "runs.csv", "-o", "t.csv", "--latex", "t.tex",
    ]);
    assert!(out.contains("starcoder"), "{out}");
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("t.csv")).unwrap());
    let mid = rows.iter().find(|r| r[2] == "midtrain").unwrap();
    // Means 1.9 vs 2.1, both variances 0.01: t = −0.2 / (0.1·√(2/3)) = −2.449, df 4;
    // two-sided p = 0.070484 (Simpson integration of the t density, done separately).
    assert!((mid[4].parse::<f64>().unwrap() - 1.9).abs() < 1e-12);
    assert!(
        (mid[7].parse::<f64>().unwrap() - 0.070484).abs() < 1e-5,
        "{mid:?}"
    );
    let base = rows.iter().find(|r| r[2] == "base").unwrap();
    assert!(base[7].is_empty());
    let tex = std::fs::read_to_string(sb.path("t.tex")).unwrap();
    assert!(
        tex.contains("\\toprule")
            && tex.contains("\\bottomrule")
            && tex.contains("code & starcoder & midtrain & 1.900"),
        "{tex}"
    );
    sb.write("bad.csv", "target,mix\ncode,c4\n");
    assert!(sb
        .fails(&["report", "table", "bad.csv"])
        .contains("no column `kind`"));
}
