//! The report's two plots, drawn with plotters to SVG and PNG: test
//! accuracy against training steps, one line per run, and final accuracy
//! against operations, the trade-off the seed discusses.

use super::Run;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;

const SIZE: (u32, u32) = (800, 500);

/// Run colours: matplotlib's "tab10", dark enough for text on white.
pub(crate) fn color(i: usize) -> RGBAColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b).to_rgba()
}

/// Fonts plotters can draw text with: `NETC_FONT`, else a common system font.
fn font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates = std::env::var("NETC_FONT").into_iter().chain(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/Library/Fonts/Arial.ttf",
                "C:\\Windows\\Fonts\\arial.ttf",
            ]
            .map(String::from),
        );
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                    .map_err(|_| format!("{path}: not a usable font"));
            }
        }
        Err("no font found for the plots' text; set NETC_FONT to a .ttf file (DejaVu Sans: apt-get install fonts-dejavu-core)".into())
    })
    .clone()
}

pub(crate) fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw: {e:?}")
}

/// An accuracy axis (%): the values' range widened by `below` and `above`
/// points, within 0-100; all of it when there is nothing to show.
fn accuracy_axis(values: impl Iterator<Item = f64>, below: f64, above: f64) -> Range<f64> {
    let (lo, hi) = values.fold((100.0f64, 0.0f64), |(lo, hi), a| (lo.min(a), hi.max(a)));
    let (bottom, top) = (
        (lo - below).max(0.0).floor(),
        (hi + above).min(100.0).ceil(),
    );
    if bottom < top {
        bottom..top
    } else {
        0.0..100.0
    }
}

/// The legend box, bottom right, of the series given a label.
fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)
}

