//! A small bar chart as inline SVG (no script, no style attribute: the CSP allows it).

use super::html::esc;

/// Bars for `counts` (oldest first), with a text alternative for screen readers.
pub fn bars(counts: &[u64], label: &str) -> String {
    const HEIGHT: u64 = 40;
    const BAR: usize = 4;
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = counts.iter().sum();
    let rects: String = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            // At least 2 px, so that one event shows.
            let h = (n * HEIGHT / max).max(2);
            format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\"><title>{n}</title></rect>",
                i * BAR,
                HEIGHT - h,
                BAR - 1
            )
        })
        .collect();
    let width = counts.len() * BAR;
    let alt = format!(
        "{label}: {total} in all, at most {} in a minute",
        counts.iter().max().unwrap_or(&0)
    );
    format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{alt}\" width=\"{width}\" height=\"{HEIGHT}\" viewBox=\"0 0 {width} {HEIGHT}\"><title>{alt}</title><line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{width}\" y2=\"{HEIGHT}\" stroke=\"#4a4a4a\"/>{rects}</svg>",
        alt = esc(&alt)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bar_per_busy_minute_scaled_to_the_busiest() {
        let svg = super::bars(&[0, 5, 10], "events per minute");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("height=\"40\""));
        assert!(svg.contains("15 in all, at most 10 in a minute"));
    }
}
