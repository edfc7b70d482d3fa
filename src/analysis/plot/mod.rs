//! Figures for papers and notebooks: the similarity heatmap of `proximity --matrix` and the
//! gain-against-proximity scatter of `report regress`, drawn with plotters as SVG or PNG.
//!
//! Text is set in DejaVu Sans, embedded in the binary (src/analysis/plot/DejaVuSans.ttf, licence beside
//! it): the layout (label widths, cell sizes) and every PNG pixel are the same on every
//! machine, with or without system fonts, so a figure reproduces byte for byte.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::util::numfmt::sig;

const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font (checked by the tests), so this cannot fail.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Something drawable at a fixed size on any plotters backend.
pub trait Figure {
    /// Width and height in pixels (SVG user units).
    fn size(&self) -> (u32, u32);
    /// Draws the figure on `root`, which has the figure's size.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// The image formats a figure can be saved in, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Svg,
    Png,
}

impl ImageFormat {
    /// The format named by `path`'s extension (`.svg` or `.png`, any case).
    pub fn of(path: &Path) -> Result<ImageFormat> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("svg") => Ok(ImageFormat::Svg),
            Some("png") => Ok(ImageFormat::Png),
            _ => bail!(
                "{}: a plot is written as .svg or .png (named by the file's extension)",
                path.display()
            ),
        }
    }
}

/// Draws `figure` into `path` (SVG or PNG by its extension), atomically.
pub fn save(figure: &impl Figure, path: &Path) -> Result<()> {
    let bytes = match ImageFormat::of(path)? {
        ImageFormat::Svg => String::into_bytes(svg(figure)?),
        ImageFormat::Png => png(figure)?,
    };
    crate::util::paths::write_atomic_bytes(path, &bytes)
}

/// The figure as an SVG document.
pub fn svg(figure: &impl Figure) -> Result<String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, figure.size()).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        figure.draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

/// The figure as a PNG image (8-bit RGB).
pub fn png(figure: &impl Figure) -> Result<Vec<u8>> {
    register_font();
    let (w, h) = figure.size();
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        figure.draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    let mut out = Vec::new();
    {
        let mut enc = ::png::Encoder::new(&mut out, w, h);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&rgb)?;
    }
    Ok(out)
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

/// A tick label without floating-point noise: 0.30000000000000004 → 0.3, -0 → 0.
pub fn tick(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A square matrix of similarities: rows scored against columns, values written in the cells.
pub struct Heatmap<'a> {
    /// The figure's title.
    pub title: String,
    /// Row and column labels (the corpora), in matrix order.
    pub labels: &'a [String],
    /// `values[i][j]`: row i against column j.
    pub values: &'a [Vec<f64>],
}

/// Colour of a cell at `t` in [0, 1] of the value range: white (low) to dark blue (high).
fn blue(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    RGBColor(
        (255.0 - 215.0 * t) as u8,
        (255.0 - 175.0 * t) as u8,
        (255.0 - 95.0 * t) as u8,
    )
}

impl Heatmap<'_> {
    const TEXT: f64 = 13.0;
    const TOP: u32 = 44;
    const BAR: u32 = 110;

    fn range(&self) -> (f64, f64) {
        let (lo, hi) = self
            .values
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        if lo > hi {
            (0.0, 1.0)
        } else if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        }
    }

    /// Width of the widest label in pixels, measured with the embedded font.
    fn label_width(&self) -> u32 {
        register_font();
        let style = font(Self::TEXT);
        self.labels
            .iter()
            .map(|l| {
                style
                    .font
                    .box_size(l)
                    .map(|(w, _)| w)
                    .unwrap_or(8 * l.len() as u32)
            })
            .max()
            .unwrap_or(0)
    }

    /// Cells wide enough for the column labels written horizontally above them.
    fn cell(&self) -> u32 {
        (self.label_width() + 14).clamp(64, 200)
    }

    fn left(&self) -> u32 {
        self.label_width() + 16
    }
}

