//! PNG line charts with plotters' bitmap backend: panels of series, shaded spans (a failed
//! link), vertical markers (events) and horizontal reference lines.
//!
//! Text is drawn with ab_glyph from DejaVu Sans read at run time (Debian's
//! `fonts-dejavu-core`), registered as "sans-serif": no fontconfig or freetype is linked, and
//! nothing but the font file is needed on the machine.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Where Debian's fonts-dejavu-core puts the font.
pub const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];
const FONT: &str = "sans-serif";

/// Distinct colours (Tableau 10, with black in place of brown: index 5 is the appliance,
/// which must not be mistaken for socat's red), indexed by a series' `color`.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(0, 0, 0),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: usize,
    /// Draw a dot at every point (sweeps, searches) as well as the line.
    pub dots: bool,
}

/// A shaded stretch of x, e.g. while a link was down.
#[derive(Debug, Clone)]
pub struct Span {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

/// One chart.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub spans: Vec<Span>,
    /// Vertical lines at x with a label.
    pub markers: Vec<(f64, String)>,
    /// Horizontal dashed lines at y with a label.
    pub hlines: Vec<(f64, String)>,
    /// Plot x on a log10 scale (labels show the real values).
    pub x_log: bool,
    /// Fixed y range; otherwise 0 to 110 % of the largest value.
    pub y_range: Option<(f64, f64)>,
    /// Legend in the upper left corner (curves that rise to the right) instead of the
    /// lower right.
    pub legend_upper_left: bool,
}

fn register_font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONT_PATHS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!(
                    "no DejaVuSans.ttf at {FONT_PATHS:?}: install fonts-dejavu-core (`make deps`)"
                )
            })?;
        // Registered once for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| "DejaVuSans.ttf is not a usable font".to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Draws `panels` in a grid of `cols` columns into a PNG of `width` × (`panel_height` per
/// row) pixels, under `title`.
pub fn render(
    path: &Path,
    title: &str,
    panels: &[Panel],
    cols: usize,
    width: u32,
    panel_height: u32,
) -> Result<()> {
    register_font()?;
    if panels.is_empty() {
        bail!("nothing to plot for {}", path.display());
    }
    let cols = cols.clamp(1, panels.len());
    let rows = panels.len().div_ceil(cols);
    let height = panel_height * rows as u32 + 40;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 24))?;
    let areas = root.split_evenly((rows, cols));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        draw_panel(area, panel)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &Panel,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let xs = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.0))
        .chain(p.spans.iter().flat_map(|s| [s.start, s.end]))
        .chain(p.markers.iter().map(|m| m.0))
        .filter(|x| !p.x_log || *x > 0.0);
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !x0.is_finite() || !x1.is_finite() {
        (x0, x1) = (1.0, 10.0);
    }
    if p.x_log {
        // Some room so the end points are not on the frame.
        (x0, x1) = (x0 / 1.3, x1 * 1.3);
    } else {
        x0 = x0.min(0.0);
        if x1 - x0 < 1e-9 {
            x1 = x0 + 1.0;
        }
    }
    let (y0, y1) = p.y_range.unwrap_or_else(|| {
        let top = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.1))
            .chain(p.hlines.iter().map(|h| h.0))
            .fold(0.0_f64, f64::max);
        (0.0, if top > 0.0 { top * 1.12 } else { 1.0 })
    });
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&p.title, (FONT, 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64);
    let frame = Frame { x0, x1, y0, y1 };
    if p.x_log {
        let chart = builder
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(|e| anyhow!("{e:?}"))?;
        fill(chart, p, frame)
    } else {
        let chart = builder
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| anyhow!("{e:?}"))?;
        fill(chart, p, frame)
    }
}

/// The plotted ranges.
#[derive(Debug, Clone, Copy)]
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

