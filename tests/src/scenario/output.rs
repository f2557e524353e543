//! Writes a result folder: `result.json`, the PNG plots and `README.md` (which links them).
//! A plot that cannot be drawn is reported in the README instead of failing the run: the
//! measurements are already safe in `result.json` by then.

use std::path::Path;

use anyhow::{Context, Result};

use super::figures::{figures, Figure};
use super::report::markdown;
use super::result::ScenarioResult;

/// Writes everything into `dir` (created if needed); returns the files written.
pub fn write(result: &ScenarioResult, dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(result)?;
    std::fs::write(dir.join("result.json"), json + "\n")
        .with_context(|| format!("writing {}/result.json", dir.display()))?;
    let mut written = vec!["result.json".to_string()];
    render(result, dir, &mut written)?;
    Ok(written)
}

/// Writes the plots and the README from a result (`scenario render` uses this alone).
pub fn render(result: &ScenarioResult, dir: &Path, written: &mut Vec<String>) -> Result<()> {
    let mut drawn: Vec<Figure> = Vec::new();
    let mut failures = Vec::new();
    for f in figures(result) {
        match f.draw(dir) {
            Ok(()) => {
                written.push(f.file.clone());
                drawn.push(f);
            }
            Err(e) => failures.push(format!("{}: {e:#}", f.file)),
        }
    }
    let mut md = markdown(result, &drawn);
    if !failures.is_empty() {
        md.push_str("\n## Plots that could not be drawn\n\n");
        for f in &failures {
            md.push_str(&format!("- {f}\n"));
        }
    }
    std::fs::write(dir.join("README.md"), md)
        .with_context(|| format!("writing {}/README.md", dir.display()))?;
    written.push("README.md".into());
    Ok(())
}

/// Reads a `result.json`.
pub fn read(dir: &Path) -> Result<ScenarioResult> {
    let path = dir.join("result.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a scenario result", path.display()))
}
