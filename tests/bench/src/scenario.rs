//! What a scenario is, and what it hands back: a table of figures with a column per
//! runtime (and per load), notes, and correctness checks.
//!
//! To add one: write `scenarios/<name>.rs` with a `pub const SCENARIO: Scenario` whose
//! `run` starts what it needs for each runtime it is given ([`crate::env::Env`]), applies
//! its load, checks the rows, and fills a [`Report`]; then list it in
//! [`crate::scenarios::ALL`].

use voice_edge_testkit::child::ChildRuntime;

/// How much load a run may apply.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Measured requests at most (in-process load generator).
    pub requests: usize,
    /// Seconds of measured load at most.
    pub seconds: f64,
    /// The keep-alive connection counts to measure at.
    pub connections: Vec<usize>,
    /// Requests sent before measuring (same kind, counted in the row checks).
    pub warmup: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests: 20_000,
            seconds: 10.0,
            connections: vec![8, 16],
            warmup: 500,
        }
    }
}

/// A correctness check made after the load: passes or not, with what was seen.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    /// A check that `actual` equals `expected`.
    pub fn equal(name: &str, actual: i64, expected: i64) -> Check {
        Check {
            name: name.to_string(),
            passed: actual == expected,
            detail: format!("{actual} (expected {expected})"),
        }
    }

    /// A check that holds when `passed`, with what was seen.
    pub fn that(name: &str, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            passed,
            detail: detail.into(),
        }
    }
}

/// Figures side by side: one column per runtime (and load), one row per figure.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<String>)>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(columns: Vec<String>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Sets the figure `label` of column `column` (a missing row is added).
    pub fn set(&mut self, label: &str, column: usize, value: String) {
        let width = self.columns.len();
        let row = match self.rows.iter().position(|(name, _)| name == label) {
            Some(index) => &mut self.rows[index].1,
            None => {
                self.rows
                    .push((label.to_string(), vec![String::new(); width]));
                &mut self.rows.last_mut().expect("just pushed").1
            }
        };
        if column < row.len() {
            row[column] = value;
        }
    }

    /// The table as aligned text, each line indented by three spaces.
    pub fn render(&self) -> String {
        let label_width = self
            .rows
            .iter()
            .map(|(label, _)| label.len())
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|column| {
                self.rows
                    .iter()
                    .map(|(_, values)| values.get(column).map_or(0, |v| v.chars().count()))
                    .chain(std::iter::once(self.columns[column].chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |label: &str, values: &[String]| {
            let mut text = format!("   {label:<label_width$}");
            for (value, width) in values.iter().zip(&widths) {
                text.push_str(&format!("  {value:>width$}"));
            }
            text.trim_end().to_string()
        };
        let mut lines = vec![line("", &self.columns)];
        for (label, values) in &self.rows {
            lines.push(line(label, values));
        }
        lines.join("\n")
    }
}

/// What a scenario measured and checked.
#[derive(Debug, Default)]
pub struct Report {
    pub table: Table,
    /// Lines of extra measurements and how to read them, printed as they are.
    pub notes: Vec<String>,
    pub checks: Vec<Check>,
}

/// A benchmark scenario.
pub struct Scenario {
    /// The name on the command line.
    pub name: &'static str,
    /// One line for `--help` and the report.
    pub description: &'static str,
    /// The performance target, printed beside the numbers.
    pub target: &'static str,
    /// Runs the scenario under each of `runtimes`.
    pub run: fn(&[ChildRuntime], &Limits) -> anyhow::Result<Report>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_lines_up_its_columns_and_adds_rows_as_figures_come() {
        let mut table = Table::new(vec!["host".into(), "spin".into()]);
        table.set("deliveries/s", 1, "1500".into());
        table.set("deliveries/s", 0, "2000".into());
        table.set("p99 ms", 0, "9.50".into());
        assert_eq!(
            table.render(),
            "                 host  spin\n   deliveries/s  2000  1500\n   p99 ms        9.50"
        );
    }
}
