//! Secrets and external databases: no password reaches the run folder,
//! the report, the output or `ps`; a database over TLS is reached through
//! the fault proxy with its name checked.

use super::*;

/// A password written inline in a service's environment.
const SERVICE_LITERAL: &str = "literal-Svc-4711";

/// A `service` architecture (the built-in REST service by its command)
/// whose environment holds secrets three ways.
const OWN: &str = r#"[[architectures]]
kind = "service"
name = "own"
[[architectures.processes]]
name = "api"
command = ["faultline-rest", "--listen", "127.0.0.1:{{ port }}", "--stored-by", "own"]
env = { FAULTLINE_DATABASE_URL = "{{ db.url }}", PGPASSWORD = "{{ db.password }}", API_TOKEN = "${FAULTLINE_TEST_SERVICE_SECRET}", SERVICE_PASSWORD = "literal-Svc-4711" }
ready = { http = "/healthz" }
[architectures.request]
path = "/events"
body = '{"event_id": "{{ event.id }}", "driver_id": "{{ event.driver_id }}", "lat": {{ event.lat }}, "lng": {{ event.lng }}, "sent_at": "{{ event.sent_at }}"}'
ok = [201]
[architectures.audit]
query = "SELECT event_id, stored_at FROM location_events WHERE stored_by = 'own'"
settle = "1s"
"#;

