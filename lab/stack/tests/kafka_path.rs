//! The Apache Kafka path (`broker = "kafka"`, and what `auto` picks when
//! Kafka's scripts are on PATH, as `nix run` gives them) with stand-in
//! `kafka-storage.sh` and `kafka-server-start.sh`: they record what the lab
//! asks of them (a KRaft single-node config, a formatted log directory, the
//! start) and serve the Kafka protocol on the configured port with the
//! lab's other broker, so the lab's whole path runs: format, start, wait,
//! create a topic, probe, stop. The test runs itself again with the
//! stand-ins first on PATH.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use faultline_stack::{Broker, BrokerKind, BrokerTarget};

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\nset -eu\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const NAME: &str = "the_kafka_path_formats_a_kraft_node_and_starts_it_with_its_config";
const INNER: &str = "FAULTLINE_KAFKA_PATH_DIR";

#[tokio::test]
async fn the_kafka_path_formats_a_kraft_node_and_starts_it_with_its_config() {
    if let Some(dir) = std::env::var_os(INNER) {
        return with_stand_ins(Path::new(&dir)).await;
    }
    let dir = std::env::temp_dir().join(format!("faultline-kafka-path-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = dir.join("record");
    std::fs::create_dir_all(&record).unwrap();
    // The broker that really serves: the lab's other one, found before
    // PATH changes.
    let (serving, _) = faultline_stack::broker::find_broker().expect("a broker for the stand-in");
    script(
        &bin.join("kafka-storage.sh"),
        &format!(
            "echo \"$@\" >> {record}/storage-args\n\
             case \"$1\" in\n\
               random-uuid) echo 'q1Sh-9_ISia_zwGINzRvyQ' ;;\n\
               format) cp \"$5\" {record}/formatted.properties ;;\n\
             esac\n",
            record = record.display()
        ),
    );
    script(
        &bin.join("kafka-server-start.sh"),
        &format!(
            "echo \"$@\" > {record}/start-args\n\
             echo \"LOG_DIR=$LOG_DIR KAFKA_HEAP_OPTS=$KAFKA_HEAP_OPTS\" > {record}/start-env\n\
             port=$(sed -n 's/^listeners=PLAINTEXT:\\/\\/127.0.0.1:\\([0-9]*\\),.*/\\1/p' \"$1\")\n\
             advertised=$(sed -n 's/^advertised.listeners=PLAINTEXT:\\/\\///p' \"$1\")\n\
             exec {serving} broker --listener-url tcp://127.0.0.1:$port \
               --advertised-listener-url tcp://$advertised --storage-engine memory://tansu/\n",
            record = record.display(),
            serving = serving.display()
        ),
    );
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture"])
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env(INNER, &dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.contains("1 passed"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test proper, with the stand-ins first on PATH.
async fn with_stand_ins(dir: &Path) {
    let record = dir.join("record");

    // `auto` picks Apache Kafka when its scripts are on PATH.
    let auto: BrokerTarget = "auto".parse().unwrap();
    let mut broker = Broker::start(&dir.join("broker"), &auto).await.unwrap();
    assert_eq!(broker.kind(), BrokerKind::Kafka);
    assert!(broker.kind().durable(), "Kafka keeps its log on disk");
    broker.create_topic("t", 2).await.unwrap();
    broker
        .probe(std::time::Duration::from_secs(2))
        .await
        .unwrap();

    // What the lab asked: a cluster id, then a format with it and the config.
    let storage = std::fs::read_to_string(record.join("storage-args")).unwrap();
    let lines: Vec<&str> = storage.lines().collect();
    assert_eq!(lines[0], "random-uuid");
    assert!(
        lines[1].starts_with("format -t q1Sh-9_ISia_zwGINzRvyQ -c ")
            && lines[1].ends_with("server.properties"),
        "{storage}"
    );
    // A single KRaft node that is its own controller, on loopback only,
    // advertising the fault proxy in front of it.
    let config = std::fs::read_to_string(record.join("formatted.properties")).unwrap();
    let port = broker.port();
    let link = broker.link().expect("a link proxy").addr();
    assert_eq!(broker.bootstrap(), link.to_string());
    for line in [
        "process.roles=broker,controller".to_string(),
        "node.id=1".to_string(),
        format!("advertised.listeners=PLAINTEXT://{link}"),
        "controller.listener.names=CONTROLLER".to_string(),
        "offsets.topic.replication.factor=1".to_string(),
        "auto.create.topics.enable=false".to_string(),
    ] {
        assert!(config.lines().any(|l| l == line), "{line} not in\n{config}");
    }
    let listeners = config
        .lines()
        .find(|l| l.starts_with("listeners="))
        .unwrap();
    assert!(
        listeners.starts_with(&format!(
            "listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:"
        )),
        "{listeners}"
    );
    assert!(
        config
            .lines()
            .any(|l| l.starts_with("controller.quorum.voters=1@127.0.0.1:"))
    );
    // Started with that same config, its logs and a bounded heap.
    let start = std::fs::read_to_string(record.join("start-args")).unwrap();
    assert!(start.trim().ends_with("server.properties"), "{start}");
    let env = std::fs::read_to_string(record.join("start-env")).unwrap();
    assert!(
        env.contains("/logs KAFKA_HEAP_OPTS=-Xms512m -Xmx512m"),
        "{env}"
    );

    // Killed and restarted like any broker.
    broker.kill().unwrap();
    assert!(
        broker
            .probe(std::time::Duration::from_millis(500))
            .await
            .is_err()
    );
    broker.restart().await.unwrap();
    broker
        .probe(std::time::Duration::from_secs(2))
        .await
        .unwrap();
    drop(broker);
}