impl Figure for Heatmap<'_> {
    fn size(&self) -> (u32, u32) {
        let n = self.labels.len() as u32;
        let head = Self::TOP + 24;
        (
            self.left() + self.cell() * n + Self::BAR,
            head + self.cell() * n + 16,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (w, _) = self.size();
        let (cell, left) = (self.cell() as i32, self.left() as i32);
        let top = Self::TOP as i32 + 24;
        let (lo, hi) = self.range();
        let text = font(Self::TEXT);
        root.draw(&Text::new(self.title.clone(), (12, 14), font(15.0)))
            .map_err(plot_error)?;
        let centred = text.pos(Pos::new(HPos::Center, VPos::Center));
        let right = text.pos(Pos::new(HPos::Right, VPos::Center));
        for (j, label) in self.labels.iter().enumerate() {
            let x = left + cell * j as i32 + cell / 2;
            root.draw(&Text::new(label.clone(), (x, top - 12), centred.clone()))
                .map_err(plot_error)?;
        }
        for (i, row) in self.values.iter().enumerate() {
            let y = top + cell * i as i32;
            root.draw(&Text::new(
                self.labels[i].clone(),
                (left - 8, y + cell / 2),
                right.clone(),
            ))
            .map_err(plot_error)?;
            for (j, v) in row.iter().enumerate() {
                let x = left + cell * j as i32;
                let t = (v - lo) / (hi - lo);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    blue(t).filled(),
                ))
                .map_err(plot_error)?;
                let fg = if t > 0.55 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    sig(*v, 3),
                    (x + cell / 2, y + cell / 2),
                    centred.clone().color(&fg),
                ))
                .map_err(plot_error)?;
            }
        }
        // The colour scale, with round ticks.
        let n = self.labels.len() as i32;
        let bar = root.margin(top as u32, 16, (w as i32 - Self::BAR as i32 + 14) as u32, 0);
        let bar = bar.shrink((0, 0), (Self::BAR - 14, (cell * n) as u32));
        let mut chart = ChartBuilder::on(&bar)
            .y_label_area_size(0)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(plot_error)?;
        let steps = 100;
        chart
            .draw_series((0..steps).map(|k| {
                let a = lo + (hi - lo) * k as f64 / steps as f64;
                let b = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
                Rectangle::new([(0.0, a), (1.0, b)], blue((a - lo) / (hi - lo)).filled())
            }))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(6)
            .y_label_formatter(&|v| tick(*v))
            .y_label_style(font(12.0))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    }
}

/// One point of a scatter: coordinates, the group that sets its colour and the group that
/// sets its marker shape (either may be empty).
#[derive(Clone, Debug)]
pub struct ScatterPoint {
    pub x: f64,
    pub y: f64,
    pub colour_group: String,
    pub marker_group: String,
}

/// Points coloured by one grouping and shaped by another, with a fitted line.
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
    /// (intercept, slope) of a fitted line, drawn dashed across the x range.
    pub fit: Option<(f64, f64)>,
    /// Legend headings of the colour and marker groupings.
    pub colour_title: String,
    pub marker_title: String,
}

/// Tableau's first six colours (matplotlib's defaults), distinct for colour-blind readers.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Marker `shape` (circle, square, triangle, diamond, repeating) at backend point `at`.
fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    shape: usize,
    at: (i32, i32),
    colour: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = colour.filled();
    let origin = EmptyElement::at(at);
    match shape % 4 {
        0 => area.draw(&(origin + Circle::new((0, 0), 5, style))),
        1 => area.draw(&(origin + Rectangle::new([(-4, -4), (4, 4)], style))),
        2 => area.draw(&(origin + Polygon::new(vec![(0, -6), (6, 4), (-6, 4)], style))),
        _ => area.draw(&(origin + Polygon::new(vec![(0, -6), (6, 0), (0, 6), (-6, 0)], style))),
    }
    .map_err(plot_error)
}

fn groups<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = values.collect();
    v.sort();
    v.dedup();
    v
}

impl Scatter {
    const CHART: (u32, u32) = (600, 440);

    fn finite(&self) -> impl Iterator<Item = &ScatterPoint> {
        self.points
            .iter()
            .filter(|p| p.x.is_finite() && p.y.is_finite())
    }

    fn legend_width(&self) -> u32 {
        register_font();
        let style = font(13.0);
        self.finite()
            .flat_map(|p| [p.colour_group.as_str(), p.marker_group.as_str()])
            .chain([
                self.colour_title.as_str(),
                self.marker_title.as_str(),
                "fitted line",
            ])
            .map(|s| style.font.box_size(s).map(|(w, _)| w).unwrap_or(0))
            .max()
            .unwrap_or(0)
            + 44
    }
}

/// The range of `values` with 8% padding each side (a unit range around a single value).
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if lo > hi {
        0.0..1.0
    } else if hi > lo {
        let pad = (hi - lo) * 0.08;
        lo - pad..hi + pad
    } else {
        lo - 0.5..hi + 0.5
    }
}

/// The part of the line y = a + b·x inside the box xs × ys, as its two ends (None: it misses).
fn clip_line(
    a: f64,
    b: f64,
    xs: &std::ops::Range<f64>,
    ys: &std::ops::Range<f64>,
) -> Option<[(f64, f64); 2]> {
    let (mut lo, mut hi) = (xs.start, xs.end);
    if b != 0.0 {
        let (x0, x1) = ((ys.start - a) / b, (ys.end - a) / b);
        lo = lo.max(x0.min(x1));
        hi = hi.min(x0.max(x1));
    } else if !(ys.start..=ys.end).contains(&a) {
        return None;
    }
    (lo < hi).then_some([(lo, a + b * lo), (hi, a + b * hi)])
}

