use clap::Parser;
use faultline_services::rest::{RestConfig, run};

fn main() -> anyhow::Result<()> {
    let config = RestConfig::parse();
    faultline_services::main(config.listen, config.runtime, |listener, shutdown| {
        run(listener, config, shutdown)
    })
}
