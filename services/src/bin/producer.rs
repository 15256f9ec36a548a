use clap::Parser;
use faultline_services::producer::{ProducerConfig, run};

fn main() -> anyhow::Result<()> {
    let config = ProducerConfig::parse();
    faultline_services::main(config.listen, config.runtime, |listener, shutdown| {
        run(listener, config, shutdown)
    })
}
