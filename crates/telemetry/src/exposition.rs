//! Reading the Prometheus text format back: the values of a metric's samples, for tests and
//! tools that scrape `/metrics`.

/// The values of every sample of metric `name` (a full series name such as
/// `rpc_server_duration_seconds_count`) whose labels include each `(key, value)` pair of
/// `labels`, in the order they appear. Comment lines and other metrics are skipped.
pub fn samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = metric == name
                && labels
                    .iter()
                    .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")));
            wanted.then(|| value.parse().ok())?
        })
        .collect()
}

/// The value of the first sample [`samples`] finds.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text, name, labels).first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE calls_total counter
calls_total{method=\"Get\",code=\"0\"} 3
calls_total{method=\"Get\",code=\"5\"} 1
calls_total_extra{method=\"Get\"} 100
height 42
";

    #[test]
    fn samples_are_found_by_name_and_labels_and_nothing_else() {
        assert_eq!(samples(TEXT, "calls_total", &[]), vec![3.0, 1.0]);
        assert_eq!(sample(TEXT, "calls_total", &[("code", "5")]), Some(1.0));
        assert_eq!(sample(TEXT, "height", &[]), Some(42.0));
        assert_eq!(sample(TEXT, "calls_total", &[("code", "7")]), None);
        assert_eq!(sample(TEXT, "calls", &[]), None);
    }
}
