//! `dinoreg search`: the K nearest images of an embedding folder (made by `dinoreg embed`) to a query
//! image, embedded with the model and descriptor recorded in the folder's `index.json`, or to one of
//! its rows. Cosine similarity; exact by default, `--approximate` uses (building once) `hnsw.bin`.

use std::path::PathBuf;

use dinoreg::pipelines::EmbeddingPipeline;
use dinoreg::retrieval::{Hit, SearchOptions, Searcher};
use dinoreg::LoadOptions;
use serde_json::json;

/// Arguments of `dinoreg search`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("query").required(true).args(["image", "row"]))]
pub struct Args {
    /// The embedding folder written by `dinoreg embed`.
    #[arg(long)]
    index: PathBuf,
    /// The query image (or give --row).
    #[arg(long, short = 'i')]
    image: Option<PathBuf>,
    /// Query with this row of the index (0-based; the row itself is left out of the results).
    #[arg(long)]
    row: Option<usize>,
    /// How many results.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Use the approximate (HNSW) index, building and saving it beside the embeddings when missing.
    #[arg(long)]
    approximate: bool,
    /// Device for embedding the query image: `cpu`, `cuda` or `cuda:N`.
    #[arg(long)]
    device: Option<String>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.top == 0 {
        anyhow::bail!("invalid --top 0: expected at least 1");
    }
    let searcher = Searcher::open(
        &args.index,
        &SearchOptions::default().with_approximate(args.approximate),
    )?;
    let (query, hits) = match (&args.image, args.row) {
        (_, Some(row)) => {
            let hits = searcher.search_row(row, args.top)?;
            (format!("row {row} ({})", searcher.path(row)?), hits)
        }
        (Some(image), None) => {
            let load = LoadOptions::default().with_device_name(args.device.as_deref())?;
            let vector = EmbeddingPipeline::for_index(searcher.index(), &load)?.run_path(image)?;
            (
                image.display().to_string(),
                searcher.search(&vector, args.top)?,
            )
        }
        (None, None) => anyhow::bail!("no query: give --image FILE or --row N"),
    };
    print_hits(&query, &hits, args.json)
}

fn print_hits(query: &str, hits: &[Hit], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let results: Vec<_> = hits
            .iter()
            .enumerate()
            .map(|(rank, h)| json!({"rank": rank + 1, "row": h.row, "path": h.path, "score": h.score}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"query": query, "results": results}))?
        );
        return Ok(());
    }
    println!("nearest to {query}:");
    for (rank, h) in hits.iter().enumerate() {
        println!(
            "{:>3}. {:.4}  {}  (row {})",
            rank + 1,
            h.score,
            h.path,
            h.row
        );
    }
    Ok(())
}