fn steps_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[Run],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let max_step = runs
        .iter()
        .flat_map(|r| r.evaluations.iter().map(|e| e.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Test accuracy during training", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0u64..max_step,
            accuracy_axis(
                runs.iter()
                    .flat_map(|r| r.evaluations.iter().map(|e| 100.0 * e.1)),
                5.0,
                3.0,
            ),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("training steps")
        .y_desc("test accuracy (%)")
        .draw()
        .map_err(err)?;
    for (i, run) in runs.iter().enumerate() {
        let color = color(i);
        let points = run.evaluations.iter().map(|&(s, a)| (s, 100.0 * a));
        chart
            .draw_series(points.clone().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(run.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)?;
    root.present().map_err(err)
}

/// Accuracy at one step for every run, the largest step that every run was
/// evaluated at or after: runs that trained longer would otherwise look better.
fn common_step(runs: &[Run]) -> Option<u64> {
    runs.iter()
        .filter_map(|r| r.evaluations.last().map(|e| e.0))
        .min()
}

/// The runs no other run beats with fewer or as many operations: the seed's
/// trade-off front. Points sorted by operations.
fn front(points: &[(f64, f64, &str)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if out.last().is_none_or(|last| p.1 > last.1) {
            out.push(p);
        }
    }
    out
}

fn ops_chart<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[Run]) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    // At one step when every run was evaluated by then; else each at its
    // last evaluation, and the axis says so.
    let at = |step: Option<u64>| -> Option<Vec<(f64, f64, &str)>> {
        runs.iter()
            .filter(|r| r.ops.is_some() && !r.evaluations.is_empty())
            .map(|r| {
                let acc = match step {
                    Some(s) => r.accuracy_at(s)?,
                    None => r.last_accuracy()?,
                };
                Some((r.ops? as f64 / 1e6, 100.0 * acc, r.name.as_str()))
            })
            .collect()
    };
    let common = common_step(runs);
    let (step, mut points) = match at(common) {
        Some(p) => (common, p),
        None => (None, at(None).unwrap_or_default()),
    };
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Operations span orders of magnitude (nin2 has 11 times squeeze1's):
    // a log axis keeps the cheap models apart.
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && lo > 0.0 {
        // From a power of ten, where the log axis puts its first label.
        (10f64.powf((lo / 1.5).log10().floor()), hi * 1.5)
    } else {
        (0.1, 1000.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption("Accuracy against operations", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (lo..hi).log_scale(),
            accuracy_axis(points.iter().map(|p| p.1), 3.0, 2.0),
        )
        .map_err(err)?;
    let y_desc = match step {
        Some(s) => format!("test accuracy at step {s} (%)"),
        None => "test accuracy at the last evaluation (%)".to_string(),
    };
    chart
        .configure_mesh()
        .x_labels(8)
        .x_desc("operations per image (millions, log scale)")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    let line = front(&points);
    let has_front = line.len() > 1;
    if has_front {
        chart
            .draw_series(LineSeries::new(line, BLACK.mix(0.4).stroke_width(1)))
            .map_err(err)?
            .label("front: no cheaper run is as accurate")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    }
    for (i, &(x, y, name)) in points.iter().enumerate() {
        let color = color(i);
        chart
            .draw_series([Circle::new((x, y), 5, color.filled())])
            .map_err(err)?;
        // Of two runs close in operations, the more accurate one is named
        // above its point and the other below, in the point's colour.
        let near = [i.checked_sub(1), Some(i + 1)]
            .into_iter()
            .flatten()
            .filter_map(|j| points.get(j))
            .min_by(|a, b| (a.0 / x).ln().abs().total_cmp(&(b.0 / x).ln().abs()));
        let dy = if near.is_some_and(|n| n.1 > y) {
            8
        } else {
            -22
        };
        chart
            .draw_series([EmptyElement::at((x, y))
                + Text::new(
                    name.to_string(),
                    (8, dy),
                    ("sans-serif", 14).into_font().color(&color),
                )])
            .map_err(err)?;
    }
    if has_front {
        legend(&mut chart)?;
    }
    root.present().map_err(err)
}

pub(crate) fn svg(
    draw: impl Fn(DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    font()?;
    let mut out = String::new();
    draw(SVGBackend::with_string(&mut out, SIZE).into_drawing_area())?;
    Ok(out)
}

pub(crate) fn png(
    draw: impl Fn(DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    font()?;
    let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area())?;
    let img = image::RgbImage::from_raw(SIZE.0, SIZE.1, pixels).ok_or("bad image size")?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(err)?;
    Ok(bytes)
}

/// (SVG, PNG) of test accuracy against steps.
pub fn accuracy_vs_steps(runs: &[Run]) -> Result<(String, Vec<u8>), String> {
    Ok((
        svg(|a| steps_chart(a, runs))?,
        png(|a| steps_chart(a, runs))?,
    ))
}

/// (SVG, PNG) of final accuracy against operations.
pub fn accuracy_vs_ops(runs: &[Run]) -> Result<(String, Vec<u8>), String> {
    Ok((svg(|a| ops_chart(a, runs))?, png(|a| ops_chart(a, runs))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_keeps_the_runs_no_cheaper_run_beats() {
        // (operations, accuracy): the cheaper alex4 beats tuto and nin2.
        let points = [
            (37.75, 81.9, "tuto"),
            (22.84, 78.2, "squeeze1"),
            (35.20, 82.2, "alex4"),
            (251.36, 81.4, "nin2"),
            (28.51, 80.1, "xception"),
        ];
        assert_eq!(
            front(&points),
            vec![(22.84, 78.2), (28.51, 80.1), (35.20, 82.2)]
        );
    }

    #[test]
    fn runs_are_compared_at_the_last_step_all_reached() {
        let run = |last: u64| Run {
            steps: last + 500,
            evaluations: vec![(last / 2, 0.5), (last, 0.7)],
            ..Run::default()
        };
        assert_eq!(common_step(&[run(30_000), run(27_500)]), Some(27_500));
        assert_eq!(common_step(&[]), None);
    }
}
