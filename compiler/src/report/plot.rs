//! The report's two plots, drawn with plotters to SVG and PNG: test
//! accuracy against training steps, one line per run, and final accuracy
//! against operations, the trade-off the seed discusses.

use super::Run;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::OnceLock;

const SIZE: (u32, u32) = (800, 500);

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
        .build_cartesian_2d(0u64..max_step, 0f64..100f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("training steps")
        .y_desc("test accuracy (%)")
        .draw()
        .map_err(err)?;
    for (i, run) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
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
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

fn ops_chart<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[Run]) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let points: Vec<(f64, f64, &str)> = runs
        .iter()
        .filter_map(|r| {
            Some((
                r.ops? as f64 / 1e6,
                100.0 * r.last_accuracy()?,
                r.name.as_str(),
            ))
        })
        .collect();
    let max_ops = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("Accuracy against operations", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_ops, 0f64..100f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("operations per image (millions)")
        .y_desc("test accuracy at the last evaluation (%)")
        .draw()
        .map_err(err)?;
    for (i, &(x, y, name)) in points.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series([Circle::new((x, y), 5, color.filled())])
            .map_err(err)?;
        chart
            .draw_series([Text::new(
                name.to_string(),
                (x, y + 2.5),
                ("sans-serif", 14),
            )])
            .map_err(err)?;
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
