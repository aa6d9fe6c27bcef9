//! Charts as hand-written SVG: line charts over time and bar charts for histograms. No
//! plotting crate; the output opens in any browser and in the Markdown report.

use std::fmt::Write;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// A named line of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend text.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart's frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Title above the chart.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "Nice" tick values covering `0..=max` (1, 2 or 5 times a power of ten apart).
pub fn nice_ticks(max: f64, target_count: usize) -> Vec<f64> {
    if max.is_nan() || max <= 0.0 || max.is_infinite() {
        return vec![0.0, 1.0];
    }
    let raw_step = max / target_count.max(1) as f64;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|factor| factor * magnitude)
        .find(|step| *step >= raw_step)
        .unwrap_or(10.0 * magnitude);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|index| index as f64 * step).collect()
}

/// A tick label: no needless decimals, thousands as `k`.
pub fn tick_label(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{}k", trim(value / 1000.0))
    } else {
        trim(value)
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn open(frame: &Frame) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(&frame.title)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 10.0,
        escape(&frame.x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{y}" text-anchor="middle" transform="rotate(-90 16 {y})">{}</text>"#,
        escape(&frame.y_label),
        y = TOP + (HEIGHT - TOP - BOTTOM) / 2.0
    );
    svg
}

fn y_axis(svg: &mut String, ticks: &[f64], y_of: &dyn Fn(f64) -> f64) {
    for tick in ticks {
        let y = y_of(*tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            tick_label(*tick)
        );
    }
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/><line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="black"/>"#,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        y = HEIGHT - BOTTOM
    );
}

/// A line chart of `lines` (x and y from 0). An empty chart says there was no data.
pub fn line_chart(frame: &Frame, lines: &[Line]) -> String {
    let mut svg = open(frame);
    let points = lines.iter().flat_map(|line| line.points.iter());
    let (max_x, max_y) = points.fold((0.0f64, 0.0f64), |(mx, my), (x, y)| {
        (mx.max(*x), my.max(*y))
    });
    if lines.iter().all(|line| line.points.is_empty()) {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no data</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        svg.push_str("</svg>\n");
        return svg;
    }
    let x_ticks = nice_ticks(max_x, 8);
    let y_ticks = nice_ticks(max_y, 5);
    let x_max = *x_ticks.last().expect("ticks are never empty");
    let y_max = *y_ticks.last().expect("ticks are never empty");
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |x: f64| LEFT + x / x_max * plot_w;
    let y_of = |y: f64| HEIGHT - BOTTOM - y / y_max * plot_h;
    y_axis(&mut svg, &y_ticks, &y_of);
    for tick in &x_ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x_of(*tick),
            HEIGHT - BOTTOM + 16.0,
            tick_label(*tick)
        );
    }
    for (index, line) in lines.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let path: Vec<String> = line
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{}"/>"#,
            path.join(" ")
        );
        if line.points.len() == 1 {
            let (x, y) = line.points[0];
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x_of(x),
                y_of(y)
            );
        }
    }
    // The legend sits on a light box in the top left corner, over the lines.
    let _ = writeln!(
        svg,
        r##"<rect x="{}" y="{}" width="230" height="{}" fill="white" fill-opacity="0.85" stroke="#cccccc"/>"##,
        LEFT + 6.0,
        TOP + 2.0,
        lines.len() as f64 * 16.0 + 6.0
    );
    for (index, line) in lines.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let legend_y = TOP + 14.0 + index as f64 * 16.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="4" fill="{colour}"/><text x="{}" y="{legend_y}">{}</text>"#,
            LEFT + 12.0,
            legend_y - 5.0,
            LEFT + 30.0,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A bar chart: one bar per `(label, value)`, labels under the bars.
pub fn bar_chart(frame: &Frame, bars: &[(String, f64)]) -> String {
    let mut svg = open(frame);
    if bars.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no data</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        svg.push_str("</svg>\n");
        return svg;
    }
    let max_y = bars.iter().map(|(_, value)| *value).fold(0.0, f64::max);
    let y_ticks = nice_ticks(max_y, 5);
    let y_max = *y_ticks.last().expect("ticks are never empty");
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_of = |y: f64| HEIGHT - BOTTOM - y / y_max * plot_h;
    y_axis(&mut svg, &y_ticks, &y_of);
    let slot = plot_w / bars.len() as f64;
    // Label every bar when they fit, else every n-th.
    let label_every = (bars.len() as f64 / (plot_w / 45.0)).ceil().max(1.0) as usize;
    for (index, (label, value)) in bars.iter().enumerate() {
        let x = LEFT + index as f64 * slot;
        let y = y_of(*value);
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
            x + slot * 0.1,
            slot * 0.8,
            HEIGHT - BOTTOM - y,
            COLOURS[0],
            escape(label),
            tick_label(*value)
        );
        if index % label_every == 0 {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="10">{}</text>"#,
                x + slot / 2.0,
                HEIGHT - BOTTOM + 14.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            title: "Dispatch latency <p99>".to_owned(),
            x_label: "s".to_owned(),
            y_label: "ms".to_owned(),
        }
    }

    #[test]
    fn ticks_are_round_numbers_covering_the_maximum() {
        assert_eq!(
            nice_ticks(873.0, 5),
            vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
        );
        assert_eq!(nice_ticks(0.9, 4), vec![0.0, 0.5, 1.0]);
        assert_eq!(nice_ticks(0.0, 5), vec![0.0, 1.0]);
        assert_eq!(tick_label(250_000.0), "250k");
        assert_eq!(tick_label(2.5), "2.5");
    }

    #[test]
    fn a_line_chart_draws_one_polyline_per_line_with_an_escaped_title() {
        let svg = line_chart(
            &frame(),
            &[
                Line {
                    name: "p50".into(),
                    points: vec![(0.0, 1.0), (1.0, 2.0)],
                },
                Line {
                    name: "p99".into(),
                    points: vec![(0.0, 3.0), (1.0, 9.0)],
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("Dispatch latency &lt;p99&gt;"));
    }

    #[test]
    fn points_stay_inside_the_plot_area() {
        let svg = line_chart(
            &frame(),
            &[Line {
                name: "x".into(),
                points: vec![(0.0, 0.0), (37.0, 123.0)],
            }],
        );
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        for pair in points.split(' ') {
            let (x, y) = pair.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT..=WIDTH - RIGHT).contains(&x), "{x}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "{y}");
        }
    }

    #[test]
    fn an_empty_chart_says_so() {
        assert!(line_chart(&frame(), &[]).contains("no data"));
        assert!(bar_chart(&frame(), &[]).contains("no data"));
    }

    #[test]
    fn a_bar_chart_draws_every_bar() {
        let bars: Vec<(String, f64)> = (0..12).map(|i| (format!("≤{i}"), i as f64)).collect();
        let svg = bar_chart(&frame(), &bars);
        assert_eq!(svg.matches("<rect x=").count(), 12);
    }
}