#[test]
fn no_password_or_secret_reaches_the_run_folder_the_report_or_the_output() {
    // An external database whose URL carries a password, written inline,
    // and a Kafka client property whose secret comes from the environment.
    let out = std::env::temp_dir().join(format!("faultline-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (postgres, broker) = runtime.block_on(async {
        let postgres = faultline_stack::Postgres::start(&out.join("postgres"))
            .await
            .unwrap();
        let broker =
            faultline_stack::broker::Broker::start(&out.join("broker"), &"nisshi".parse().unwrap())
                .await
                .unwrap();
        (postgres, broker)
    });
    // The database's own password (made for the cluster) and a Kafka one.
    let (db_secret, kafka_secret) = (postgres.password().to_string(), "kafka-Secret-0815");
    // A service of the user's own, handed the database's password by the
    // lab, a token from the environment and a password written inline.
    let service_secret = "svc-Token-2718";
    let url = postgres.url();
    assert!(url.contains(&db_secret));
    let scenario = out.join("secrets.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"secrets\"\nduration = \"3s\"\ndrain_timeout = \"30s\"\n\
             [stack]\ndatabase = \"external\"\ndatabase_url = \"{url}\"\n\
             broker = \"external\"\nbootstrap_servers = \"{}\"\n\
             [stack.kafka]\n\"sasl.password\" = \"${{FAULTLINE_TEST_KAFKA_SECRET}}\"\n\
             [workload]\nrate = {{ shape = \"constant\", rps = 10 }}\n\
             [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
             [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 10\n\
             [[faults]]\nkind = \"db-latency\"\nat = \"1s\"\nduration = \"1s\"\ndelay = \"50ms\"\n{OWN}",
            broker.bootstrap()
        ),
    )
    .unwrap();
    // What the lab shows of the plan: environment variables by name only.
    let plan = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("plan")
        .arg(&scenario)
        .env("FAULTLINE_TEST_KAFKA_SECRET", kafka_secret)
        .env("FAULTLINE_TEST_SERVICE_SECRET", service_secret)
        .output()
        .unwrap();
    let planned =
        String::from_utf8_lossy(&plan.stdout).to_string() + &String::from_utf8_lossy(&plan.stderr);
    assert!(plan.status.success(), "{planned}");
    assert!(planned.contains("API_TOKEN"), "{planned}");
    for secret in [
        db_secret.as_str(),
        kafka_secret,
        service_secret,
        SERVICE_LITERAL,
    ] {
        assert!(
            !planned.contains(secret),
            "the plan shows {secret}: {planned}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(out.join("reports"))
        .env("FAULTLINE_TEST_KAFKA_SECRET", kafka_secret)
        .env("FAULTLINE_TEST_SERVICE_SECRET", service_secret)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    for secret in [
        db_secret.as_str(),
        kafka_secret,
        service_secret,
        SERVICE_LITERAL,
    ] {
        assert!(!said.contains(secret), "the output shows {secret}: {said}");
    }
    // Every file the run wrote, the raw rows and the report included.
    let mut files = vec![out.join("reports")];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in [
            db_secret.as_str(),
            kafka_secret,
            service_secret,
            SERVICE_LITERAL,
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds {secret}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 10, "only {checked} files");
    // The run really used both: events went through the broker and the
    // database.
    let run = std::fs::read_dir(out.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["architectures"]["kafka"]["stored"], 30, "{summary}");
    assert_eq!(summary["architectures"]["own"]["stored"], 30, "{summary}");
    drop((postgres, broker));
    let _ = std::fs::remove_dir_all(&out);
}

/// Makes `postgres` accept only TLS connections, with a certificate for
/// `name` signed by a CA of its own; the CA's PEM file.
fn require_tls(postgres: &faultline_stack::Postgres, dir: &Path, name: &str) -> PathBuf {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=faultline test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), format!("subjectAltName=DNS:{name}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    // The server reads its key only if the key is its own and private.
    let data = postgres.dir().join("data");
    for file in ["server.crt", "server.key"] {
        use std::os::unix::fs::PermissionsExt;
        let to = data.join(file);
        std::fs::copy(dir.join(file), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        let owner = std::fs::metadata(&data).unwrap();
        use std::os::unix::fs::MetadataExt;
        nix::unistd::chown(
            &to,
            Some(nix::unistd::Uid::from_raw(owner.uid())),
            Some(nix::unistd::Gid::from_raw(owner.gid())),
        )
        .unwrap();
    }
    let hba = data.join("pg_hba.conf");
    let only_tls: String = std::fs::read_to_string(&hba)
        .unwrap()
        .lines()
        .map(|line| match line.strip_prefix("host ") {
            Some(rest) => format!("hostssl {rest}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&hba, only_tls).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (client, connection) = tokio_postgres::connect(&postgres.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("ALTER SYSTEM SET ssl = on")
            .await
            .unwrap();
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // From now on a plain connection is turned away.
        let plain = tokio_postgres::connect(&postgres.url(), tokio_postgres::NoTls).await;
        assert!(
            plain.is_err(),
            "the server still accepts a connection without TLS"
        );
    });
    dir.join("ca.pem")
}

#[test]
fn an_external_database_over_tls_is_reached_through_the_proxy_with_its_name_checked() {
    // The server's certificate names db.faultline.test, which no resolver
    // knows: the URL reaches it by `hostaddr`, the services through the
    // lab's proxy, and every connection checks that name.
    let out = std::env::temp_dir().join(format!("faultline-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let postgres = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(faultline_stack::Postgres::start(&out.join("postgres")))
        .unwrap();
    let ca = require_tls(&postgres, &out, "db.faultline.test");
    let url = |host: &str| {
        format!(
            "postgres://postgres:{}@{host}:{}/postgres?sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
            postgres.password(),
            postgres.port(),
            ca.display()
        )
    };
    let scenario = |name: &str, host: &str| {
        let path = out.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\nduration = \"3s\"\ndrain_timeout = \"30s\"\n\
                 [stack]\ndatabase = \"external\"\ndatabase_url = \"{}\"\n\
                 [workload]\nrate = {{ shape = \"constant\", rps = 10 }}\n\
                 [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
                 [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 10\n\
                 [[faults]]\nkind = \"db-blackhole\"\nat = \"1s\"\nduration = \"1s\"\n",
                url(host)
            ),
        )
        .unwrap();
        path
    };
    let dir = run_with(
        &scenario("tls", "db.faultline.test"),
        "native",
        &out.join("reports"),
    );
    let summary = json_in(&dir, "summary.json");
    assert_eq!(summary["status"], "complete", "{summary:#}");
    let stored = read(&dir, "stored.parquet");
    let architectures = strings(&stored, "architecture");
    for name in ["rest", "kafka"] {
        let count = architectures.iter().filter(|a| *a == name).count();
        assert!(count >= 20, "{name}: only {count} stored");
    }
    all_verified(&dir, 1);

    // The same server under a name its certificate does not carry: refused,
    // and said.
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(scenario("wrong-name", "localhost"))
        .arg("--out")
        .arg(out.join("reports"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("certificate not valid for name"), "{said}");
    assert!(!said.contains(postgres.password()), "{said}");
    drop(postgres);
    let _ = std::fs::remove_dir_all(&out);
}
