//! Named series of durations (one value per measured cycle) and their summaries.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, bail};

/// Median, p99 (nearest rank), min and max of one series.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: Duration,
    pub p99: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(values: &[Duration]) -> Option<Summary> {
        let mut v = values.to_vec();
        v.sort();
        let n = v.len();
        let (first, last) = (*v.first()?, *v.last()?);
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        };
        let p99 = v[(n * 99).div_ceil(100).saturating_sub(1)];
        Some(Summary {
            median,
            p99,
            min: first,
            max: last,
        })
    }
}

/// Series in the order they were first recorded.
#[derive(Default)]
pub struct Metrics {
    order: Vec<String>,
    values: HashMap<String, Vec<Duration>>,
}

impl Metrics {
    pub fn push(&mut self, name: &str, d: Duration) {
        match self.values.get_mut(name) {
            Some(v) => v.push(d),
            None => {
                self.order.push(name.to_owned());
                self.values.insert(name.to_owned(), vec![d]);
            }
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn summary(&self, name: &str) -> Result<Summary> {
        match self.values.get(name).and_then(|v| Summary::of(v)) {
            Some(s) => Ok(s),
            None => bail!("no samples recorded for {name:?}"),
        }
    }

    /// The names starting with `prefix`, in recording order, with the prefix removed.
    pub fn names_under(&self, prefix: &str) -> Vec<String> {
        self.order
            .iter()
            .filter_map(|n| n.strip_prefix(prefix))
            .map(str::to_owned)
            .collect()
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1e3)
}

/// `a / b` of two durations.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
