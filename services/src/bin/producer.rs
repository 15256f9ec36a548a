use anyhow::Context;
use clap::Parser;
use faultline_services::producer::{ProducerConfig, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    faultline_services::init_logging();
    let config = ProducerConfig::parse();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    let shutdown = faultline_services::shutdown_on_signals();
    run(listener, config, shutdown).await?;
    Ok(())
}
