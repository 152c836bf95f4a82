//! Renders every page with sample data into a directory, for eyeballing in a browser:
//! `cargo run -p switchyard-web --example preview -- /tmp/pages`

mod sample;

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard_web::Period;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: preview <output-directory>");
        return ExitCode::FAILURE;
    };
    let pages = [
        (
            "models.html",
            switchyard_web::models_index(&sample::index("")),
        ),
        (
            "models-filtered.html",
            switchyard_web::models_index(&sample::index("q=gpt&modality=image&sort=price")),
        ),
        (
            "models-none.html",
            switchyard_web::models_index(&sample::index("q=nothing-like-this")),
        ),
        (
            "model.html",
            switchyard_web::model_page(&sample::model_page()),
        ),
        (
            "model-empty.html",
            switchyard_web::model_page(&sample::empty_model_page()),
        ),
        (
            "rankings.html",
            switchyard_web::rankings(&sample::rankings(Period::Week)),
        ),
        (
            "rankings-empty.html",
            switchyard_web::rankings(&switchyard_web::Rankings::default()),
        ),
        (
            "provider.html",
            switchyard_web::provider_page(&sample::provider_page()),
        ),
        (
            "not-found.html",
            switchyard_web::not_found(&sample::site(), "No model called acme/nothing."),
        ),
    ];
    if let Err(err) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {err}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, html) in pages {
        let path = dir.join(name);
        if let Err(err) = std::fs::write(&path, &html) {
            eprintln!("cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{} ({} KiB)", path.display(), html.len().div_ceil(1024));
    }
    ExitCode::SUCCESS
}
