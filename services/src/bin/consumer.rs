use clap::Parser;
use faultline_services::consumer::{ConsumerConfig, run};

fn main() -> anyhow::Result<()> {
    let config = ConsumerConfig::parse();
    faultline_services::main(config.listen, config.runtime, |listener, shutdown| {
        run(listener, config, shutdown)
    })
}