/// Draws the mesh and everything of a panel on a built chart (linear or log x).
fn fill<'a, DB, X>(
    mut chart: ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    p: &Panel,
    f: Frame,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let Frame { x0, x1, y0, y1 } = f;
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    let red = RGBColor(160, 30, 30);
    for s in &p.spans {
        let shade = RGBColor(255, 170, 170).mix(0.35);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(s.start, y0), (s.end, y1)],
                shade.filled(),
            )))
            .map_err(|e| anyhow!("{e:?}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                s.label.clone(),
                (s.start, y1 - (y1 - y0) * 0.02),
                (FONT, 13).into_font().color(&red),
            )))
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    for (x, label) in &p.markers {
        chart
            .draw_series(LineSeries::new(
                vec![(*x, y0), (*x, y1)],
                red.stroke_width(1),
            ))
            .map_err(|e| anyhow!("{e:?}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (*x, y1 - (y1 - y0) * 0.02),
                (FONT, 13).into_font().color(&red),
            )))
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    let grey = RGBColor(90, 90, 90);
    for (y, label) in &p.hlines {
        chart
            .draw_series(
                dashed(x0, x1, *y, p.x_log)
                    .into_iter()
                    .map(|seg| PathElement::new(seg, grey.stroke_width(1))),
            )
            .map_err(|e| anyhow!("{e:?}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (x0, *y + (y1 - y0) * 0.015),
                (FONT, 12).into_font().color(&grey),
            )))
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    let mut legend = false;
    for s in &p.series {
        let c = color(s.color);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|q| !p.x_log || q.0 > 0.0)
            .collect();
        let drawn = chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| anyhow!("{e:?}"))?;
        if !s.name.is_empty() {
            legend = true;
            drawn.label(s.name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
            });
        }
        if s.dots {
            chart
                .draw_series(pts.iter().map(|q| Circle::new(*q, 3, c.filled())))
                .map_err(|e| anyhow!("{e:?}"))?;
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .position(if p.legend_upper_left {
                SeriesLabelPosition::UpperLeft
            } else {
                SeriesLabelPosition::LowerRight
            })
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 13))
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(())
}

/// Segments of a dashed horizontal line (evenly spaced on the screen, log x or not).
fn dashed(x0: f64, x1: f64, y: f64, log: bool) -> Vec<Vec<(f64, f64)>> {
    let n = 60;
    let at = |i: usize| {
        let f = i as f64 / n as f64;
        if log {
            x0 * (x1 / x0).powf(f)
        } else {
            x0 + (x1 - x0) * f
        }
    };
    (0..n)
        .step_by(2)
        .map(|i| vec![(at(i), y), (at(i + 1), y)])
        .collect()
}

/// Axis numbers without noise: 150000 → 150k, 0.25 → 0.25.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(150_000.0), "150k");
        assert_eq!(short(2_500_000.0), "2.5M");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(30.0), "30");
        assert_eq!(short(-0.0), "0");
    }

    #[test]
    fn renders_a_png_when_the_font_is_installed() {
        if FONT_PATHS.iter().all(|p| !Path::new(p).exists()) {
            eprintln!("SKIPPED: fonts-dejavu-core is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        let panel = Panel {
            title: "test".into(),
            x_label: "time (s)".into(),
            y_label: "Mbit/s".into(),
            series: vec![Series {
                name: "a".into(),
                points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)],
                color: 0,
                dots: true,
            }],
            spans: vec![Span {
                start: 0.5,
                end: 1.5,
                label: "down".into(),
            }],
            markers: vec![(0.5, "a down".into())],
            hlines: vec![(2.5, "ceiling".into())],
            ..Default::default()
        };
        let log = Panel {
            x_log: true,
            series: vec![Series {
                points: vec![(1000.0, 100.0), (100_000.0, 90.0)],
                ..Default::default()
            }],
            ..Default::default()
        };
        render(&path, "title", &[panel, log], 2, 900, 300).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 2000, "{} bytes", bytes.len());
    }
}
