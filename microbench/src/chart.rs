//! One line chart (SVG) for every curve the suite draws: the learning study's ratings and
//! thresholds by round, thread scaling's throughput by thread count. Axes scaled to the
//! points, a marker per point, a legend; optionally the x range above a value shaded and
//! its markers hollow (thread counts above the machine's cores: oversubscribed).

use std::fmt::Write;

/// A chart: its title, axis labels, series (name, points) and the shaded x range.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [(String, Vec<(f64, f64)>)],
    /// Points with x above this are drawn hollow over a shaded band, with this note.
    pub shade_above: Option<(f64, &'a str)>,
    /// The y axis starts at 0 (throughput) rather than at the lowest point.
    pub y_from_zero: bool,
    /// The x axis in powers of two (thread counts), each point's x labelled.
    pub log2_x: bool,
}

const COLORS: [&str; 12] = [
    "#d9534f", "#f0ad4e", "#5cb85c", "#5bc0de", "#337ab7", "#9b59b6", "#e67e22", "#1abc9c",
    "#95a5a6", "#34495e", "#c0392b", "#2c3e50",
];

/// Text for SVG content and attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl LineChart<'_> {
    pub fn svg(&self) -> String {
        let (left, top, w, h) = (60.0, 30.0, 560.0, 260.0);
        let fx = |x: f64| if self.log2_x { x.max(1e-9).log2() } else { x };
        let pts = self
            .series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|&(x, y)| (fx(x), y)));
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for (x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if self.y_from_zero {
            y0 = y0.min(0.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let sx = |x: f64| left + (fx(x) - x0) / (x1 - x0) * w;
        let sy = |y: f64| top + h - (y - y0) / (y1 - y0) * h;
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<text x=\"10\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
            left + w + 230.0,
            top + h + 44.0,
            esc(self.title),
        );
        if let Some((above, note)) = self.shade_above {
            if fx(above) < x1 {
                let from = sx(above).max(left);
                let _ = writeln!(
                    s,
                    "<rect x=\"{from:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{h}\" fill=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">{}</text>",
                    left + w - from,
                    from + 4.0,
                    top + 12.0,
                    esc(note)
                );
            }
        }
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{top}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"4\" y=\"{}\">{}</text>",
            left - 4.0,
            top + 10.0,
            short(y1),
            left - 4.0,
            top + h,
            short(y0),
            top + h / 2.0,
            esc(self.y_label),
        );
        if !self.log2_x {
            let _ = writeln!(
                s,
                "<text x=\"{left}\" y=\"{}\">{} {}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} {}</text>",
                top + h + 16.0,
                esc(self.x_label),
                short(x0),
                left + w,
                top + h + 16.0,
                esc(self.x_label),
                short(x1),
            );
        } else {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                left + w / 2.0,
                top + h + 36.0,
                esc(self.x_label)
            );
            // Every x of the points, under its tick.
            let mut xs: Vec<f64> = self
                .series
                .iter()
                .flat_map(|(_, p)| p.iter().map(|&(x, _)| x))
                .collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            for x in xs {
                let _ = write!(
                    s,
                    "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#999\"/><text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\" fill=\"#555\">{4}</text>",
                    sx(x),
                    top + h,
                    top + h + 4.0,
                    top + h + 28.0,
                    short(x)
                );
            }
            s.push('\n');
        }
        for (i, (name, p)) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = p
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline><rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                path.join(" "),
                esc(name),
                left + w + 12.0,
                top + 14.0 * i as f64,
                left + w + 26.0,
                top + 9.0 + 14.0 * i as f64,
                esc(name)
            );
            for &(x, y) in p {
                let hollow = self.shade_above.is_some_and(|(above, _)| x > above);
                let fill = if hollow { "#fff" } else { color };
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{fill}\" stroke=\"{color}\"><title>{}: {} {}, {}</title></circle>",
                    sx(x),
                    sy(y),
                    esc(name),
                    esc(self.x_label),
                    short(x),
                    short(y)
                );
            }
            s.push('\n');
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A number for an axis: no decimals from 100 on, one below.
fn short(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_per_series_a_marker_per_point_and_the_shade() {
        let series = vec![
            ("a".to_string(), vec![(1.0, 10.0), (2.0, 20.0), (4.0, 15.0)]),
            ("b<&>".to_string(), vec![(1.0, 5.0), (4.0, 25.0)]),
        ];
        let svg = LineChart {
            title: "t",
            x_label: "threads",
            y_label: "M ops/s",
            series: &series,
            shade_above: Some((2.0, "more threads than cores")),
            y_from_zero: true,
            log2_x: true,
        }
        .svg();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert_eq!(svg.matches("fill=\"#fff\"").count(), 2, "x = 4: hollow");
        assert!(svg.contains("more threads than cores") && svg.contains("b&lt;&amp;&gt;"));
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    }
}
