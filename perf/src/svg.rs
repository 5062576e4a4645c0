//! A tiny SVG line-plot writer: axes from 0, ticks, one polyline per series and a legend.
//! Enough for "updates/s against threads"; no dependencies.

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 400.0;
/// Margins: left (y labels), right (legend), top (title), bottom (x labels).
const L: f64 = 80.0;
const R: f64 = 170.0;
const T: f64 = 40.0;
const B: f64 = 50.0;

/// One line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Any SVG colour.
    pub color: &'static str,
    /// Dashed stroke.
    pub dashed: bool,
    /// (x, y) points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

/// A plot: titles and series.
#[derive(Debug, Clone)]
pub struct Plot {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

/// The smallest 1, 2 or 5 × 10^k that is ≥ `v` (1 for non-positive `v`).
pub fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

/// `v` with an SI suffix: 1500 → "1.5k", 2e6 → "2M".
pub fn si(v: f64) -> String {
    let (d, s) = match v.abs() {
        a if a >= 1e9 => (1e9, "G"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let t = format!("{:.2}", v / d);
    format!("{}{s}", t.trim_end_matches('0').trim_end_matches('.'))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Render `plot` as a standalone SVG document.
pub fn render(plot: &Plot) -> String {
    let pts = plot.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1, y1) = pts.fold((f64::MAX, f64::MIN, 0f64), |(a, b, c), &(x, y)| {
        (a.min(x), b.max(x), c.max(y))
    });
    let (x0, x1) = if x0 > x1 {
        (0.0, 1.0)
    } else if x0 == x1 {
        (x0 - 1.0, x1 + 1.0)
    } else {
        (x0, x1)
    };
    let y1 = nice_ceil(y1);
    let (pw, ph) = (W - L - R, H - T - B);
    let px = |x: f64| L + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| T + ph - y / y1 * ph;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        L + pw / 2.0,
        esc(&plot.title)
    );
    let _ = writeln!(
        o,
        r#"<path d="M{L},{T} V{} H{}" fill="none" stroke="black"/>"#,
        T + ph,
        L + pw
    );
    for i in 0..=5 {
        let y = y1 * i as f64 / 5.0;
        let (yy, x_end, x_lab, label) = (py(y), L + pw, L - 6.0, si(y));
        let _ = writeln!(
            o,
            r##"<line x1="{L}" x2="{x_end}" y1="{yy}" y2="{yy}" stroke="#ddd"/><text x="{x_lab}" y="{}" text-anchor="end">{label}</text>"##,
            yy + 4.0
        );
    }
    let int_ticks = x1 - x0 <= 16.0 && x0.fract() == 0.0;
    let xs: Vec<f64> = if int_ticks {
        (x0 as i64..=x1 as i64).map(|v| v as f64).collect()
    } else {
        (0..=4).map(|i| x0 + (x1 - x0) * i as f64 / 4.0).collect()
    };
    for x in xs {
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            T + ph + 16.0,
            si(x)
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        L + pw / 2.0,
        H - 10.0,
        esc(&plot.x_label)
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        T + ph / 2.0,
        esc(&plot.y_label)
    );
    for (i, s) in plot.series.iter().enumerate() {
        let dash = if s.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            s.color
        );
        for &(x, y) in &s.points {
            let _ = writeln!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                px(x),
                py(y),
                s.color
            );
        }
        let ly = T + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            o,
            r#"<line x1="{0}" x2="{1}" y1="{ly}" y2="{ly}" stroke="{2}" stroke-width="2"{dash}/><text x="{3}" y="{4}">{5}</text>"#,
            L + pw + 10.0,
            L + pw + 34.0,
            s.color,
            L + pw + 40.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings_and_si_labels() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(7_300_000.0), 10_000_000.0);
        assert_eq!(nice_ceil(200.0), 200.0);
        assert_eq!(si(1500.0), "1.5k");
        assert_eq!(si(2e6), "2M");
        assert_eq!(si(3.0), "3");
    }

    #[test]
    fn renders_every_series_and_point_inside_the_axes() {
        let s = |name: &str, y: f64| Series {
            name: name.into(),
            color: "red",
            dashed: name.contains("ro"),
            points: vec![(1.0, y), (2.0, 2.0 * y)],
        };
        let plot = Plot {
            title: "a <b>".into(),
            x_label: "threads".into(),
            y_label: "updates/s".into(),
            series: vec![s("argon rw", 4e6), s("lock ro", 1e6)],
        };
        let svg = render(&plot);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("argon rw"));
        // Every point lies inside the axis box [T, H - B].
        for c in svg.split("cy=\"").skip(1) {
            let y: f64 = c.split('"').next().unwrap().parse().unwrap();
            assert!((T..=H - B).contains(&y), "{y}");
        }
    }
}
