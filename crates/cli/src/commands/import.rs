//! `duoprov import FILE…`: reads every file (JSON or CSV), reports every bad row at once, and
//! writes the whole import in one transaction or not at all. With `--mirror SOURCE` the files are
//! the whole truth for that source instead (see `source.rs`).

use anyhow::{Context as _, Result, bail};
use duoprov_registry::ImportData;

use super::Context;
use crate::args::{ImportArgs, ImportFormat};
use crate::{exit, output};

pub async fn run(ctx: &Context, args: ImportArgs) -> Result<u8> {
    let mut data = ImportData::default();
    let mut errors = duoprov_model::ValidationErrors::default();
    for path in &args.files {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let format = match args.format {
            Some(f) => f,
            None => match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
                Some("json") => ImportFormat::Json,
                Some("csv") => ImportFormat::Csv,
                _ => bail!("{}: cannot tell the format from the file name; pass --format json|csv", path.display()),
            },
        };
        let name = path.display().to_string();
        let result = match format {
            ImportFormat::Json => data.add_json(&name, &text),
            ImportFormat::Csv => data.add_csv(&name, &text),
        };
        if let Err(e) = result {
            errors.0.extend(e.0);
        }
    }
    if !errors.is_empty() {
        bail!("import refused, nothing written: {errors}");
    }
    if let Some(source) = &args.mirror {
        return super::source::mirror_files(ctx, source, &data, args.dry_run, args.approve.as_deref()).await;
    }
    let store = ctx.store().await?;
    let summary = store.import(&data).await.map_err(|e| anyhow::anyhow!("import refused, nothing written: {e}"))?;
    if ctx.json {
        output::json(&summary)?;
    } else {
        println!(
            "imported: subjects {} created, {} updated, {} unchanged; folders {} created; groups {} created, {} updated; memberships {} added, {} already present; markers {} set",
            summary.subjects_created,
            summary.subjects_updated,
            summary.subjects_unchanged,
            summary.folders_created,
            summary.groups_created,
            summary.groups_updated,
            summary.memberships_added,
            summary.memberships_present,
            summary.markers_set
        );
    }
    Ok(exit::OK)
}