impl Figure for Scatter {
    fn size(&self) -> (u32, u32) {
        (Self::CHART.0 + self.legend_width(), Self::CHART.1)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (chart_area, legend) = root.split_horizontally(Self::CHART.0);
        let xs = padded(self.finite().map(|p| p.x));
        let ys = padded(self.finite().map(|p| p.y));
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(&self.title, font(16.0))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(xs.clone(), ys.clone())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style(font(12.0))
            .axis_desc_style(font(14.0))
            .max_light_lines(0)
            .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
            .draw()
            .map_err(plot_error)?;
        let line = ShapeStyle::from(RGBColor(0x55, 0x55, 0x55)).stroke_width(2);
        if let Some(ends) = self.fit.and_then(|(a, b)| clip_line(a, b, &xs, &ys)) {
            chart
                .draw_series(DashedLineSeries::new(ends, 7, 5, line))
                .map_err(plot_error)?;
        }
        let colours = groups(self.finite().map(|p| p.colour_group.as_str()));
        let markers = groups(self.finite().map(|p| p.marker_group.as_str()));
        let plotting = chart.plotting_area();
        for p in self.finite() {
            let c = colours
                .iter()
                .position(|g| *g == p.colour_group)
                .unwrap_or(0);
            let m = markers
                .iter()
                .position(|g| *g == p.marker_group)
                .unwrap_or(0);
            let at = plotting.map_coordinate(&(p.x, p.y));
            // Markers are drawn in backend pixels on the root, so they are not clipped at the
            // frame's edge (the 8% padding keeps them inside anyway).
            marker(root, m, at, PALETTE[c % PALETTE.len()])?;
        }
        self.draw_legend(&legend, &colours, &markers, line)
    }
}

/// A row of the scatter's legend.
enum LegendRow<'a> {
    Heading(&'a str),
    /// A label with its marker (shape, colour).
    Marker(&'a str, usize, RGBColor),
    /// A label with a dashed line (the fit).
    Line(&'a str),
    Gap,
}

impl Scatter {
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        colours: &[&str],
        markers: &[&str],
        line: ShapeStyle,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let text = font(13.0).pos(Pos::new(HPos::Left, VPos::Center));
        let gray = RGBColor(0x44, 0x44, 0x44);
        let heading = text.clone().color(&gray);
        let mut rows: Vec<LegendRow> = Vec::new();
        if colours.iter().any(|c| !c.is_empty()) {
            rows.push(LegendRow::Heading(&self.colour_title));
            for (i, c) in colours.iter().enumerate() {
                rows.push(LegendRow::Marker(c, 0, PALETTE[i % PALETTE.len()]));
            }
            rows.push(LegendRow::Gap);
        }
        if markers.iter().any(|m| !m.is_empty()) {
            rows.push(LegendRow::Heading(&self.marker_title));
            for (i, m) in markers.iter().enumerate() {
                rows.push(LegendRow::Marker(m, i, gray));
            }
            rows.push(LegendRow::Gap);
        }
        if self.fit.is_some() {
            rows.push(LegendRow::Line("fitted line"));
        }
        let mut y = 56;
        for row in rows {
            let (label, style) = match row {
                LegendRow::Gap => {
                    y += 8;
                    continue;
                }
                LegendRow::Heading(l) => (l, &heading),
                LegendRow::Marker(l, shape, colour) => {
                    marker(area, shape, (14, y), colour)?;
                    (l, &text)
                }
                LegendRow::Line(l) => {
                    area.draw(&DashedPathElement::new(vec![(2, y), (24, y)], 7, 5, line))
                        .map_err(plot_error)?;
                    (l, &text)
                }
            };
            area.draw(&Text::new(label.to_string(), (28, y), style.clone()))
                .map_err(plot_error)?;
            y += 20;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_have_no_float_noise() {
        assert_eq!(tick(0.1 + 0.2), "0.3");
        assert_eq!(tick(-0.0), "0");
        assert_eq!(tick(-0.04), "-0.04");
        assert_eq!(tick(12.0), "12");
    }

    #[test]
    fn fitted_line_is_clipped_to_the_frame() {
        // y = x on [-1, 2] × [0, 1]: inside from (0, 0) to (1, 1).
        assert_eq!(
            clip_line(0.0, 1.0, &(-1.0..2.0), &(0.0..1.0)),
            Some([(0.0, 0.0), (1.0, 1.0)])
        );
        // A flat line outside the y range is not drawn; inside, it spans the x range.
        assert_eq!(clip_line(5.0, 0.0, &(0.0..1.0), &(0.0..1.0)), None);
        assert_eq!(
            clip_line(0.5, 0.0, &(0.0..1.0), &(0.0..1.0)),
            Some([(0.0, 0.5), (1.0, 0.5)])
        );
    }

    #[test]
    fn the_embedded_font_loads() {
        assert!(plotters::style::register_font("mtkit-test", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn format_by_extension() {
        assert_eq!(
            ImageFormat::of(Path::new("a/m.SVG")).unwrap(),
            ImageFormat::Svg
        );
        assert_eq!(
            ImageFormat::of(Path::new("m.png")).unwrap(),
            ImageFormat::Png
        );
        let e = ImageFormat::of(Path::new("m.pdf")).unwrap_err().to_string();
        assert!(e.contains("m.pdf") && e.contains(".svg or .png"), "{e}");
    }
}
