//! The SVG plot of `analyze --plot`: the spectral density (SLQ) on a logarithmic axis, as
//! usual for Hessian spectra whose bulk near zero dwarfs the outliers, with a vertical line
//! at each of the top eigenvalues.

use curvature::hessian::SpectralDensity;
use plotters::prelude::*;

/// Width and height of the figure in pixels.
const SIZE: (u32, u32) = (960, 560);

/// Decades of the density shown below its maximum.
const DECADES: f64 = 8.0;

/// The figure as an SVG document.
pub fn spectrum_svg(title: &str, density: &SpectralDensity, top: &[f64]) -> Result<String, String> {
    let mut svg = String::new();
    draw(&mut svg, title, density, top).map_err(|e| format!("cannot draw the plot: {e}"))?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    title: &str,
    density: &SpectralDensity,
    top: &[f64],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in density.grid.iter().chain(top) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !hi.is_finite() || !lo.is_finite() {
        (lo, hi) = (-1.0, 1.0);
    } else if hi <= lo {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    }
    let peak = density.density.iter().fold(0.0f64, |m, &d| m.max(d));
    let peak = if peak > 0.0 && peak.is_finite() {
        peak
    } else {
        1.0
    };
    let floor = peak * 10f64.powf(-DECADES);
    let ceiling = peak * 3.0;

    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(lo..hi, (floor..ceiling).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("eigenvalue")
        .y_desc("density")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    let curve = density
        .grid
        .iter()
        .zip(&density.density)
        .map(|(&t, &d)| (t, d.max(floor)));
    chart
        .draw_series(LineSeries::new(curve, BLUE.stroke_width(2)))?
        .label("spectral density (SLQ)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));

    let marker = RED.mix(0.8).stroke_width(1);
    for (i, &lambda) in top.iter().enumerate() {
        let series = chart.draw_series(LineSeries::new(
            [(lambda, floor), (lambda, ceiling)],
            marker,
        ))?;
        if i == 0 {
            series
                .label(format!("top {} eigenvalues", top.len()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], marker));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
