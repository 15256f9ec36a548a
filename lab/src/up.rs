//! `faultline stack up`: the stack for a person to explore.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::ValueEnum;
use faultline_services::consumer::Mode;
use faultline_stack::{Broker, BrokerChoice, Postgres, Service, ServiceKind};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Folder for the cluster, the broker and the logs (default: a new folder
    /// under .faultline/).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Consumer modes to run, each with its own producer and topic.
    #[arg(long = "kafka", value_enum, value_delimiter = ',', default_values = ["buffered", "drop"])]
    kafka: Vec<Mode>,
    /// Write the URLs as shell variables (FAULTLINE_REST_URL=...) to this file.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = args.dir.unwrap_or_else(|| {
        PathBuf::from(".faultline").join(format!(
            "stack-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    let dir = std::path::absolute(&dir).context("no current directory")?;
    faultline_stack::create_dir(&dir)?;
    eprintln!("faultline: bringing the stack up in {}", dir.display());

    let postgres = Postgres::start(&dir.join("postgres")).await?;
    eprintln!("faultline: PostgreSQL ready on port {}", postgres.port());
    let broker = Broker::start(&dir.join("broker"), &BrokerChoice::Auto).await?;
    eprintln!(
        "faultline: broker ready: {} ({}, memory storage: a kill loses what it held)",
        broker.bootstrap(),
        broker.version()
    );
    let db = |url: &str| vec!["--database-url".to_string(), url.to_string()];
    let rest = Service::start(
        ServiceKind::Rest,
        db(&postgres.url()),
        &dir.join("services"),
    )
    .await?;
    let mut kafka = Vec::new();
    let mut vars = vec![
        ("FAULTLINE_DATABASE_URL".to_string(), postgres.url()),
        (
            "FAULTLINE_BOOTSTRAP_SERVERS".to_string(),
            broker.bootstrap(),
        ),
        ("FAULTLINE_REST_URL".to_string(), rest.url("")),
    ];
    for mode in &args.kafka {
        let mode = mode
            .to_possible_value()
            .expect("every mode has a name")
            .get_name()
            .to_string();
        let topic = format!("driver-locations-{mode}");
        broker.create_topic(&topic, args.partitions).await?;
        let common = vec![
            "--bootstrap-servers".to_string(),
            broker.bootstrap(),
            "--topic".to_string(),
            topic.clone(),
        ];
        let services = dir.join(format!("services-{mode}"));
        let producer = Service::start(ServiceKind::Producer, common.clone(), &services).await?;
        let mut consumer_args = common;
        consumer_args.extend(db(&postgres.url()));
        consumer_args.extend([
            "--mode".to_string(),
            mode.clone(),
            "--group".to_string(),
            format!("location-group-{mode}"),
        ]);
        let consumer = Service::start(ServiceKind::Consumer, consumer_args, &services).await?;
        let key = mode.to_uppercase();
        vars.push((format!("FAULTLINE_PRODUCER_{key}_URL"), producer.url("")));
        vars.push((format!("FAULTLINE_CONSUMER_{key}_URL"), consumer.url("")));
        kafka.push((producer, consumer));
    }
    println!("stack ready in {:.1} s", started.elapsed().as_secs_f64());
    for (name, value) in &vars {
        println!("{name}={value}");
    }
    if let Some(path) = &args.env_file {
        let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    println!("Ctrl-C to tear it down.");
    let shutdown = faultline_services::shutdown_on_signals();
    shutdown.cancelled().await;
    eprintln!("faultline: tearing the stack down");
    drop(kafka);
    drop(rest);
    drop(broker);
    drop(postgres);
    eprintln!("faultline: stack down");
    Ok(())
}
