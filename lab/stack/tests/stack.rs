//! The stack's own parts against real processes: PostgreSQL crashed, frozen,
//! stopped and restarted with its data; the broker killed and restarted; and
//! no process left behind once the guards are dropped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use faultline_stack::process::descendants;
use faultline_stack::{Broker, BrokerTarget, Postgres, Service, ServiceKind};

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("faultline-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    faultline_stack::create_dir(&dir).unwrap();
    dir
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

async fn sql(postgres: &Postgres, query: &str) -> Result<Vec<tokio_postgres::Row>, String> {
    let url = format!("{}?connect_timeout=1", postgres.url());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    client.query(query, &[]).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_a_crash_a_freeze_and_a_stop_and_leaves_nothing_behind() {
    let dir = test_dir("stack-postgres");
    let mut postgres = Postgres::start(&dir.join("pg")).await.unwrap();
    let postmaster = postgres.pid().unwrap();
    sql(&postgres, "CREATE TABLE kept (n int)").await.unwrap();
    sql(&postgres, "INSERT INTO kept VALUES (1), (2), (3)")
        .await
        .unwrap();
    let backends = descendants(postmaster as i32);
    assert!(
        !backends.is_empty(),
        "a running cluster has child processes"
    );

    // Crash: every process of the cluster is gone, connections are refused.
    postgres.kill();
    assert!(!alive(postmaster));
    assert!(
        backends.iter().all(|pid| !alive(*pid as u32)),
        "a backend survived SIGKILL"
    );
    assert!(postgres.probe(Duration::from_secs(1)).await.is_err());
    let recovery = postgres.restart().await.unwrap();
    eprintln!("restart with crash recovery: {recovery:?}");
    let rows = sql(&postgres, "SELECT count(*) FROM kept").await.unwrap();
    assert_eq!(
        rows[0].get::<_, i64>(0),
        3,
        "committed rows survive a crash"
    );

    // Freeze: a query with a timeout fails on time; after the thaw it works.
    postgres.freeze().unwrap();
    let started = Instant::now();
    assert!(postgres.probe(Duration::from_secs(1)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
    postgres.thaw().unwrap();
    postgres.wait_ready(Duration::from_secs(5)).await.unwrap();

    // Fast stop and start again.
    postgres.stop();
    assert!(postgres.probe(Duration::from_secs(1)).await.is_err());
    postgres.restart().await.unwrap();
    assert_eq!(
        sql(&postgres, "SELECT count(*) FROM kept").await.unwrap()[0].get::<_, i64>(0),
        3
    );

    // Frozen when the guard is dropped: it is thawed and stopped.
    let postmaster = postgres.pid().unwrap();
    let tree = descendants(postmaster as i32);
    postgres.freeze().unwrap();
    drop(postgres);
    assert!(!alive(postmaster), "the postmaster outlived its guard");
    assert!(
        tree.iter().all(|pid| !alive(*pid as u32)),
        "a backend outlived its guard"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_is_killed_restarted_and_stopped() {
    let dir = test_dir("stack-broker");
    let mut broker = Broker::start(&dir.join("broker"), &BrokerTarget::default())
        .await
        .unwrap();
    broker.create_topic("t", 3).await.unwrap();
    let pid = broker.pid().unwrap();
    assert!(dir.join("broker/broker.pid").exists());
    broker.kill().unwrap();
    assert!(!alive(pid));
    assert!(broker.probe(Duration::from_millis(500)).await.is_err());
    let restart = broker.restart().await.unwrap();
    eprintln!("broker restart: {restart:?}");
    broker.probe(Duration::from_secs(2)).await.unwrap();
    // Memory storage: the topic has to be created again after a kill.
    broker.create_topic("t", 3).await.unwrap();
    let pid = broker.pid().unwrap();
    drop(broker);
    assert!(!alive(pid));
    assert!(!dir.join("broker/broker.pid").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_lab_database_refuses_a_connection_without_its_password() {
    let dir = test_dir("password");
    let postgres = Postgres::start(&dir.join("pg")).await.unwrap();
    assert_eq!(postgres.password().len(), 32);
    assert!(
        sql(&postgres, "select 1").await.is_ok(),
        "with the password"
    );
    // The same address without the password, and with a wrong one.
    for url in [
        postgres
            .url()
            .replace(&format!(":{}@", postgres.password()), "@"),
        postgres.url().replace(postgres.password(), "wrong"),
    ] {
        let refused = tokio_postgres::connect(&url, tokio_postgres::NoTls).await;
        assert!(refused.is_err(), "{url} connected");
    }
    // The password file initdb read is gone.
    assert!(!dir.join("pg").join("pwfile").exists());
    drop(postgres);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_service_whose_port_was_taken_before_it_bound_it_starts_on_another() {
    let dir = test_dir("service-port-taken");
    let postgres = Postgres::start(&dir.join("pg")).await.unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let service = Service::start_at(
        ServiceKind::Rest,
        Vec::new(),
        vec![("FAULTLINE_DATABASE_URL".into(), postgres.url())],
        &dir.join("rest"),
        taken,
    )
    .await
    .unwrap();
    assert_ne!(service.addr().port(), taken);
    let log = std::fs::read_to_string(dir.join("rest/faultline-rest.log")).unwrap();
    assert!(log.contains("already in use"), "{log}");
    drop(service);
    drop(postgres);
    let _ = std::fs::remove_dir_all(&dir);
}
