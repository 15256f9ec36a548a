use clap::Parser;
use faultline_services::producer::{ProducerConfig, run};

fn main() -> anyhow::Result<()> {
    let config = ProducerConfig::parse();
    faultline_services::main(config.listen, |listener, shutdown| {
        run(listener, config, shutdown)
    })
}
